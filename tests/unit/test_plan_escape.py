"""`canary plan`'s Markdown with hostile names and versions: whatever a preview holds is shown as it is (the
reviewer reads the real name) and can do nothing else. Parsed as a reviewer's tools see it (markdown-it-py:
CommonMark + GFM tables and strikethrough); GitHub's own additions (mentions, issue links, bare URLs, math)
work on the text nodes, so those are checked there.

The Mermaid charts with hostile versions are parsed by Mermaid's parser in tests/integration/test_plan.py.
"""

from __future__ import annotations

import itertools
import re

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from istio_canary import plan, plan_markdown
from istio_canary.release.settings import parse

ZWJ = "\u200d"
HOSTILE_NAMES = [
    "pod`info",
    "a``b```c",
    "`leading",
    "trailing`",
    "line\n> - **create** `Secret` `forged`",
    "x\n\n# Heading\n\n| a | b |\n| - | - |",
    "cr\rand\ttab",
    "<img src=x onerror=alert(1)>",
    "<!-- hidden -->",
    "&lt;entity&gt; &amp; &#64;",
    "@acme/security-team please approve",
    "fixes #123 and acme/app#7",
    "[click](https://evil.example)",
    "![img](https://evil.example/x.png)",
    "https://evil.example/path",
    "www.evil.example",
    "mail admin@evil.example",
    "*bold* __strong__ _em_ ~~strike~~",
    "a|b|c",
    "$x^2$ and $$y$$",
    "\\`escaped\\*",
    "\u202ereversed",
    " spaced ",
    "",
]
HOSTILE_VERSIONS = [
    "6.9.0<script>x</script>",
    "1|2",
    "@team",
    "#42",
    "x\ny",
    '"quoted"',
    "%%{init: {'theme':'dark'}}%%",
    "`tick`",
    "**b**",
    "[l](https://evil.example)",
]
# What a reviewer must see for a name: the name itself, control and direction characters spelled out.
SPELLED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\u202e": "\\u202e"}


def visible(text: str) -> str:
    return "".join(SPELLED.get(char, char) for char in text)


def app(**values: str):
    base = {"gaVersion": "6.8.0", "canaryVersion": "6.9.0", "namespace": "plan", "canaryWeight": "10"}
    return parse({**base, **values}, {"project": "acme-prod", "region": "europe-west1"}).app


def tokens(text: str) -> list[Token]:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(text)


def inline(tokens_: list[Token]) -> list[Token]:
    return [child for token in tokens_ if token.type == "inline" for child in token.children or []]


def hostile_plan(names: list[str]) -> plan.Plan:
    traffic = plan.Traffic("", 10, "6.8.0", "6.9.0")
    changes = tuple(plan.Change("update", f"kubernetes:core/v1:{name}", name) for name in names)
    return plan.Plan(plan.MOVE, traffic, plan.Traffic("", 60, "6.8.0", "6.9.0"), changes, changes)


def benign_plan(count: int) -> plan.Plan:
    return hostile_plan([f"name-{index}" for index in range(count)])


def kinds(text: str) -> list[str]:
    everything = tokens(text)
    return [token.type for token in everything] + [child.type for child in inline(everything)]


def text_nodes(text: str) -> list[str]:
    return [child.content for child in inline(tokens(text)) if child.type == "text"]


def test_hostile_names_make_the_same_document_as_plain_ones():
    # Same block and inline structure token for token: no extra list item, heading, table, link, image,
    # HTML, emphasis or strikethrough came from a name.
    hostile = plan_markdown.markdown(hostile_plan(HOSTILE_NAMES), app(), "dev")
    benign = plan_markdown.markdown(benign_plan(len(HOSTILE_NAMES)), app(), "dev")
    assert kinds(hostile) == kinds(benign)


def test_each_name_is_one_code_span_holding_exactly_the_name():
    text = plan_markdown.markdown(hostile_plan(HOSTILE_NAMES), app(), "dev")
    items = [token for token in tokens(text) if token.type == "list_item_open"]
    assert len(items) == len(HOSTILE_NAMES)
    spans = [child.content for child in inline(tokens(text)) if child.type == "code_inline"]
    # The heading's stack, then per change its kind and its name.
    assert spans[0] == "dev"
    shown = spans[1:]
    changes = hostile_plan(HOSTILE_NAMES).changes
    assert shown[0::2] == [visible(change.kind) or " " for change in changes]  # an empty one: a visible blank
    assert shown[1::2] == [visible(change.name) or " " for change in changes]
    assert all("\n" not in span for span in spans)


