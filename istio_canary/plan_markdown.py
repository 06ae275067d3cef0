"""The pull request's account of a plan (istio_canary/plan.py) in Markdown: a headline in words, the traffic before and
after per version, Mermaid pie charts of both splits, a loud warning listing every unexpected change, and the
latest analysis with a dashboard link. Pure: the plan and the analysis in, text out.

Every value that comes from the preview (names, kinds, ops, image tags) or from a server (Prometheus' error text)
is shown exactly, and can do nothing else: code spans with a fence longer than any backtick run in the value,
plain text with Markdown and HTML escaped and GitHub's mentions, issue references, bare URLs and math broken by
a zero-width joiner or a backslash, Mermaid labels reduced to characters a label cannot misread. Control and
direction characters are spelled out (`\\n`, `\\u202e`), so nothing starts a new line or hides.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from istio_canary import plan as plans
from istio_canary.analysis import Analysis
from istio_canary.analysis_text import table
from istio_canary.release.model import AppSettings
from istio_canary.release.names import duration_seconds
from istio_canary.release.tagpolicy import TagPolicy
from istio_canary.release.traffic import HEADER, MIRROR

MARKER = "<!-- canary-plan -->"  # the sticky comment's identity: preview.yml edits the comment holding it
# Placed after @ and # (before a digit) and inside :// and www.: GitHub then sees no mention, issue reference or
# link, and the reader sees the same characters.
JOINER = "\u200d"
_HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_SPELLED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ENTITY = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BACKSLASHED = set("\\`*[]|~")  # inline Markdown anywhere in a line; | splits a table cell
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9 ._+-]")  # a Mermaid label keeps only what no parser or directive reads


def _spelled(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        char = match.group()
        return _SPELLED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")

    return _HIDDEN.sub(one, value)


def code(value: str) -> str:
    """`value` as one code span that shows it exactly (a blank span for an empty value)."""
    shown = _spelled(value)
    if not shown:
        return "` `"
    fence = "`" * (max((len(run) for run in re.findall("`+", shown)), default=0) + 1)
    # CommonMark drops one space at each end of a span that has both; a backtick at an end needs the space.
    edges = shown[0] + shown[-1]
    pad = " " if "`" in edges or (edges == "  " and shown.strip(" ")) else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def text(value: str, *, lone_dollar: bool = False) -> str:
    """`value` as plain inline text that shows it exactly. `lone_dollar`: the value is a paragraph's only data and
    math needs two dollars, so a single one may stay as typed (the analysis note names $PROMETHEUS_URL)."""
    shown = _spelled(value)
    escape_dollar = not lone_dollar or shown.count("$") > 1
    out = []
    for index, char in enumerate(shown):
        before, after = shown[index - 1 : index], shown[index + 1 : index + 2]
        if char in _ENTITY:
            out.append(_ENTITY[char])
        elif char in _BACKSLASHED or (char == "$" and escape_dollar):
            out.append("\\" + char)
        elif char == "_" and not (before.isalnum() and after.isalnum()):  # inside a word, _ is never emphasis
            out.append("\\_")
        elif char == "@" or (char == "#" and after.isdigit()) or (char == ":" and shown[index : index + 3] == "://"):
            out.append(char + JOINER)
        elif char == "." and shown[max(index - 3, 0) : index].lower() == "www":
            out.append(JOINER + char)
        else:
            out.append(char)
    return "".join(out)


def _label(value: str) -> str:
    return _LABEL_UNSAFE.sub("?", value)


def _plain(value: str) -> str:
    return value


def _split_words(traffic: plans.Traffic, app: AppSettings, show: Callable[[str], str]) -> str:
    if traffic.shape == MIRROR:
        return f"a {app.mirror_percent} % mirror to the canary {show(traffic.canary_version)} (users get GA's answers)"
    if traffic.shape == HEADER:
        return f"only requests with {show(app.canary_match)} on the canary {show(traffic.canary_version)}"
    return f"{traffic.canary_weight} % canary ({show(traffic.canary_version)})"


def _served(traffic: plans.Traffic, app: AppSettings, show: Callable[[str], str]) -> str:
    """Who the canary answers now, in words ("" for nobody: weight 0, or a mirror whose answers are discarded)."""
    if traffic.shape == HEADER:
        return f"requests with {show(app.canary_match)}"
    return f"{traffic.canary_weight} % of users" if traffic.canary_weight > 0 else ""


def _order(plan: plans.Plan, policy: TagPolicy | None) -> int | None:
    """How the new canary tag compares with the old one by the stack's policy (None: it cannot order both)."""
    if policy is None or plan.kind != plans.NEW_VERSION:
        return None
    return policy.compare(plan.after.canary_version, plan.before.canary_version)


