"""The agent's Git side under faults, with real parts: the pull-request client against the GitHub stand-in
(testkit/githost.py) misbehaving over HTTP/1.0, HTTP/1.1 keep-alive and `Connection: close`; proposal branches
on a real bare origin where a reviewer pushed; a push to main that loses the race to a person; and a clone
left unusable by a killed git.

Deadline tests bound the call far below what the hostile server would take (never a performance assertion).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from istio_canary import gitops
from istio_canary.agent import workspace
from istio_canary.agent.pulls import PullError, PullRequests
from istio_canary.exits import EXIT_OK, EXIT_REFUSED
from istio_canary.lock import RepoLock
from testkit.githost import HTTP_VARIANTS, GitHost
from tests.integration.cli import canary
from tests.integration.conftest import Repo, git, stack_text

OWNER, NAME, TOKEN = "acme", "istio-canary", "test-token-do-not-print"
BRANCH = "canary/dev-6.9.0-60"
AGENT = ("canary-agent", "canary-agent@users.noreply.github.com")
REVIEWER = ("Rita Reviewer", "rita@example.com")
PERSON = ("Pat Person", "pat@example.com")


def identity(who: tuple[str, str]) -> list[str]:
    return ["-c", f"user.name={who[0]}", "-c", f"user.email={who[1]}", "-c", "commit.gpgsign=false"]


def clone_as(origin: Path, where: Path, who: tuple[str, str]) -> Path:
    """A person's own clone of `origin`, committing as `who`."""
    subprocess.run(["git", "clone", "-q", str(origin), str(where)], check=True, timeout=30, capture_output=True)
    git(where, "config", "user.name", who[0])
    git(where, "config", "user.email", who[1])
    git(where, "config", "commit.gpgsign", "false")
    return where


def set_line(path: Path, key: str, value: str) -> None:
    """Change the `key:` line of a stack file (a person's hand edit)."""
    lines = path.read_text().splitlines(keepends=True)
    prefix = f"  {key}:"
    edited = [f"{prefix} {value}\n" if line.startswith(prefix) else line for line in lines]
    assert edited != lines, key
    path.write_text("".join(edited))


# --- the pull-request client -------------------------------------------------------------------------------


def pulls_for(host: GitHost, deadline_s: float = 20.0, **bounds) -> PullRequests:
    return PullRequests(f"https://github.com/{OWNER}/{NAME}.git", TOKEN, host.url, deadline_s=deadline_s, **bounds)


def timed_failure(call) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(PullError) as failed:
        call()
    return str(failed.value), time.monotonic() - start


@pytest.fixture(params=HTTP_VARIANTS)
def host(request, repo: Repo):
    with GitHost(OWNER, NAME, token=TOKEN, origin=repo.origin, http=request.param) as stand_in:
        yield stand_in


