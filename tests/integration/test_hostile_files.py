"""Files the tool did not write, made hostile: a small YAML alias bomb ("billion laughs"), deep nesting, a recursive
alias, an oversized file, deep preview JSON. Every command refuses them with exit 4 naming the file, quickly; the
platform agent skips only the hostile app stack and keeps serving the others (issue 18).

The commands run as their own processes: a hang must fail the test (`timeout=` is a hang detector, not a
performance assertion), not hold the suite.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from istio_canary.agent import images
from testkit.agentkit import start_agent, stop
from tests.integration import servers
from tests.integration.conftest import ROOT, git, project_dir, stack_text
from tests.integration.test_agent_fleet import AGENT, PLATFORM, app_stack, wait_for

HANG = 60  # seconds: far beyond any honest answer; reaching it means the command hung


def alias_bomb(levels: int = 12, key: str = "istio-canary:canaryMatch") -> str:
    """Config lines whose last value expands to 10**levels strings through nested aliases (a few hundred bytes)."""
    out = [f"  istio-canary:lol0: &a0 [{', '.join(['lol'] * 10)}]"]
    out += [f"  istio-canary:lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    out.append(f"  {key}: *a{levels - 1}")
    return "\n".join(out) + "\n"


def deep_flow(depth: int = 5000) -> str:
    return "  istio-canary:canaryMatch: " + "[" * depth + "]" * depth + "\n"


def deep_block(depth: int = 300) -> str:
    """A mapping nested `depth` levels in block style, one space more per level (45 kB: under the size limit)."""
    return "  istio-canary:canaryMatch:\n" + "".join(f"{' ' * (level + 3)}k:\n" for level in range(depth))


def oversized() -> str:
    return "".join(f"  # {'padding ' * 12}{n}\n" for n in range(20_000))  # about 2 MB of comments


HOSTILE_STACKS = {
    "alias-bomb": stack_text(weight=10) + alias_bomb(),
    "deep-flow": stack_text(weight=10) + deep_flow(),
    "deep-block": stack_text(weight=10) + deep_block(),
    "recursive-alias": stack_text(weight=10) + "  istio-canary:canaryMatch: &loop [x, *loop]\n",
    "oversized": stack_text(weight=10) + oversized(),
}


def run_cli(*args: object, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`canary <args>` as its own process, stopped as a hang after HANG seconds."""
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_URL", "SLACK_WEBHOOK_URL")}
    return subprocess.run(
        [sys.executable, "-m", "istio_canary", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=HANG,
        env=env,
        cwd=ROOT,
        check=False,
    )


def refused(result: subprocess.CompletedProcess, names: str) -> None:
    assert result.returncode == 4, result.stderr[-2000:]
    assert names in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


@pytest.mark.parametrize("kind", sorted(HOSTILE_STACKS))
def test_status_and_rollback_refuse_a_hostile_stack_file_naming_it(repo, kind):
    repo.write_stack(HOSTILE_STACKS[kind], f"a hostile stack file: {kind}")
    before = repo.origin_head()
    refused(run_cli("status", "-C", repo.work, "--stack", "dev"), "Pulumi.dev.yaml")
    refused(run_cli("rollback", "-C", repo.work, "--stack", "dev", "--push", "--no-notify"), "Pulumi.dev.yaml")
    assert repo.origin_head() == before  # nothing committed, nothing pushed
    assert repo.stack.read_text() == HOSTILE_STACKS[kind]


@pytest.mark.parametrize(
    "tail",
    [
        "bomb: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"bomb{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 12)),
        "deep: " + "[" * 5000 + "]" * 5000 + "\n",
    ],
    ids=["alias-bomb", "deep-flow"],
)
def test_a_hostile_project_file_is_refused_naming_it(tmp_path, tail):
    directory = project_dir(tmp_path, stack_text(weight=10))
    project = directory / "Pulumi.yaml"
    project.write_text(project.read_text() + tail)
    refused(run_cli("status", "-C", directory, "--stack", "dev"), "Pulumi.yaml")


