"""`canary rollback`: the evidence is best-effort. Whatever Prometheus answers (an error the API names, garbage,
a query it cannot parse, a slow answer), the rollback commits and its message says the evidence is missing and
why. The stand-in Prometheus answers verbatim bytes in each of HTTP's three connection styles (HTTP/1.1
keep-alive, HTTP/1.0, HTTP/1.1 with `Connection: close`)."""

from __future__ import annotations

import json
import time

import pytest

from istio_canary.cli import EXIT_OK
from istio_canary.stackfile import StackFile
from tests.integration import servers
from tests.integration.cli import canary
from tests.integration.conftest import stack_text

STYLES = {
    "keep-alive": ("HTTP/1.1", ""),
    "http/1.0": ("HTTP/1.0", ""),
    "connection-close": ("HTTP/1.1", "Connection: close\r\n"),
}


def weight(repo) -> int:
    """The canary weight the stack file holds now (however it is written)."""
    return StackFile(repo.stack).view().app.canary_weight


def answer(status: str, body: bytes, style: str, content_type: str = "application/json") -> bytes:
    """One whole HTTP response in `style`."""
    version, extra = STYLES[style]
    head = f"{version} {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


BAD_DATA = json.dumps(
    {"status": "error", "errorType": "bad_data", "error": 'invalid parameter "query": 1:9: parse error'}
).encode()
# Prometheus answers a query it cannot parse with 400; a proxy in front of it may turn that into a 200.
ANSWERS = {
    "bad_data 400": ("400 Bad Request", BAD_DATA, "application/json", "could not parse its query"),
    "bad_data 200": ("200 OK", BAD_DATA, "application/json", "could not parse its query"),
    "execution 503": (
        "503 Service Unavailable",
        json.dumps({"status": "error", "errorType": "execution", "error": "query timed out"}).encode(),
        "application/json",
        "HTTP 503",
    ),
    "an HTML page": ("200 OK", b"<html><body>Sign in</body></html>", "text/html", "malformed answer"),
    "a negative count": (
        "200 OK",
        json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "-5"]}]}}
        ).encode(),
        "application/json",
        "not a finite number >= 0",
    ),
}


@pytest.mark.parametrize("style", list(STYLES))
@pytest.mark.parametrize("case", list(ANSWERS))
def test_any_evidence_error_still_rolls_back_and_says_why(capsys, repo, case, style):
    status, body, content_type, why = ANSWERS[case]
    repo.write_stack(stack_text(weight=60))
    head, commits = repo.head(), repo.count()
    with servers.raw_stub(answer(status, body, style, content_type)) as url:
        result = canary(capsys, "rollback", "-C", repo.work, "--prometheus", url, "--no-notify", "--json")
    assert result.code == EXIT_OK, result.err
    assert repo.count() == commits + 1 and repo.head() != head
    assert weight(repo) == 0
    message = repo.message()
    assert message.startswith("canary: roll back podinfo-canary 6.9.0 from 60% to 0% (evidence missing)")
    assert "Evidence missing: a rollback never waits for the analysis. Analysis unavailable: " in message
    assert why in message
    data = json.loads(result.out)
    assert data["action"] == "rollback" and data["analysis"] is None and why in data["evidence_error"]


def test_a_slow_prometheus_holds_the_rollback_for_one_timeout_in_all(capsys, repo):
    """Every query of the analysis answers just under the per-request timeout: the evidence has one deadline
    for all of them, not one per query (6 queries x 0.9 s would be 5.4 s)."""
    repo.write_stack(stack_text(weight=60))
    empty = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()

    def slow(_request):
        time.sleep(0.9)
        return 200, {"Content-Type": "application/json"}, empty

    started = time.monotonic()
    with servers.stub(slow) as (url, seen):
        result = canary(capsys, "rollback", "-C", repo.work, "--prometheus", url, "--timeout", 1, "--no-notify")
    elapsed = time.monotonic() - started
    assert result.code == EXIT_OK, result.err
    assert weight(repo) == 0
    assert "Evidence missing" in repo.message() and "1s" in repo.message()
    assert len(seen) <= 2  # the deadline ended the evidence, not the number of queries
    assert elapsed < 4  # hang detector: six queries of 0.9 s would be 5.4 s


def test_a_prometheus_url_the_tool_refuses_still_rolls_back(capsys, repo, monkeypatch):
    """Credentials over plain http to another host are refused for the analysis; the rollback goes ahead."""
    repo.write_stack(stack_text(weight=10))
    monkeypatch.setenv("PROMETHEUS_URL", "http://user:secret@prometheus.example.com:9090")
    result = canary(capsys, "rollback", "-C", repo.work, "--no-notify")
    assert result.code == EXIT_OK, result.err
    message = repo.message()
    assert "Evidence missing" in message and "refusing to send credentials over plain http" in message
    assert "secret" not in message and "secret" not in result.err and "secret" not in result.out