def test_the_footer_shows_every_change_as_text_and_nothing_else():
    text = plan_markdown.markdown(hostile_plan(HOSTILE_NAMES), app(), "dev")
    (footer,) = [token for token in tokens(text) if token.type == "inline" and token.content.startswith("<sub>")]
    children = footer.children or []
    assert [child.content for child in children if child.type == "html_inline"] == ["<sub>", "</sub>"]
    assert {child.type for child in children} <= {"text", "html_inline", "softbreak"}
    shown = "".join(child.content for child in children if child.type == "text").replace(ZWJ, "")
    words = sorted(visible(change.words()) for change in hostile_plan(HOSTILE_NAMES).changes)
    assert shown == f"Changes in the preview: {', '.join(words)}."


def test_no_mention_issue_link_bare_url_or_math_survives_in_the_text():
    text = plan_markdown.markdown(hostile_plan(HOSTILE_NAMES), app(), "dev")
    joined = "\n".join(text_nodes(text))
    assert not re.search(r"@[\w-]", joined)  # GitHub links @user / @org/team (and user@host mail addresses)
    assert not re.search(r"#\d", joined)  # #123 and owner/repo#123
    assert "://" not in joined and not re.search(r"(?i)www\.", joined)  # GFM's bare-URL autolinks
    assert "$x^2$ and $$y$$" in joined.replace(ZWJ, "")
    # GitHub's $math$ works on the source: outside the code spans (the warning's items), every dollar is escaped.
    prose = "\n".join(line for line in text.splitlines() if not line.startswith("> - "))
    assert "x^2" in prose and not re.search(r"(?<!\\)\$", prose)


@pytest.mark.parametrize("version", HOSTILE_VERSIONS)
def test_a_hostile_version_from_the_preview_is_text_in_the_headline_and_the_table(version):
    before = plan.Traffic("", 10, "6.8.0", version)  # the preview's old canary Deployment had this image tag
    reading = plan.Plan(plan.NEW_VERSION, before, plan.Traffic("", 10, "6.8.0", "6.9.1"), ())
    hostile = plan_markdown.markdown(reading, app(canaryVersion="6.9.1"), "dev")
    benign = plan_markdown.markdown(
        plan.Plan(plan.NEW_VERSION, plan.Traffic("", 10, "6.8.0", "6.9.0"), reading.after, ()),
        app(canaryVersion="6.9.1"),
        "dev",
    )
    assert kinds(hostile) == kinds(benign)
    everything = tokens(hostile)
    rows = [token for token in everything if token.type == "tr_open"]
    cells = [token for token in everything if token.type in ("td_open", "th_open")]
    assert len(cells) == 3 * len(rows)
    # The first column of the canary row reads exactly "canary <old> → canary <new>" (markdown-it, like GitHub,
    # drops cells beyond the header's three, so a stray | would cut the label silently).
    labels = [
        "".join(child.content for child in token.children or [] if child.type == "text").replace(ZWJ, "")
        for opening, token in itertools.pairwise(everything)
        if opening.type == "td_open" and token.content.startswith("canary ")
    ]
    assert labels == [f"canary {visible(version)} → canary 6.9.1"]
    headline = next(token for token in everything if token.type == "inline" and token.content.startswith("**"))
    shown = "".join(child.content for child in headline.children or [] if child.type == "text").replace(ZWJ, "")
    assert visible(version) in shown
    assert not re.search(r"@\w|#\d|://", "\n".join(text_nodes(hostile)))


def test_a_hostile_prometheus_answer_in_the_analysis_note_is_text():
    note = "unavailable (Prometheus answered HTTP 500: @oncall <b>see</b> #12 [here](https://evil.example))"
    text = plan_markdown.markdown(benign_plan(0), app(), "dev", analysis_note=note)
    assert kinds(text) == kinds(plan_markdown.markdown(benign_plan(0), app(), "dev", analysis_note="unavailable"))
    (shown,) = [line for line in text_nodes(text) if line.startswith("Latest analysis")]
    assert shown.replace(ZWJ, "") == f"Latest analysis: {note}"
    assert not re.search(r"@\w|#\d|://", shown)


def test_the_escaping_changes_no_ordinary_name_or_note():
    # Every golden file stays byte-identical: DNS names, tags, and the note with its $VARIABLE_NAME.
    reading = plan.Plan(
        plan.MOVE,
        plan.Traffic("", 10, "6.8.0", "6.9.0-rc.1_b2"),
        plan.Traffic("", 60, "6.8.0", "6.9.0-rc.1_b2"),
        (plan.Change("update", "kubernetes:apps/v1:Deployment", "podinfo-ga"),),
    )
    note = "no Prometheus URL given (--prometheus, $PROMETHEUS_URL or prometheusUrl)"
    text = plan_markdown.markdown(reading, app(), "local", analysis_note=note)
    assert "### canary plan: `local`" in text
    assert "(6.9.0-rc.1_b2); GA 6.8.0 keeps 40 %." in text and "| canary 6.9.0-rc.1_b2 | 10 % | 60 % |" in text
    assert f"Latest analysis: {note}\n" in text
    assert "<sub>Changes in the preview: update Deployment podinfo-ga.</sub>" in text
