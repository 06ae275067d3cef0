"""One release agent for a platform stack serves every app stack whose platformStack names it (read from the
repository each pass), as a real process on a real bare origin; app stacks of another platform and the platform
stack itself are left alone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testkit.agentkit import start_agent, stop
from tests.integration import servers
from tests.integration.conftest import git, stack_text

AGENT = """\
  istio-canary:analysisInterval: 2s
  istio-canary:canaryPromotion: auto
  istio-canary:agentWatchImages: false
"""
PLATFORM = """\
config:
  istio-canary:clusterMode: existing
  istio-canary:deployApp: false
  istio-canary:installMesh: false
  istio-canary:monitoring: false
  istio-canary:prometheusUrl: http://127.0.0.1:9
"""


def app_stack(name: str, platform: str) -> str:
    """An app stack with a new canary version committed at 0 %: the first step is due."""
    text = stack_text(namespace=name, ga="6.8.0", canary="6.9.0", weight=0, window="10s")
    text = text.replace("  istio-canary:clusterMode: gke\n", "  istio-canary:clusterMode: stack\n")
    return text + f"  istio-canary:platformStack: {platform}\n  istio-canary:appName: {name}\n" + AGENT


def wait_for(predicate, timeout: float, log: Path) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return
        time.sleep(0.25)
    pytest.fail(f"not within {timeout:g}s; agent log:\n{log.read_text()[-4000:]}")


def test_a_platform_agent_serves_its_app_stacks_and_nothing_else(tmp_path, repo):
    files = {
        "Pulumi.platform.yaml": PLATFORM + AGENT,
        "Pulumi.shop.yaml": app_stack("shop", "platform"),
        "Pulumi.blog.yaml": app_stack("blog", "organization/istio-canary/platform"),
        "Pulumi.other.yaml": app_stack("other", "elsewhere"),
    }
    for name, text in files.items():
        (repo.work / name).write_text(text)
    git(repo.work, "add", *files)
    git(repo.work, "commit", "-qm", "a platform, two app stacks on it, one on another platform")
    git(repo.work, "push", "-q", "origin", "HEAD:main")
    log = tmp_path / "agent.log"
    dead_prometheus = f"http://127.0.0.1:{servers.free_port()}"
    process = start_agent(
        repo.origin, dead_prometheus, tmp_path / "work", servers.free_port(), log, "--stack", "platform"
    )

    def stepped() -> set[str]:
        """The stack files on the origin's main whose weight has moved to the first step."""
        names = [*files, "Pulumi.dev.yaml"]
        return {name for name in names if 'canaryWeight: "10"\n' in git(repo.origin, "show", f"main:{name}")}

    try:
        wait_for(lambda: stepped() >= {"Pulumi.shop.yaml", "Pulumi.blog.yaml"}, 60, log)
        time.sleep(3 * 2)
    finally:
        stop(process)
    assert stepped() == {"Pulumi.shop.yaml", "Pulumi.blog.yaml"}
    subjects = git(repo.origin, "log", "--format=%s", "main").splitlines()
    promoted = sorted(s for s in subjects if s.startswith("canary: promote"))
    assert (
        len(promoted) == 2 and any("blog-canary" in s for s in promoted) and any("shop-canary" in s for s in promoted)
    )
    # Each commit changed one app stack's file and nothing else.
    for rev in ("main", "main~1"):
        assert len(git(repo.origin, "show", "--name-only", "--format=", rev).split()) == 1
    assert git(repo.origin, "show", "main:Pulumi.other.yaml") == files["Pulumi.other.yaml"]
    assert git(repo.origin, "show", "main:Pulumi.platform.yaml") == files["Pulumi.platform.yaml"]
