"""`canary agent` as a real process, time-compressed (2 s interval, 10 s window), against a real Prometheus
scraping a live exporter (not a backfill) and a real bare git origin it clones and pushes to.

The bounds on waits are hang detectors, not performance assertions; `make bench` measures the timings.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from testkit.agentkit import start_agent, stop
from testkit.exporter import Traffic
from testkit.livemetrics import live_istio
from tests.integration import servers
from tests.integration.conftest import Repo, git, stack_text

NAMESPACE = "live"
INTERVAL_S = 2
HEALTHY = Traffic(rps=20, latency_ms=40)
# Compressed: judge every 2 s over 10 s of live data; a small traffic gate for 20 rps.
AGENT_KEYS = """\
  istio-canary:analysisInterval: 2s
  istio-canary:analysisMinRequests: 20
  istio-canary:analysisThreshold: {threshold}
  istio-canary:analysisIterations: {iterations}
  istio-canary:canaryPromotion: auto
  istio-canary:agentWatchImages: false  # no registry here (image automation: test_agent_images.py)
"""


def agent_stack(weight: int, *, threshold: int = 2, iterations: int = 2) -> str:
    return stack_text(namespace=NAMESPACE, weight=weight, window="10s") + AGENT_KEYS.format(
        threshold=threshold, iterations=iterations
    )


@contextmanager
def agent(
    repo: Repo,
    prometheus_url: str,
    workdir: Path,
    log: Path,
    keep_env: tuple[str, ...] = (),
    port: int = 0,
    github: str = "",
) -> Iterator[subprocess.Popen]:
    """The agent process on the bare origin; always stopped."""
    extra = ("--github-api-url", github) if github else ()
    process = start_agent(
        repo.origin, prometheus_url, workdir, port or servers.free_port(), log, *extra, keep_env=keep_env
    )
    try:
        yield process
    finally:
        stop(process)


def origin_subjects(repo: Repo) -> list[str]:
    """Commit subjects on the origin's main, oldest first."""
    return git(repo.origin, "log", "--reverse", "--format=%s", "main").splitlines()


def wait_for(predicate, timeout: float, log: Path) -> float:
    """Seconds until `predicate()` holds; fails with the agent's log after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.25)
    pytest.fail(f"not within {timeout:g}s; agent log:\n{log.read_text()[-4000:]}")


def test_a_canary_that_turns_bad_is_rolled_back_within_threshold_intervals(tmp_path, repo):
    repo.write_stack(agent_stack(10, iterations=1000), "canary at 10%")
    log = tmp_path / "agent.log"
    with (
        live_istio(tmp_path / "prom", NAMESPACE, ga=HEALTHY, canary=HEALTHY) as (exporter, prom),
        agent(repo, prom.url, tmp_path / "work", log),
    ):
        time.sleep(3 * INTERVAL_S)  # healthy: a few passes, nothing committed
        assert origin_subjects(repo)[-1] == "canary at 10%"
        exporter.set("canary", error_share=0.5)
        elapsed = wait_for(lambda: "roll back" in origin_subjects(repo)[-1], timeout=60, log=log)
    subject = origin_subjects(repo)[-1]
    assert subject.startswith("canary: roll back podinfo-canary 6.9.0 from 10% to 0%")
    message = git(repo.origin, "log", "-1", "--format=%B", "main")
    assert "Reason: canary agent: 2 failed analyses in a row (threshold 2)" in message
    assert "verdict: FAIL" in message  # the evidence is in the commit
    assert '  istio-canary:canaryWeight: "0"\n' in git(repo.origin, "show", "main:Pulumi.dev.yaml")
    print(f"bad canary -> rollback on origin: {elapsed:.1f}s (threshold 2 x interval {INTERVAL_S}s)")


def test_a_healthy_canary_walks_every_step_once_across_an_agent_restart(tmp_path, repo):
    repo.write_stack(agent_stack(0), "new canary 6.9.0")
    log = tmp_path / "agent.log"
    expected = [
        "canary: promote podinfo-canary 6.9.0 to 10%",
        "canary: promote podinfo-canary 6.9.0 to 60%",
        "canary: promote podinfo-canary 6.9.0 to 100%",
        "canary: finish podinfo 6.9.0 (1/2)",
        "canary: finish podinfo 6.9.0 (2/2)",
    ]

    def made() -> list[str]:
        return [s for s in origin_subjects(repo) if s.startswith(("canary: promote", "canary: finish"))]

    with live_istio(tmp_path / "prom", NAMESPACE, ga=HEALTHY, canary=HEALTHY) as (_exporter, prom):
        with agent(repo, prom.url, tmp_path / "work", log) as first:
            wait_for(lambda: len(made()) >= 2, timeout=90, log=log)
            first.send_signal(signal.SIGKILL)  # mid-release, no goodbye
            first.wait(timeout=10)
        with agent(repo, prom.url, tmp_path / "work", log):
            wait_for(lambda: len(made()) >= len(expected), timeout=120, log=log)
            time.sleep(3 * INTERVAL_S)  # and nothing more once GA runs 6.9.0 at weight 0
        subjects = made()
    assert len(subjects) == len(expected), subjects  # no step twice, none skipped, across the restart
    for subject, prefix in zip(subjects, expected, strict=True):
        assert subject.startswith(prefix), subjects
    final = git(repo.origin, "show", "main:Pulumi.dev.yaml")
    assert 'canaryWeight: "0"\n' in final and "gaVersion: 6.9.0" in final


def test_prometheus_down_is_no_commit_and_one_notice(tmp_path, repo, monkeypatch):
    repo.write_stack(agent_stack(10, iterations=1000) + "  istio-canary:agentNoticeAfter: 4s\n", "canary at 10%")
    log = tmp_path / "agent.log"
    with (
        servers.stub(lambda _request: (200, {"Content-Type": "text/plain"}, b"ok")) as (slack, posts),
        live_istio(tmp_path / "prom", NAMESPACE, ga=HEALTHY, canary=HEALTHY) as (_exporter, prom),
    ):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack + "/services/T0/B0/x")
        with agent(repo, prom.url, tmp_path / "work", log, keep_env=("SLACK_WEBHOOK_URL",)):
            time.sleep(2 * INTERVAL_S)
            prom.stop()
            wait_for(lambda: len(posts) >= 1, timeout=60, log=log)
            time.sleep(4 * INTERVAL_S)  # still down: no second notice
    assert len(posts) == 1, [p.body for p in posts]
    assert b"not promoting, not rolling back" in posts[0].body
    assert origin_subjects(repo)[-1] == "canary at 10%"  # unavailable is neither a pass nor a fail


def test_status_shows_what_the_agent_reported_through_prometheus(tmp_path, repo, capsys):
    """Prometheus scrapes the agent's /metrics as it does in the cluster; `canary status` reads them back."""
    from istio_canary.cli import main
    from testkit.exporter import IstioExporter
    from testkit.livemetrics import LivePrometheus

    repo.write_stack(agent_stack(10, iterations=1000), "canary at 10%")
    port = servers.free_port()
    log = tmp_path / "agent.log"
    prom_port = servers.free_port()
    with (
        IstioExporter(NAMESPACE, ga=HEALTHY, canary=HEALTHY) as exporter,
        agent(repo, f"http://127.0.0.1:{prom_port}", tmp_path / "work", log, port=port),
    ):
        wait_for(lambda: _healthz(port) == 200, timeout=30, log=log)
        with LivePrometheus(tmp_path / "prom", [exporter.target, f"127.0.0.1:{port}"], port=prom_port) as prom:
            prom.start()
            wait_for(lambda: prom.value('canary_agent_verdict{stack="dev", verdict="pass"}') == 1, timeout=60, log=log)
            capsys.readouterr()
            code = main(["status", "-C", str(repo.work), "--prometheus", prom.url, "--json"])
            data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["agent"]["verdict"] == "pass" and data["agent"]["live_weight"] == 10
    assert data["agent"]["drift"] is False and data["agent"]["next_run"] > data["agent"]["last_run"]


