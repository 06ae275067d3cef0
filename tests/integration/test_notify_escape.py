"""What reaches Slack is escaped (issue 18): `&`, `<` and `>` become `&amp;`, `&lt;` and `&gt;`, Slack's
mrkdwn escaping, so text the tool did not write (a commit subject, a pull-request title, a --reason, a
resource name in a plan headline) cannot make `<!channel>`, `<!here>`, `<@U123>`, `<#C123>` or a fake
`<url|text>` link. The tool's own formatting (emoji, bold, code, line breaks, bare URLs) is unchanged."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from istio_canary import notify
from istio_canary.cli import EXIT_OK
from tests.integration import servers
from tests.integration.cli import canary
from tests.integration.conftest import stack_text

HOSTILE = "fix <!channel> & <@U123ABC> <#C0123|general> see <https://evil.example/x|the docs> -> done"
ESCAPED = (
    "fix &lt;!channel&gt; &amp; &lt;@U123ABC&gt; &lt;#C0123|general&gt; "
    "see &lt;https://evil.example/x|the docs&gt; -&gt; done"
)


def slack():
    return servers.stub(lambda _request: (200, {"Content-Type": "text/plain"}, b"ok"))


def test_mentions_and_links_are_escaped():
    assert notify.payload(HOSTILE) == {"text": ESCAPED}


def test_the_tools_own_formatting_is_unchanged():
    text = ":rewind: *podinfo* `6.9.1` rolled back\n_dev_ https://github.com/acme/app/pull/7 :white_check_mark:"
    assert notify.payload(text) == {"text": text}


def test_an_ampersand_in_a_url_is_escaped_as_slack_expects():
    """Slack reads `&amp;` back as `&` when it links a URL."""
    url = "https://grafana.example.com/d/x?var-ns=test&from=now-1h"
    assert notify.payload(f"Dashboard: {url}") == {"text": f"Dashboard: {url.replace('&', '&amp;')}"}


def test_text_that_is_already_escaped_is_escaped_again():
    """`&lt;!channel&gt;` typed by someone must arrive as that text, not as a mention Slack decodes."""
    assert notify.payload("&lt;!channel&gt;") == {"text": "&amp;lt;!channel&amp;gt;"}


@given(st.text())
def test_no_escaped_text_holds_a_control_sequence(text):
    sent = notify.payload(text)["text"]
    assert "<" not in sent and ">" not in sent
    assert sent.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


def test_notify_text_reaches_slack_escaped(capsys, repo, monkeypatch):
    with slack() as (url, seen):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", url + "/hook")
        result = canary(capsys, "notify", "-C", repo.work, "--text", HOSTILE)
    assert result.code == EXIT_OK, result.err
    [post] = seen
    assert json.loads(post.body) == {"text": ESCAPED}


def test_the_dry_run_prints_what_would_be_sent(capsys, repo):
    result = canary(capsys, "notify", "-C", repo.work, "--dry-run", "--text", "<!here>")
    assert json.loads(result.out) == {"text": "&lt;!here&gt;"}


@pytest.mark.parametrize("reason", ["<!channel> bad deploy", "see <https://evil.example|runbook>"])
def test_a_rollback_reason_cannot_mention_or_link(capsys, repo, monkeypatch, reason):
    repo.write_stack(stack_text(weight=60))
    with slack() as (url, seen):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", url + "/hook")
        result = canary(capsys, "rollback", "-C", repo.work, "--reason", reason)
    assert result.code == EXIT_OK, result.err
    [post] = seen
    text = json.loads(post.body)["text"]
    assert text.startswith(":rewind: ") and "<" not in text and ">" not in text
    assert reason.replace("<", "&lt;").replace(">", "&gt;") in text