def push_proposal(repo: Repo, branch: str = BRANCH, weight: int = 60) -> None:
    git(repo.work, "checkout", "-q", "-B", branch, "main")
    set_line(repo.stack, "istio-canary:canaryWeight", str(weight))
    git(repo.work, "commit", "-qam", f"canary: {weight}%")
    git(repo.work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    git(repo.work, "checkout", "-q", "main")


def test_the_client_works_over_every_http_variant(host, repo):
    push_proposal(repo)
    pulls = pulls_for(host)
    assert pulls.open_for(BRANCH) is None
    url = pulls.create(BRANCH, "main", "canary: 60%", "evidence")
    found = pulls.open_for(BRANCH)
    assert found is not None and (found.number, found.url) == (1, url)
    pulls.update(found.number, "canary: 60% (again)", "new evidence")
    assert (host.pulls[1].title, host.pulls[1].body) == ("canary: 60% (again)", "new evidence")
    assert host.refused() == []


@pytest.mark.parametrize("fault", ["hang", "drip body", "drip headers"])
def test_a_silent_or_dripping_api_ends_at_the_deadline(host, repo, fault):
    """Without an overall deadline each of these held the agent for as long as the server liked (a hang forever;
    a drip for as many bytes as it has, each within the read timeout)."""
    push_proposal(repo)
    pulls_for(host).create(BRANCH, "main", "canary: 60%", "evidence")  # so the answer is ~10 KB long
    pulls = pulls_for(host, deadline_s=1.0, read_s=5.0)
    if fault == "hang":
        host.hang(seconds=60)
    else:
        host.drip(every=0.3, headers=fault == "drip headers")  # an hour at this pace
    message, took = timed_failure(lambda: pulls.open_for(BRANCH))
    assert message == "list pull requests: no complete answer within 1s"
    assert took < 15
    assert pulls.open_for(BRANCH) is not None  # the next call is a new operation with its own deadline


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (
            200,
            b"<html><body>Sign in to the proxy</body></html>",
            "text/html",
            "list pull requests: answer 200 is not JSON (text/html): <html><body>Sign in to the proxy</body></html>",
        ),
        (200, b'{"number": 1}', "application/json", "list pull requests: expected a JSON list, got an object"),
        (200, b'[{"number": 1}]', "application/json", "list pull requests: an item has no head.ref"),
        (
            200,
            json.dumps([{"number": "1", "html_url": "x", "head": {"ref": BRANCH}}]).encode(),
            "application/json",
            "list pull requests: the pull request has no valid number: 1",
        ),
        (502, b'{"message": "Server Error"}', "application/json", "list pull requests: 502 Bad Gateway: Server Error"),
        (503, b"<html>upstream down</html>", "text/html", "list pull requests: 503 Service Unavailable: <html>"),
        (401, b'{"message": "Bad credentials"}', "application/json", "list pull requests: 401 Unauthorized"),
    ],
)
def test_every_wrong_answer_is_one_error_type(host, status, body, content_type, expected):
    host.answer(status, body, content_type)
    message, _ = timed_failure(lambda: pulls_for(host).open_for(BRANCH))
    assert message.startswith(expected)
    assert TOKEN not in message


def test_an_answer_over_the_byte_cap_is_refused(host):
    huge = b"[" + b" " * (3 << 20) + b"]"  # 3 MiB of a valid empty list
    host.answer(200, huge)
    message, _ = timed_failure(lambda: pulls_for(host, max_bytes=1 << 20).open_for(BRANCH))
    assert message == f"list pull requests: answer is larger than {1 << 20} bytes ({len(huge)})"


def test_a_dripped_answer_without_length_is_capped_too(repo):
    """HTTP/1.0 without Content-Length: the cap is counted while reading, not taken from a header."""
    push_proposal(repo)
    with GitHost(OWNER, NAME, token=TOKEN, origin=repo.origin, http="1.0") as host:
        pulls_for(host).create(BRANCH, "main", "canary: 60%", "evidence")
        host.drip(every=0.001)
        message, _ = timed_failure(lambda: pulls_for(host, max_bytes=1024).open_for(BRANCH))
    assert message == "list pull requests: answer is larger than 1024 bytes"


def test_create_and_update_check_their_answers(host, repo):
    push_proposal(repo)
    pulls = pulls_for(host)
    host.answer(201, b"<html>created?</html>", "text/html")
    message, _ = timed_failure(lambda: pulls.create(BRANCH, "main", "t", "b"))
    assert message.startswith("open a pull request: answer 201 is not JSON (text/html)")
    host.answer(201, b"[]")
    message, _ = timed_failure(lambda: pulls.create(BRANCH, "main", "t", "b"))
    assert message == "open a pull request: expected a pull request object, got a list"
    host.answer(200, b'{"number": 3}')
    message, _ = timed_failure(lambda: pulls.update(3, "t", "b"))
    assert message == "update a pull request: pull request #3 has no html_url"


def test_a_list_of_other_branches_is_not_this_branchs_pull_request(host, repo):
    """GitHub ignores a `head` filter it cannot read and lists every open pull request: only ours counts."""
    other = {"number": 7, "html_url": "https://example.invalid/7", "head": {"ref": "someone/else"}}
    host.answer(200, json.dumps([other]).encode())
    assert pulls_for(host).open_for(BRANCH) is None