def _healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status
    except (urllib.error.URLError, OSError):
        return 0


def test_steps_are_proposed_as_pull_requests_one_per_step(tmp_path, repo, monkeypatch):
    """canaryPromotion: pr: each step is a branch on the origin and one pull request through GitHub's API (a
    stand-in that holds every request to GitHub's published schema); merging it is the approval."""
    from istio_canary.agent.pulls import owner_repo
    from testkit.githost import GitHost

    repo.write_stack(agent_stack(10).replace("canaryPromotion: auto", "canaryPromotion: pr"), "canary at 10%")
    owner, name = owner_repo(str(repo.origin))
    log = tmp_path / "agent.log"
    monkeypatch.setenv("CANARY_GIT_TOKEN", "test-token")
    with (
        GitHost(owner, name, token="test-token", origin=repo.origin) as host,
        live_istio(tmp_path / "prom", NAMESPACE, ga=HEALTHY, canary=HEALTHY) as (_exporter, prom),
        agent(repo, prom.url, tmp_path / "work", log, keep_env=("CANARY_GIT_TOKEN",), github=host.url),
    ):
        wait_for(lambda: len(host.pulls) == 1, timeout=60, log=log)
        time.sleep(3 * INTERVAL_S)  # the proposal is open: not proposed again
        assert len(host.pulls) == 1
        first = host.pulls[1]
        host.merge(first.number)  # a person approves
        wait_for(lambda: len(host.pulls) == 2, timeout=60, log=log)
        second = host.pulls[2]
    assert host.refused() == []  # every request conformed to GitHub's schema
    assert first.head == "canary/dev-6.9.0-60" and second.head == "canary/dev-6.9.0-100"
    assert first.title.startswith("canary: promote podinfo-canary 6.9.0 to 60% (success 100.0%")
    assert "verdict: PASS" in first.body and "merging it runs `pulumi up`" in first.body
    # main moved only by the merge; the next step waits on its own branch for its own review.
    assert '  istio-canary:canaryWeight: "60"\n' in git(repo.origin, "show", "main:Pulumi.dev.yaml")
    assert 'canaryWeight: "100"' in git(repo.origin, "show", f"{second.head}:Pulumi.dev.yaml")
