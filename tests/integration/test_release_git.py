"""`canary promote` and `canary rollback` on real git repositories (bare origin + clone)."""

from __future__ import annotations

import json
import time

import pytest

from istio_canary.cli import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from tests.integration import servers
from tests.integration.cli import canary
from tests.integration.conftest import git, stack_text


def promote(capsys, repo, prom=None, *extra):
    args = ["promote", "-C", repo.work]
    if prom is not None:
        args += ["--prometheus", prom.url, "--at", prom.end]
    return canary(capsys, *args, *extra)


def changed_lines(repo, rev: str = "HEAD") -> list[str]:
    """The +/- lines of the stack file in one commit."""
    diff = git(repo.work, "show", "--format=", "-U0", rev, "--", "Pulumi.dev.yaml").splitlines()
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_first_step_needs_no_analysis_and_changes_one_line(capsys, repo):
    before = repo.stack.read_text()
    result = promote(capsys, repo)
    assert result.code == EXIT_OK, result.err
    assert changed_lines(repo) == ["-  istio-canary:canaryWeight: 0", '+  istio-canary:canaryWeight: "10"']
    assert repo.stack.read_text() == before.replace("canaryWeight: 0", 'canaryWeight: "10"')
    subject = repo.message().splitlines()[0]
    assert subject == "canary: promote podinfo-canary 6.9.0 to 10% (first step; no analysis possible at 0%)"
    assert git(repo.work, "show", "--name-only", "--format=", "HEAD").split() == ["Pulumi.dev.yaml"]


def test_promote_after_passing_analysis_records_numbers(capsys, repo, prom):
    repo.write_stack(stack_text(weight=10))
    result = promote(capsys, repo, prom)
    assert result.code == EXIT_OK, result.err
    message = repo.message()
    subject = message.splitlines()[0]
    assert subject.startswith("canary: promote podinfo-canary 6.9.0 to 60% (success 100.0% / p99 2")
    assert subject.endswith("ms over 5m, 3000 requests)")
    assert "verdict: PASS" in message  # the full table is the evidence in the body
    assert "Revert this commit to return to 10%." in message
    assert changed_lines(repo) == ["-  istio-canary:canaryWeight: 10", '+  istio-canary:canaryWeight: "60"']


def test_revert_of_a_promote_restores_the_file_byte_for_byte(capsys, repo, prom):
    repo.write_stack(stack_text(weight=10))
    before = repo.stack.read_bytes()
    assert promote(capsys, repo, prom).code == EXIT_OK
    git(repo.work, "revert", "--no-edit", "HEAD")
    assert repo.stack.read_bytes() == before


@pytest.mark.parametrize(
    ("namespace", "code"), [("errors", EXIT_FAIL), ("slow", EXIT_FAIL), ("idle", EXIT_INCONCLUSIVE)]
)
def test_failing_or_inconclusive_analysis_blocks_promote(capsys, repo, prom, namespace, code):
    repo.write_stack(stack_text(namespace=namespace, weight=10))
    head, before = repo.head(), repo.stack.read_bytes()
    result = promote(capsys, repo, prom)
    assert result.code == code
    assert "not promoting" in result.err
    assert repo.head() == head
    assert repo.stack.read_bytes() == before


def test_force_overrides_a_failing_analysis_and_says_so(capsys, repo, prom):
    repo.write_stack(stack_text(namespace="errors", weight=10))
    result = promote(capsys, repo, prom, "--force")
    assert result.code == EXIT_OK
    assert "to 60% (FORCED, analysis fail: success 95.0%" in repo.message()


def test_prometheus_down_blocks_promote(capsys, repo):
    repo.write_stack(stack_text(weight=10))
    head = repo.head()
    url = f"http://127.0.0.1:{servers.free_port()}"
    result = canary(capsys, "promote", "-C", repo.work, "--prometheus", url, "--timeout", 2)
    assert result.code == EXIT_UNAVAILABLE
    assert repo.head() == head


def test_dirty_tree_is_refused(capsys, repo):
    repo.stack.write_text(repo.stack.read_text() + "# local edit\n")
    head = repo.head()
    for command in ("promote", "rollback", "watch-images"):
        result = canary(capsys, command, "-C", repo.work)
        assert result.code == EXIT_REFUSED
        assert "uncommitted changes" in result.err
    assert repo.head() == head