def test_an_unreachable_api_is_a_pull_error(repo):
    with GitHost(OWNER, NAME, token=TOKEN) as host:
        url = host.url
    pulls = PullRequests(f"https://github.com/{OWNER}/{NAME}.git", TOKEN, url)
    message, took = timed_failure(lambda: pulls.open_for(BRANCH))
    assert message.startswith("list pull requests: ConnectError: ")
    assert took < 15


# --- proposal branches: never over someone else's commits ----------------------------------------------


def agent_clone(repo: Repo, tmp_path: Path) -> Path:
    return workspace.sync(str(repo.origin), tmp_path / "agent")


def propose(clone: Path, weight: int, evidence: str = "success 100%") -> str:
    """What the agent does for a proposal: a branch off main, one commit, pushed."""
    workspace.start_branch(clone, BRANCH)
    set_line(clone / "Pulumi.dev.yaml", "istio-canary:canaryWeight", str(weight))
    sha = gitops.commit(clone, clone / "Pulumi.dev.yaml", f"canary: promote to {weight}% ({evidence})")
    workspace.push_branch(clone, BRANCH)
    gitops.run(clone, "checkout", "--quiet", workspace.BRANCH)
    return sha


def remote_tip(repo: Repo, branch: str = BRANCH) -> str:
    return git(repo.origin, "rev-parse", f"refs/heads/{branch}").strip()


def test_the_agent_replaces_its_own_proposal(repo, tmp_path):
    clone = agent_clone(repo, tmp_path)
    first = propose(clone, 60)
    assert remote_tip(repo) == first
    workspace.sync(str(repo.origin), clone)
    second = propose(clone, 60, "success 99.9%")  # a fresh analysis: the agent's own branch, rewritten
    assert second != first and remote_tip(repo) == second


def test_a_reviewers_commit_on_the_proposal_branch_is_never_overwritten(repo, tmp_path):
    """A 5xx hid the open pull request, so the agent proposed again: it used to `push --force` its branch over
    the commit a reviewer had pushed to it."""
    clone = agent_clone(repo, tmp_path)
    propose(clone, 60)
    reviewer = clone_as(repo.origin, tmp_path / "reviewer", REVIEWER)
    git(reviewer, "checkout", "-q", BRANCH)
    set_line(reviewer / "Pulumi.dev.yaml", "istio-canary:canaryWeight", "50")
    git(reviewer, "commit", "-qam", "review: 50% is enough for the first step")
    git(reviewer, "push", "-q", "origin", BRANCH)
    reviewed = remote_tip(repo)

    workspace.sync(str(repo.origin), clone)
    with pytest.raises(workspace.ForeignCommits) as refused:
        propose(clone, 60, "a fresh analysis")
    assert remote_tip(repo) == reviewed
    assert str(refused.value) == (
        f"{BRANCH} on the remote has 1 commit(s) the agent did not write "
        f"({reviewed[:12]} by {REVIEWER[0]} <{REVIEWER[1]}>); leaving the branch as it is"
    )
    assert isinstance(refused.value, gitops.GitError)  # callers that catch GitError skip the pull request


def test_a_commit_by_the_agents_name_but_someone_elses_hand_is_foreign(repo, tmp_path):
    """An amended or rebased agent commit keeps its author but not its committer: not the agent's any more."""
    clone = agent_clone(repo, tmp_path)
    propose(clone, 60)
    reviewer = clone_as(repo.origin, tmp_path / "reviewer", REVIEWER)
    git(reviewer, "checkout", "-q", BRANCH)
    git(reviewer, "commit", "-q", "--amend", "-m", "canary: promote to 60% (reworded)")
    git(reviewer, "push", "-q", "--force", "origin", BRANCH)
    workspace.sync(str(repo.origin), clone)
    with pytest.raises(workspace.ForeignCommits):
        propose(clone, 60, "a fresh analysis")