def _order_words(plan: plans.Plan, policy: TagPolicy | None, show: Callable[[str], str]) -> tuple[str, str]:
    """The new tag's order in words, short ("newer by numerical:asc", after "was <old>") and whole ("newer than <old>
    by numerical:asc"); both empty without a policy, and for a newer version by a semver or glob policy, whose order
    a reader sees in the numbers themselves. A build number or a timestamp does not show its order, so it is said."""
    if policy is None:
        return "", ""
    old, rule = show(plan.before.canary_version), show(str(policy))
    order = _order(plan, policy)
    if order is None:
        return f"which {rule} does not order", f"{rule} does not order {old}"
    if order > 0:
        if policy.kind in ("semver", "glob"):
            return "", ""
        return f"newer by {rule}", f"newer than {old} by {rule}"
    if order < 0:
        return f"older than {old} by {rule}", f"older than {old} by {rule}"
    return f"the same version by {rule}", f"the same version as {old} by {rule}"


def _headline(plan: plans.Plan, app: AppSettings, show: Callable[[str], str], policy: TagPolicy | None = None) -> str:
    before, after, name = plan.before, plan.after, show(app.name)
    if plan.kind == plans.MOVE:
        if not before.shape and not after.shape:  # weights only: "from 10 % to 60 % canary (6.15.0)"
            ga = (
                f"GA {show(after.ga_version)} keeps {after.ga_weight} %"
                if after.ga_weight
                else f"GA {show(after.ga_version)} gets none"
            )
            return (
                f"Moves {name} from {before.canary_weight} % to {after.canary_weight} % canary "
                f"({show(after.canary_version)}); {ga}."
            )
        return f"Moves {name} from {_split_words(before, app, show)} to {_split_words(after, app, show)}."
    if plan.kind == plans.ROLLBACK:
        return (
            f"Rolls back {name}: every request to GA {show(after.ga_version)} (was {_split_words(before, app, show)})."
        )
    if plan.kind == plans.NEW_VERSION:
        old, new, served = show(before.canary_version), show(after.canary_version), _served(after, app, show)
        short, whole = _order_words(plan, policy, show)
        if served:  # the canary's share stays, so those users get the new version as soon as its pods roll
            moving = f"{served} move from {old} to {new} at once"
            ordered = f" ({whole})" if whole else ""
            return f"Starts a release of {name} {new}{ordered} while the canary serves traffic: {moving}."
        was = f"was {old}, {short}" if short else f"was {old}"
        return f"Starts a release of {name} {new} ({was}): the canary Deployment changes, no user is sent to it yet."
    if plan.kind == plans.FINISH_GA:
        return (
            f"Finishes the release (1/2): GA runs {show(after.ga_version)}; the canary keeps {after.canary_weight} %."
        )
    if plan.kind == plans.FINISH_TRAFFIC:
        return f"Finishes the release (2/2): every request to GA {show(after.ga_version)}; the canary is idle."
    if plan.kind == plans.NOTHING:
        return f"Changes no traffic of {name}."
    return f"Changes {name}'s traffic and versions at once: review it as two steps."


def headline(plan: plans.Plan, app: AppSettings, policy: TagPolicy | None = None) -> str:
    """One sentence saying what merging does to users (plain text, as `--json` gives it); `policy` (canaryTagPolicy)
    orders a new canary tag against the old one."""
    return _headline(plan, app, _plain, policy)


def _step_back_warning(plan: plans.Plan, policy: TagPolicy | None) -> list[str]:
    """A new canary tag that the stack's own policy orders before the old one: the commit goes back."""
    if (_order(plan, policy) or 0) >= 0:
        return []
    old, new = text(plan.before.canary_version), text(plan.after.canary_version)
    warning = (
        f"> The new canary tag {new} goes back from {old}: {text(str(policy))} orders it before the tag it replaces. "
        "Check that this is the build you mean to release."
    )
    return ["> [!WARNING]", warning, ""]