@pytest.mark.parametrize(
    ("weight", "message"), [(30, "not 0 or a step"), (150, "from 0 to 100"), ("ten", "whole number")]
)
def test_unknown_step_or_bad_weight_is_refused(capsys, repo, weight, message):
    repo.write_stack(stack_text(weight=weight))
    head = repo.head()
    result = promote(capsys, repo, None, "--force")
    assert result.code == EXIT_REFUSED
    assert message in result.err
    assert repo.head() == head


def test_nothing_to_release_when_versions_match(capsys, repo):
    repo.write_stack(stack_text(canary="6.8.0"))
    result = promote(capsys, repo)
    assert result.code == EXIT_REFUSED
    assert "nothing to release" in result.err


def test_a_weight_is_written_as_pulumi_config_set_writes_it(capsys, repo, prom):
    repo.write_stack(stack_text(weight='"60"'))  # what `pulumi config set canaryWeight 60` writes
    assert promote(capsys, repo, prom).code == EXIT_OK
    assert '  istio-canary:canaryWeight: "100"\n' in repo.stack.read_text()


def test_push_reaches_the_bare_origin(capsys, repo):
    result = promote(capsys, repo, None, "--push", "--no-notify")
    assert result.code == EXIT_OK, result.err
    assert repo.origin_head() == repo.head()
    assert 'canaryWeight: "10"' in git(repo.origin, "show", "main:Pulumi.dev.yaml")


def test_finish_is_two_commits_pushed_one_by_one(capsys, repo, prom):
    repo.write_stack(stack_text(weight=100))
    start = repo.count()
    assert promote(capsys, repo, prom).code == EXIT_REFUSED  # at 100 without --finish
    result = promote(capsys, repo, prom, "--finish", "--push")
    assert result.code == EXIT_OK, result.err
    assert repo.count() == start + 2
    assert changed_lines(repo, "HEAD~1") == ["-  istio-canary:gaVersion: 6.8.0", "+  istio-canary:gaVersion: 6.9.0"]
    assert changed_lines(repo, "HEAD") == ["-  istio-canary:canaryWeight: 100", '+  istio-canary:canaryWeight: "0"']
    assert "(1/2)" in repo.message("HEAD~1") and "(2/2)" in repo.message("HEAD")
    assert repo.origin_head() == repo.head()
    assert result.out.count("pushed ") == 2
    # A finished release leaves nothing to promote.
    assert promote(capsys, repo).code == EXIT_REFUSED


def test_finish_resumes_after_the_first_commit(capsys, repo, prom):
    repo.write_stack(stack_text(weight=100, ga="6.9.0"))  # step 1/2 already done
    start = repo.count()
    assert promote(capsys, repo, prom, "--finish").code == EXIT_OK
    assert repo.count() == start + 1
    assert "(2/2)" in repo.message()


def slack(status: int = 200):
    return servers.stub(lambda _request: (status, {"Content-Type": "text/plain"}, b"ok" if status == 200 else b"no"))


def test_rollback_commits_evidence_and_notifies(capsys, repo, prom, monkeypatch):
    repo.write_stack(stack_text(namespace="errors", weight=60))
    with slack() as (url, seen):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", url + "/services/T000/B000/XXX")
        result = canary(
            capsys, "rollback", "-C", repo.work, "--prometheus", prom.url, "--at", prom.end, "--reason", "5xx spike"
        )
    assert result.code == EXIT_OK, result.err
    message = repo.message()
    assert message.startswith("canary: roll back podinfo-canary 6.9.0 from 60% to 0% (success 95.0% / p99")
    assert "Reason: 5xx spike" in message and "verdict: FAIL" in message
    assert changed_lines(repo) == ["-  istio-canary:canaryWeight: 60", '+  istio-canary:canaryWeight: "0"']
    [post] = seen
    assert post.method == "POST" and post.path == "/services/T000/B000/XXX"
    assert post.headers["Content-Type"] == "application/json"
    text = json.loads(post.body)["text"]
    assert "roll back podinfo-canary 6.9.0 from 60% to 0%" in text and "5xx spike" in text


def test_rollback_is_not_blocked_by_slack_or_prometheus_failures(capsys, repo, monkeypatch):
    repo.write_stack(stack_text(weight=10))
    dead = f"http://127.0.0.1:{servers.free_port()}"
    with slack(500) as (url, seen):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
        result = canary(capsys, "rollback", "-C", repo.work, "--prometheus", dead, "--timeout", 2)
    assert result.code == EXIT_OK
    assert len(seen) == 1
    assert "notification not sent" in result.err
    assert 'canaryWeight: "0"' in repo.stack.read_text()
    assert "Analysis unavailable" in repo.message()