def test_a_reviewer_pushing_during_the_agents_push_wins(repo, tmp_path):
    """The check and the push are not atomic: --force-with-lease makes the push fail when the branch moved."""
    clone = agent_clone(repo, tmp_path)
    propose(clone, 60)
    reviewer = clone_as(repo.origin, tmp_path / "reviewer", REVIEWER)
    git(reviewer, "checkout", "-q", BRANCH)
    git(reviewer, "commit", "-q", "--allow-empty", "-m", "review: a note")
    # git runs pre-push after the agent's check and before the remote compares: the reviewer pushes right then.
    hook = clone / ".git" / "hooks" / "pre-push"
    hook.write_text(f"#!/bin/sh\nunset $(env | grep -o '^GIT_[A-Z_]*')\ngit -C '{reviewer}' push -q origin {BRANCH}\n")
    hook.chmod(0o755)
    workspace.sync(str(repo.origin), clone)
    with pytest.raises(workspace.ForeignCommits, match="moved while the agent pushed"):
        propose(clone, 60, "a fresh analysis")  # not the first commit again (same second, same sha)
    assert remote_tip(repo) == git(reviewer, "rev-parse", "HEAD").strip()


def test_a_branch_whose_name_ends_like_the_proposal_is_not_taken_for_it(repo, tmp_path):
    """`git ls-remote origin <ref>` also lists refs that merely end the same way."""
    git(repo.work, "push", "-q", "origin", f"main:refs/heads/someone/refs/heads/{BRANCH}")
    clone = agent_clone(repo, tmp_path)
    sha = propose(clone, 60)  # a new branch: no lease on someone else's tip
    assert remote_tip(repo) == sha and remote_tip(repo, f"someone/refs/heads/{BRANCH}") == repo.origin_head()


def test_the_agent_pushes_only_its_own_branches(repo, tmp_path):
    clone = agent_clone(repo, tmp_path)
    with pytest.raises(gitops.GitError, match="only pushes its own branches"):
        workspace.push_branch(clone, "main")


# --- a push to main that a person won: fetch, re-apply the one-value edit, push again -------------------


def person_pushes_first(repo: Repo, tmp_path: Path, key: str, value: str, *, every_fetch: bool = False) -> Path:
    """A person's clone, and a hook in `repo.work` that makes the person change `key` and push to main right
    after the canary command commits (post-commit, once) or, with `every_fetch`, also every time the command
    fetches (reference-transaction on the remote-tracking ref): the command's push always comes second."""
    person = clone_as(repo.origin, tmp_path / "person", PERSON)
    script = tmp_path / "person-pushes.sh"
    script.write_text(
        "#!/bin/sh\n"
        "unset $(env | grep -o '^GIT_[A-Z_]*')\n"
        f"cd '{person}' && git pull -q --ff-only origin main && n=$(git rev-list --count HEAD) && "
        f"sed -i 's|^  {key}:.*|  {key}: {value}|' Pulumi.dev.yaml && "
        f'{{ git diff --quiet || git commit -qam "person\'s change $n"; }} && '
        'git commit -q --allow-empty -m "person\'s commit $n" && git push -q origin HEAD:main\n'
    )
    script.chmod(0o755)
    hooks = repo.work / ".git" / "hooks"
    mark = tmp_path / "pushed-once"
    (hooks / "post-commit").write_text(f"#!/bin/sh\n[ -e '{mark}' ] && exit 0\ntouch '{mark}'\nexec '{script}'\n")
    (hooks / "post-commit").chmod(0o755)
    if every_fetch:
        (hooks / "reference-transaction").write_text(
            "#!/bin/sh\n"
            '[ "$1" = committed ] || exit 0\n'
            f"grep -q ' refs/remotes/origin/main$' && exec '{script}'\n"
            "exit 0\n"
        )
        (hooks / "reference-transaction").chmod(0o755)
    return person


def values(text: str) -> dict[str, str]:
    """A stack file's config as strings (the tool may write a weight bare or quoted, as Pulumi does)."""
    return {key: str(value) for key, value in yaml.safe_load(text)["config"].items()}


def origin_file(repo: Repo, rev: str = "main") -> str:
    return git(repo.origin, "show", f"{rev}:Pulumi.dev.yaml")


