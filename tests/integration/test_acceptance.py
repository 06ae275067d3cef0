"""Acceptance checks before a step (canaryAcceptance) against real local HTTP servers: a passing check is in the
commit, a failing, slow or unreachable one blocks the step with exit 6 and changes nothing (never a rollback),
checks gate only the steps they name, and --force records what it overrode."""

from __future__ import annotations

import json

from istio_canary.cli import EXIT_OK
from istio_canary.exits import EXIT_BLOCKED
from tests.integration import servers
from tests.integration.cli import canary
from tests.integration.conftest import stack_text


def with_checks(checks: list[dict], **kwargs) -> str:
    return stack_text(**kwargs) + f"  istio-canary:canaryAcceptance: {json.dumps(checks)}\n"


def promote(capsys, repo, *extra):
    return canary(capsys, "promote", "-C", repo.work, "--no-notify", *extra)


def answering(status: int):
    return servers.stub(lambda _request: (status, {"Content-Type": "text/plain"}, b"ok"))


def test_a_passing_check_goes_into_the_commit(capsys, repo):
    with answering(200) as (url, seen):
        repo.write_stack(with_checks([{"url": f"{url}/ready?token=not-shown"}]))
        result = promote(capsys, repo)
    assert result.code == EXIT_OK, result.err
    assert [request.path for request in seen] == ["/ready?token=not-shown"]
    message = repo.message()
    assert f"Acceptance checks:\n  PASS GET {url}/ready -> HTTP 200 (expected 200) in " in message
    assert "token=not-shown" not in message + result.out + result.err


def test_a_failing_check_blocks_the_step_with_exit_6_and_no_commit(capsys, repo):
    with answering(503) as (url, _seen):
        repo.write_stack(with_checks([{"url": f"{url}/ready"}, {"url": f"{url}/smoke", "status": 503}]))
        head = repo.head()
        result = promote(capsys, repo)
    assert result.code == EXIT_BLOCKED
    assert "1 of 2 acceptance check(s) failed: the step to 10 waits (no rollback)" in result.err
    assert f"acceptance: FAIL GET {url}/ready -> HTTP 503 (expected 200)" in result.out
    assert f"acceptance: PASS GET {url}/smoke -> HTTP 503 (expected 503)" in result.out
    assert repo.head() == head and "canaryWeight: 0" in repo.stack.read_text()


def test_a_slow_or_dead_target_fails_within_its_timeout(capsys, repo):
    dead = f"http://127.0.0.1:{servers.free_port()}"
    with servers.raw_stub(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", byte_interval=0.5) as slow:
        repo.write_stack(with_checks([{"url": f"{slow}/ready", "timeout": 1}, {"url": f"{dead}/ready"}]))
        result = promote(capsys, repo)
    assert result.code == EXIT_BLOCKED
    assert result.out.count("acceptance: FAIL") == 2


def test_checks_gate_only_the_steps_they_name(capsys, repo):
    with answering(500) as (url, seen):
        repo.write_stack(with_checks([{"url": f"{url}/load-test", "steps": [60, "finish"]}]))
        result = promote(capsys, repo)  # 0 -> 10: not gated
    assert result.code == EXIT_OK, result.err
    assert seen == [] and "Acceptance checks" not in repo.message()


def test_force_overrides_and_says_so(capsys, repo):
    with answering(500) as (url, _seen):
        repo.write_stack(with_checks([{"url": f"{url}/ready"}]))
        result = promote(capsys, repo, "--force")
    assert result.code == EXIT_OK, result.err
    assert f"FAIL GET {url}/ready -> HTTP 500 (expected 200)" in repo.message()