def test_rollback_at_zero_does_nothing(capsys, repo):
    head = repo.head()
    result = canary(capsys, "rollback", "-C", repo.work)
    assert result.code == EXIT_OK
    assert "nothing to roll back" in result.out
    assert repo.head() == head


def test_failed_git_commit_leaves_the_tree_clean(capsys, repo, monkeypatch):
    # No identity anywhere: git commit fails. The stack file must not stay modified and staged, or every
    # later run is refused as dirty.
    for key in ("user.name", "user.email"):
        git(repo.work, "config", "--unset", key)
    git(repo.work, "config", "user.useConfigOnly", "true")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    head, before = repo.head(), repo.stack.read_bytes()
    result = promote(capsys, repo, None, "--no-notify")
    assert result.code == EXIT_REFUSED
    assert "git commit" in result.err and "restored; nothing was committed" in result.err
    assert repo.head() == head
    assert repo.stack.read_bytes() == before
    assert git(repo.work, "status", "--porcelain", "--untracked-files=no") == ""
    git(repo.work, "config", "user.name", "Canary Test")
    git(repo.work, "config", "user.email", "canary@example.com")
    assert promote(capsys, repo, None, "--no-notify").code == EXIT_OK  # not refused as dirty


def test_failed_push_says_the_local_commit_exists(capsys, repo):
    head = repo.head()
    result = promote(capsys, repo, None, "--push", "--remote", "nowhere", "--no-notify")
    assert result.code == EXIT_REFUSED
    assert repo.head() != head and repo.origin_head() == head
    assert f"The local commit {repo.head()[:12]} exists" in result.err


def test_finish_second_commit_carries_the_analysis(capsys, repo, prom):
    repo.write_stack(stack_text(weight=100))
    assert promote(capsys, repo, prom, "--finish").code == EXIT_OK
    assert "(2/2)" in repo.message() and "verdict: PASS" in repo.message()
    assert "success_rate 100.0% >= 99.0%" in repo.message()


def test_finish_one_commit_leaves_step_two_for_the_next_run(capsys, repo, prom):
    repo.write_stack(stack_text(weight=100))
    start = repo.count()
    assert promote(capsys, repo, prom, "--finish", "--one-commit").code == EXIT_OK
    assert repo.count() == start + 1 and "(1/2)" in repo.message()
    assert promote(capsys, repo, prom, "--finish", "--one-commit").code == EXIT_OK
    assert repo.count() == start + 2 and "(2/2)" in repo.message()


def test_forced_promote_without_prometheus_records_why(capsys, repo):
    repo.write_stack(stack_text(weight=10))
    dead = f"http://127.0.0.1:{servers.free_port()}"
    result = canary(capsys, "promote", "-C", repo.work, "--prometheus", dead, "--timeout", 2, "--force", "--no-notify")
    assert result.code == EXIT_OK, result.err
    message = repo.message()
    assert "FORCED, analysis unavailable" in message.splitlines()[0]
    assert "Analysis unavailable: Prometheus at " in message and "unreachable" in message


def test_slow_prometheus_blocks_promote(capsys, repo):
    repo.write_stack(stack_text(weight=10))
    head, before = repo.head(), repo.stack.read_bytes()

    def sleepy(_request):
        time.sleep(1.5)
        return 200, {"Content-Type": "application/json"}, b"{}"

    with servers.stub(sleepy) as (url, _seen):
        result = canary(capsys, "promote", "-C", repo.work, "--prometheus", url, "--timeout", 0.3)
    assert result.code == EXIT_UNAVAILABLE
    assert "did not answer within 0.3s" in result.err
    assert repo.head() == head and repo.stack.read_bytes() == before


def test_rollback_repairs_an_invalid_weight(capsys, repo):
    repo.write_stack(stack_text(weight=150))
    result = canary(capsys, "rollback", "-C", repo.work, "--no-notify")
    assert result.code == EXIT_OK, result.err
    assert '  istio-canary:canaryWeight: "0"\n' in repo.stack.read_text()
    message = repo.message()
    assert message.startswith("canary: roll back podinfo-canary 6.9.0 from invalid weight 150 to 0%")
    assert "The previous canaryWeight 150 was invalid" in message


def test_rollback_still_validates_the_other_keys(capsys, repo):
    repo.write_stack(stack_text(weight=150, window="five minutes"))
    head = repo.head()
    result = canary(capsys, "rollback", "-C", repo.work, "--no-notify")
    assert result.code == EXIT_REFUSED
    assert "analysisWindow" in result.err
    assert repo.head() == head