def origin_log(repo: Repo) -> list[str]:
    return git(repo.origin, "log", "--format=%s", "main").splitlines()


def test_a_rollback_that_lost_the_race_lands_on_top_of_the_persons_commit(capsys, repo, tmp_path):
    repo.write_stack(stack_text(weight=10), "canary at 10%")
    person_pushes_first(repo, tmp_path, "gcp:region", "europe-west4")
    result = canary(capsys, "rollback", "-C", repo.work, "--push", "--no-notify", "--json")
    assert result.code == EXIT_OK, result.err
    log = origin_log(repo)
    assert log[0].startswith("canary: roll back podinfo-canary 6.9.0 from 10% to 0%")
    assert log[1:3] == ["person's commit 2", "person's change 2"]  # kept, under the rollback
    assert values(origin_file(repo)) == {**values(origin_file(repo, "main~1")), "istio-canary:canaryWeight": "0"}
    assert values(origin_file(repo))["gcp:region"] == "europe-west4"
    # Exactly the one-value edit on top of the person's commit, nothing forced:
    diff = git(repo.origin, "diff", "main~1", "main").splitlines()
    changed = [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert [line.split(":")[1] for line in changed] == ["canaryWeight", "canaryWeight"]
    assert "rejected: someone pushed first; re-applied" in result.err
    data = json.loads(result.out)
    assert data["commits"] == [git(repo.origin, "rev-parse", "main").strip()]
    assert data["message"] == git(repo.origin, "log", "-1", "--format=%B", "main").rstrip("\n") + "\n"
    # The local branch follows, so the person running the command is not left diverged.
    assert repo.head() == data["commits"][0]
    assert git(repo.work, "status", "--porcelain", "--untracked-files=no") == ""


def test_a_promote_that_lost_the_race_is_retried_too(capsys, repo, tmp_path):
    person_pushes_first(repo, tmp_path, "gcp:region", "europe-west4")
    result = canary(capsys, "promote", "-C", repo.work, "--push", "--no-notify")
    assert result.code == EXIT_OK, result.err
    assert origin_log(repo)[:2] == [
        "canary: promote podinfo-canary 6.9.0 to 10% (first step; no analysis possible at 0%)",
        "person's commit 1",
    ]
    assert values(origin_file(repo))["istio-canary:canaryWeight"] == "10"


def test_both_finish_commits_are_re_applied_in_order(capsys, repo, tmp_path):
    repo.write_stack(stack_text(weight=100), "canary at 100%")
    person_pushes_first(repo, tmp_path, "gcp:region", "europe-west4")
    result = canary(capsys, "promote", "-C", repo.work, "--finish", "--force", "--push", "--no-notify")
    assert result.code == EXIT_OK, result.err
    log = origin_log(repo)
    assert log[0].startswith("canary: finish podinfo 6.9.0 (2/2)") and log[1].startswith(
        "canary: finish podinfo 6.9.0 (1/2)"
    )
    assert log[2:4] == ["person's commit 2", "person's change 2"]
    after_1, after_2 = values(origin_file(repo, "main~1")), values(origin_file(repo))
    assert (after_1["istio-canary:gaVersion"], after_1["istio-canary:canaryWeight"]) == ("6.9.0", "100")
    assert (after_2["istio-canary:gaVersion"], after_2["istio-canary:canaryWeight"]) == ("6.9.0", "0")
    assert after_2["gcp:region"] == "europe-west4"
    assert [line.split()[0] for line in result.out.splitlines() if line.startswith("pushed ")] == ["pushed"] * 2


def test_a_person_who_changed_the_same_value_stops_the_retry(capsys, repo, tmp_path):
    repo.write_stack(stack_text(weight=10), "canary at 10%")
    person_pushes_first(repo, tmp_path, "istio-canary:canaryWeight", "60")
    result = canary(capsys, "rollback", "-C", repo.work, "--push", "--no-notify")
    assert result.code == EXIT_REFUSED
    assert "origin's main changed istio-canary:canaryWeight to 60 (this commit changes it from 10 to 0)" in result.err
    assert "nothing was pushed" in result.err
    assert origin_log(repo)[0] == "person's commit 2"  # the person's work, untouched


def test_a_person_who_already_rolled_back_leaves_nothing_to_push(capsys, repo, tmp_path):
    repo.write_stack(stack_text(weight=10), "canary at 10%")
    person_pushes_first(repo, tmp_path, "istio-canary:canaryWeight", "0")
    result = canary(capsys, "rollback", "-C", repo.work, "--push", "--no-notify", "--json")
    assert result.code == EXIT_OK, result.err
    assert origin_log(repo)[0] == "person's commit 2"
    assert "already on origin's main" in result.err
    assert json.loads(result.out)["commits"] == []


def test_a_release_moved_under_the_command_is_not_re_applied(capsys, repo, tmp_path):
    """The rollback names 6.9.0: on a main where the canary runs another version it would be a wrong record."""
    repo.write_stack(stack_text(weight=10), "canary at 10%")
    person_pushes_first(repo, tmp_path, "istio-canary:canaryVersion", '"7.0.0"')
    result = canary(capsys, "rollback", "-C", repo.work, "--push", "--no-notify")
    assert result.code == EXIT_REFUSED
    assert "origin's main changed istio-canary:canaryVersion to 7.0.0 (this commit was made for 6.9.0)" in result.err


def test_the_retries_are_bounded_and_never_forced(capsys, repo, tmp_path):
    repo.write_stack(stack_text(weight=10), "canary at 10%")
    person_pushes_first(repo, tmp_path, "gcp:region", "europe-west4", every_fetch=True)
    result = canary(capsys, "rollback", "-C", repo.work, "--push", "--no-notify")
    assert result.code == EXIT_REFUSED
    assert "rejected 4 times: someone pushes to main faster than this command" in result.err
    subjects = origin_log(repo)
    assert not any(s.startswith("canary:") for s in subjects[:4])
    assert sum(s.startswith("person's commit") for s in subjects) == 4  # every one of them kept


def test_a_push_refused_for_another_reason_is_not_retried(capsys, repo, tmp_path):
    repo.write_stack(stack_text(weight=10), "canary at 10%")
    hook = repo.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = canary(capsys, "rollback", "-C", repo.work, "--push", "--no-notify")
    assert result.code == EXIT_REFUSED
    assert "main is protected" in result.err and "re-applied" not in result.err


# --- a clone the agent cannot use is rebuilt in the same pass ---------------------------------------------


@pytest.fixture
def clone(repo: Repo, tmp_path: Path) -> Path:
    return workspace.sync(str(repo.origin), tmp_path / "agent")


def sync_reporting(repo: Repo, clone: Path) -> list[workspace.Repair]:
    repairs: list[workspace.Repair] = []
    assert workspace.sync(str(repo.origin), clone, on_repair=repairs.append) == clone
    return repairs


def advance_origin(repo: Repo) -> str:
    """A new commit on the origin's main, so a sync that works can be told from one that did nothing."""
    repo.write_stack(stack_text(weight=10), "canary at 10% (from a person)")
    return repo.origin_head()


def corrupt(clone: Path, how: str) -> str:
    dot_git = clone / ".git"
    if how == "stale index.lock":
        (dot_git / "index.lock").write_bytes(b"")
        return "stale lock .git/index.lock"
    if how == "stale ref lock":
        (dot_git / "refs" / "remotes" / "origin" / "main.lock").write_bytes(b"")
        return "stale lock .git/refs/remotes/origin/main.lock"
    if how == "corrupt index":
        (dot_git / "index").write_bytes(b"DIRC\x00\x00\x00\x02garbage")
        return "the index cannot be read"
    if how == "truncated branch":
        (dot_git / "refs" / "heads" / "main").write_bytes(b"")
        return "HEAD does not name a commit"
    if how == "half-written remote ref":
        (dot_git / "refs" / "remotes" / "origin" / "main").write_bytes(b"3f2a")
        return "broken ref"
    if how == "no objects":
        shutil.rmtree(dot_git / "objects")
        return "no .git/objects"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "stale index.lock",
        "stale ref lock",
        "corrupt index",
        "truncated branch",
        "half-written remote ref",
        "no objects",
    ],
)
def test_an_unusable_clone_is_rebuilt_in_the_same_sync(repo, clone, how):
    reason = corrupt(clone, how)
    tip = advance_origin(repo)
    repairs = sync_reporting(repo, clone)
    assert [reason in r.reason for r in repairs] == [True], repairs
    assert gitops.head(clone) == tip  # synced, in this same call
    assert git(clone, "config", "user.name").strip() == AGENT[0]  # the agent's identity again
    assert repairs[0].moved_to is not None and repairs[0].moved_to.exists()  # kept for a post-mortem
    assert sync_reporting(repo, clone) == []  # healthy now: nothing to repair