def _tag_bump_warning(plan: plans.Plan, app: AppSettings) -> list[str]:
    """A new canary tag while the canary serves traffic: the release skips every step below the current share."""
    served = _served(plan.after, app, text)
    if plan.kind != plans.NEW_VERSION or not served:
        return []
    new = text(plan.after.canary_version)
    warning = (
        f"> A new canary tag under traffic skips the gradual steps: {served} get {new} as soon as the canary "
        f"Deployment rolls, without an analysis of {new} at a smaller share first. To release it step by step, "
        "bring the canary to 0 % first (`canaryWeight: 0`), then change the tag."
    )
    return ["> [!WARNING]", warning, ""]


def _unexpected_item(change: plans.Change) -> str:
    op = f"**{change.op}**" if plans.OP.fullmatch(change.op) else code(change.op)
    item = f"> - {op} {code(change.kind)} {code(change.name)}"
    if change.away:
        item += f" in namespace {code(change.away)}"
    if change.urn:
        item += f" (URN {code(change.urn)})"
    return item


def _rows(traffic: plans.Traffic) -> list[tuple[str, str]]:
    share = {"": f"{traffic.canary_weight} %", MIRROR: "0 % (mirrored)", HEADER: "header match only"}
    return [
        (f"GA {text(traffic.ga_version)}", f"{traffic.ga_weight} %"),
        (f"canary {text(traffic.canary_version)}", share[traffic.shape]),
    ]


def _pie(title: str, traffic: plans.Traffic) -> str:
    slices = [
        (f"GA {_label(traffic.ga_version)}", traffic.ga_weight),
        (f"canary {_label(traffic.canary_version)}", traffic.canary_weight),
    ]
    body = "".join(f'    "{label}" : {value}\n' for label, value in slices if value > 0)
    return f"```mermaid\npie showData title {title}\n{body}```"


def mermaid(plan: plans.Plan) -> list[str]:
    """The Mermaid blocks: the split before and after (user traffic by weight; shapes are in the table)."""
    return [_pie("Before", plan.before), _pie("After merge", plan.after)]


def _fenced(body: str) -> list[str]:
    """`body` in a code block whose fence no line of it can close."""
    fence = "`" * max(3, max((len(run) for run in re.findall("`+", body)), default=0) + 1)
    return [fence, body, fence]


def dashboard_link(url: str, result: Analysis | None) -> str:
    """The dashboard, showing the analysis window when there is an analysis (Grafana's from/to in ms)."""
    if result is None:
        return url
    end_ms = int(result.at * 1000)
    start_ms = end_ms - int(duration_seconds(result.window) * 1000)
    return f"{url}{'&' if '?' in url else '?'}from={start_ms}&to={end_ms}"


def markdown(
    plan: plans.Plan,
    app: AppSettings,
    stack: str,
    result: Analysis | None = None,
    analysis_note: str = "",
    dashboard_url: str = "",
    policy: TagPolicy | None = None,
) -> str:
    """The whole comment; `policy` (canaryTagPolicy) orders a new canary tag against the old one."""
    lines = [MARKER, f"### canary plan: {code(stack)}", "", f"**{_headline(plan, app, text, policy)}**", ""]
    lines += _step_back_warning(plan, policy)
    lines += _tag_bump_warning(plan, app)
    if plan.unexpected:
        lines += ["> [!WARNING]", "> This commit changes more than this kind of step should. Stop and check:"]
        lines += [_unexpected_item(change) for change in plan.unexpected]
        lines.append("")
    lines += ["| version | before | after |", "| --- | --- | --- |"]
    for (label_before, before), (label_after, after) in zip(_rows(plan.before), _rows(plan.after), strict=True):
        label = label_after if label_before == label_after else f"{label_before} → {label_after}"
        lines.append(f"| {label} | {before} | {after} |")
    shape_before, shape_after = plan.before.shape or "weights", plan.after.shape or "weights"
    if shape_before != shape_after:
        lines.append(f"| shape | {shape_before} | {shape_after} |")
    lines += ["", *mermaid(plan), ""]
    if result is not None:
        lines += [
            f"Latest analysis: **{result.verdict.value.upper()}**, {result.summary()}",
            "",
            *_fenced(table(result)),
        ]
    elif analysis_note:
        lines.append(f"Latest analysis: {text(analysis_note, lone_dollar=True)}")
    if dashboard_url:
        lines += ["", f"[Dashboard]({dashboard_link(dashboard_url, result)})"]
    # Sorted as shown: the engine's order varies.
    changes = ", ".join(text(words) for words in sorted(_spelled(change.words()) for change in plan.changes))
    lines += ["", f"<sub>Changes in the preview: {changes or 'none'}.</sub>", ""]
    return "\n".join(lines)