def test_rollback_with_a_malformed_webhook_url_still_succeeds(capsys, repo, monkeypatch):
    repo.write_stack(stack_text(weight=60))
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "hooks.slack.com/services/x")  # no scheme
    result = canary(capsys, "rollback", "-C", repo.work)
    assert result.code == EXIT_OK, result.err
    assert "warning: notification not sent" in result.err and "not an http(s) URL" in result.err
    assert "Traceback" not in result.err
    assert 'canaryWeight: "0"' in repo.stack.read_text()


def test_a_rolled_back_version_is_not_promoted_again(capsys, repo):
    assert promote(capsys, repo, None, "--no-notify").code == EXIT_OK  # 0 -> 10
    assert canary(capsys, "rollback", "-C", repo.work, "--no-notify").code == EXIT_OK
    head = repo.head()
    result = promote(capsys, repo, None, "--no-notify")
    assert result.code == EXIT_REFUSED
    assert "6.9.0 was rolled back" in result.err
    assert repo.head() == head
    status = json.loads(canary(capsys, "status", "-C", repo.work, "--json").out)
    assert status["next"] == {"action": "rolled-back", "to": 10, "needs_analysis": False, "shape": ""}
    # --force goes ahead and says so in the commit.
    assert promote(capsys, repo, None, "--force", "--no-notify").code == EXIT_OK
    assert "was rolled back: canary: roll back podinfo-canary 6.9.0" in repo.message()
    git(repo.work, "reset", "-q", "--hard", "HEAD~1")
    # A newer canary version (what watch-images commits) is a fresh start.
    repo.write_stack(stack_text(canary="6.9.1"), "canary: new canary image podinfo 6.9.1")
    assert promote(capsys, repo, None, "--no-notify").code == EXIT_OK


def test_a_rollback_of_an_earlier_release_of_the_same_version_does_not_count(capsys, repo):
    assert promote(capsys, repo, None, "--no-notify").code == EXIT_OK
    assert canary(capsys, "rollback", "-C", repo.work, "--no-notify").code == EXIT_OK
    repo.write_stack(stack_text(canary="6.9.1"), "bump")
    repo.write_stack(stack_text(canary="6.9.0"), "back to 6.9.0 by hand, after a fix of the image")
    assert promote(capsys, repo, None, "--no-notify").code == EXIT_OK


def test_dirty_tree_lines_are_aligned(capsys, repo):
    repo.stack.write_text(repo.stack.read_text() + "# local edit\n")
    (repo.work / "Pulumi.yaml").write_text("name: edited\n")
    git(repo.work, "add", "Pulumi.yaml")
    result = canary(capsys, "promote", "-C", repo.work)
    assert result.code == EXIT_REFUSED
    assert "\n    M  Pulumi.dev.yaml" in result.err and "\n    M  Pulumi.yaml" in result.err


def test_every_command_speaks_json(capsys, repo, prom):
    """--json: one object on stdout (human lines on stderr), so workflows need not parse git log."""
    first = promote(capsys, repo, None, "--no-notify", "--json")
    assert first.code == EXIT_OK, first.err
    data = json.loads(first.out)
    assert (data["action"], data["from"], data["to"], data["commits"]) == ("promote", 0, 10, [repo.head()])
    assert "committed" in first.err
    assert data["subject"] == repo.message().splitlines()[0] and data["message"].strip() == repo.message().strip()
    second = promote(capsys, repo, prom, "--no-notify", "--json")
    assert json.loads(second.out)["analysis"]["verdict"] == "pass"
    back = canary(capsys, "rollback", "-C", repo.work, "--no-notify", "--json", "--reason", "test")
    data = json.loads(back.out)
    assert (data["action"], data["from"], data["to"], data["commits"]) == ("rollback", 60, 0, [repo.head()])
    again = canary(capsys, "rollback", "-C", repo.work, "--no-notify", "--json")
    assert json.loads(again.out)["action"] == "none"
    dry = canary(capsys, "notify", "-C", repo.work, "--dry-run", "--json")
    assert json.loads(dry.out)["payload"]["text"].startswith("podinfo (dev)")
    refused = promote(capsys, repo, None, "--no-notify", "--json")  # 6.9.0 was rolled back
    assert refused.code == EXIT_REFUSED
    assert json.loads(refused.out) | {"error": ""} == {"error": "", "exit_code": 4, "exit": "refused"}