def test_only_the_last_broken_clone_is_kept(repo, clone):
    corrupt(clone, "stale index.lock")
    first = sync_reporting(repo, clone)[0].moved_to
    corrupt(clone, "corrupt index")
    second = sync_reporting(repo, clone)[0].moved_to
    assert first == second and first is not None
    assert not (first / ".git" / "index.lock").exists()  # the second one's, not the first
    assert sorted(p.name for p in clone.parent.glob("agent*")) == ["agent", "agent.broken"] == [clone.name, first.name]


def test_a_healthy_clone_and_an_unreachable_origin_is_not_a_repair(repo, clone, tmp_path):
    moved = tmp_path / "origin-moved.git"
    repo.origin.rename(moved)
    with pytest.raises(gitops.GitError):
        sync_reporting(repo, clone)
    assert (clone / ".git").is_dir() and gitops.head(clone)  # the clone was left as it was
    assert [p.name for p in clone.parent.glob("agent*")] == [clone.name]
    moved.rename(repo.origin)
    assert sync_reporting(repo, clone) == []


def test_a_lock_a_live_git_holds_is_never_taken(repo, clone):
    """A git that is still running (here: `git commit` waiting for its editor) owns its index.lock: sync fails
    this pass and touches nothing. Killed with SIGKILL, it leaves the lock behind: the next sync repairs."""
    (clone / "note.txt").write_text("x")
    git(clone, "add", "note.txt")
    env = {**os.environ, "GIT_EDITOR": "sleep 60 #"}  # "#": the message file argument is ignored
    holder = subprocess.Popen(
        ["git", "-C", str(clone), "commit", "-q", "--", "note.txt"],  # a partial commit holds index.lock
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not (clone / ".git" / "index.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (clone / ".git" / "index.lock").exists()
        with pytest.raises(gitops.GitError, match=rf"in use by a running git \(pid {holder.pid}\)"):
            sync_reporting(repo, clone)
        assert (clone / ".git" / "index.lock").exists()
        os.killpg(holder.pid, signal.SIGKILL)  # our own process group: git and its editor
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait(timeout=10)
    assert (clone / ".git" / "index.lock").exists()  # left behind, as after a crash
    tip = advance_origin(repo)
    repairs = sync_reporting(repo, clone)
    assert [r.reason for r in repairs] == ["stale lock .git/index.lock (no git process uses the clone)"]
    assert gitops.head(clone) == tip


def test_a_clone_another_canary_command_holds_is_not_moved(repo, clone):
    corrupt(clone, "stale index.lock")
    with RepoLock(clone / ".git"):
        with pytest.raises(gitops.GitError, match="another canary command is running"):
            sync_reporting(repo, clone)
        assert (clone / ".git" / "index.lock").exists()
    assert len(sync_reporting(repo, clone)) == 1


def test_a_directory_that_is_no_clone_is_replaced(repo, tmp_path):
    workdir = tmp_path / "agent"
    workdir.mkdir()
    (workdir / "half-cloned").write_text("a clone killed before it wrote .git")
    repairs = sync_reporting(repo, workdir)
    assert [r.reason for r in repairs] == ["not a git clone (no .git)"]
    assert gitops.head(workdir) == repo.origin_head()