@pytest.mark.parametrize(
    "preview",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"steps": [{"op": "update", "urn": "u", "newState": ' + '{"a":' * 5000 + "1" + "}" * 5000 + "}]}",
        '{"steps": ' + "[" * 3000 + "]" * 3000 + "}",
    ],
    ids=["deep-array", "deep-object-in-a-step", "deep-steps"],
)
def test_plan_refuses_deeply_nested_preview_json_naming_it(tmp_path, preview):
    directory = project_dir(tmp_path, stack_text(weight=10))
    (tmp_path / "preview.json").write_text(preview)
    refused(run_cli("plan", "-C", directory, "--stack", "dev", "--preview", tmp_path / "preview.json"), "--preview")
    refused(run_cli("plan", "-C", directory, "--stack", "dev", "--preview", "-", stdin=preview), "--preview -")


def test_a_platform_agent_serves_its_other_app_stacks_past_hostile_ones(tmp_path, repo):
    """The real agent process on a real origin: two hostile app stack files on the platform are skipped (logged,
    unchanged); the healthy app stack is stepped as usual, pass after pass."""
    files = {
        "Pulumi.platform.yaml": PLATFORM + AGENT,
        "Pulumi.aaa.yaml": app_stack("aaa", "platform") + alias_bomb(key="istio-canary:lol"),
        "Pulumi.bbb.yaml": app_stack("bbb", "platform") + deep_flow(),
        "Pulumi.shop.yaml": app_stack("shop", "platform"),
    }
    for name, text in files.items():
        (repo.work / name).write_text(text)
    git(repo.work, "add", *files)
    git(repo.work, "commit", "-qm", "a platform, one healthy app stack, two hostile ones")
    git(repo.work, "push", "-q", "origin", "HEAD:main")
    log = tmp_path / "agent.log"
    dead_prometheus = f"http://127.0.0.1:{servers.free_port()}"
    process = start_agent(
        repo.origin, dead_prometheus, tmp_path / "work", servers.free_port(), log, "--stack", "platform"
    )
    try:
        wait_for(lambda: weight(repo.origin, "Pulumi.shop.yaml") == "10", HANG, log)
    finally:
        stop(process)
    text = log.read_text()
    for name in ("Pulumi.aaa.yaml", "Pulumi.bbb.yaml"):
        assert git(repo.origin, "show", f"main:{name}") == files[name]
        assert name in text  # the skip is logged naming the file
    assert "RecursionError" not in text and "sync failed" not in text


def weight(origin: Path, name: str) -> str:
    """canaryWeight in `name` on the origin's main, as text (Pulumi writes it quoted, a person may not)."""
    config = yaml.safe_load(git(origin, "show", f"main:{name}"))["config"]
    return str(config.get("istio-canary:canaryWeight"))


@contextmanager
def bounded(seconds: int) -> Iterator[None]:
    """Raise TimeoutError in this thread when the block runs longer than `seconds` (a hang detector)."""

    def expire(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ["alias-bomb", "deep-flow", "oversized"])
def test_a_hostile_proposal_branch_is_read_as_no_proposal_and_logged(repo, caplog, kind):
    """What the agent reads from a branch anyone can push (`canary/<stack>-image-canary`) while watching images."""
    branch = images.branch_for("dev", "canary")
    hostile = HOSTILE_STACKS[kind].replace("  istio-canary:canaryMatch:", "  istio-canary:canaryVersion:")
    git(repo.work, "checkout", "-q", "-b", branch)
    repo.stack.write_text(hostile)
    git(repo.work, "commit", "-qam", "a hostile proposal")
    git(repo.work, "push", "-q", "origin", f"{branch}:refs/heads/{branch}")
    git(repo.work, "checkout", "-q", "main")
    git(repo.work, "branch", "-qD", branch)
    with caplog.at_level(logging.WARNING, logger="canary.agent"), bounded(HANG):
        value = images.proposed_value(repo.work, branch, "Pulumi.dev.yaml", "canaryVersion")
    assert value is None
    assert f"{branch}:Pulumi.dev.yaml" in caplog.text


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_a_stack_file_that_is_no_regular_file_is_refused_not_read_for_ever(tmp_path, target):
    # A pull request can make Pulumi.dev.yaml a link to /dev/zero (never ends) or a FIFO (blocks for a writer).
    directory = project_dir(tmp_path, stack_text())
    stack = directory / "Pulumi.dev.yaml"
    stack.unlink()
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
        stack.symlink_to(tmp_path / "fifo")
    else:
        stack.symlink_to(target)
    refused(run_cli("status", "-C", directory, "--stack", "dev"), "Pulumi.dev.yaml: not a regular file")
