"""The agent's liveness follows the intervals it serves: /healthz goes stale after a few of the longest
analysisInterval (never sooner than MIN_STALE_S), counted from the agent's own passes (a platform agent serves app
stacks, never its own), and analysisInterval has an upper bound that keeps a stuck agent's restart by its
liveness probe within the hour. Clocks are injected: no test waits."""

from __future__ import annotations

import pytest

from istio_canary.agent.metrics import MIN_STALE_S, STALE_INTERVALS, Metrics, fresh, stale_after
from istio_canary.release.names import duration_seconds
from istio_canary.release.settings import MAX_ANALYSIS_INTERVAL, ConfigError, parse
from testkit.manifests import stack_manifests

GCP = {"project": "acme-prod", "region": "europe-west1"}
PROBE_FAILURES = 3  # the kubelet's default failureThreshold: the probe below does not set its own


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_staleness_is_a_few_of_the_longest_intervals():
    assert stale_after(2) == MIN_STALE_S  # a compressed test or a 1m interval: a slow pass is not a stuck one
    assert stale_after(600) == STALE_INTERVALS * 600  # a 10m interval: the old fixed 600 s killed every agent
    assert stale_after(0) == STALE_INTERVALS * duration_seconds(MAX_ANALYSIS_INTERVAL)  # nothing read yet


def test_an_agent_with_a_ten_minute_interval_stays_healthy_between_passes():
    metrics, clock = Metrics(), Clock()
    healthy = fresh(metrics, "dev", clock)
    metrics.passed("dev", 600)
    metrics.last_pass.labels("dev").set(clock.now)
    clock.now += 1700  # almost three intervals without a pass: the next is late, not lost
    assert healthy()
    clock.now += 200
    assert not healthy()  # three intervals: stuck


def test_a_platform_agent_is_live_on_its_own_passes_not_its_app_stacks_iterations():
    metrics, clock = Metrics(), Clock()
    healthy = fresh(metrics, "platform", clock)
    for _ in range(20):  # it serves shop and blog every minute for 20 minutes
        clock.now += 60
        metrics.last_iteration.labels("shop").set(clock.now)
        metrics.passed("platform", 60)
        metrics.last_pass.labels("platform").set(clock.now)
        assert healthy()
    assert metrics.passes.labels("platform")._value.get() == 20


def test_before_the_first_pass_the_longest_allowed_interval_stands_in():
    metrics, clock = Metrics(), Clock()
    healthy = fresh(metrics, "dev", clock)
    clock.now += STALE_INTERVALS * duration_seconds(MAX_ANALYSIS_INTERVAL) - 1
    assert healthy()
    clock.now += 2
    assert not healthy()


def test_a_pass_that_read_no_stack_keeps_the_longest_allowed_interval():
    """A pass that could not sync (the Git host is down) reports 0: it is still a pass, and staleness stays
    as long as any stack may need."""
    metrics, clock = Metrics(), Clock()
    healthy = fresh(metrics, "dev", clock)
    metrics.passed("dev", 0.0)
    metrics.last_pass.labels("dev").set(clock.now)
    clock.now += STALE_INTERVALS * duration_seconds(MAX_ANALYSIS_INTERVAL) - 1
    assert healthy()


@pytest.mark.parametrize("interval", ["16m", "1h", "1d"])
def test_an_interval_above_the_bound_is_refused_naming_the_key(interval):
    with pytest.raises(ConfigError, match=r"analysisInterval: .*at most 15m"):
        parse({"analysisInterval": interval}, GCP)


@pytest.mark.parametrize("interval", ["1s", "10m", MAX_ANALYSIS_INTERVAL])
def test_intervals_up_to_the_bound_are_accepted(interval):
    assert parse({"analysisInterval": interval}, GCP).release.interval == interval


def test_the_liveness_probe_restarts_a_stuck_agent_within_the_hour_and_never_a_slow_one():
    manifests = stack_manifests(
        releaseAgent="true", agentGitRepo="https://github.com/acme/shop", agentGitTokenSecret="tok"
    )
    (agent,) = [m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "canary-agent"]
    (container,) = agent["spec"]["template"]["spec"]["containers"]
    probe = container["livenessProbe"]
    assert probe["httpGet"]["path"] == "/healthz"
    failing_s = probe["periodSeconds"] * probe.get("failureThreshold", PROBE_FAILURES)
    # Stuck: the last pass, then STALE_INTERVALS of the longest interval allowed, then the probe's failures.
    assert stale_after(duration_seconds(MAX_ANALYSIS_INTERVAL)) + failing_s <= 3600
    # Slow, not stuck: a pass may take MIN_STALE_S before /healthz fails at all, and the probe's own timeout is
    # far shorter than that.
    assert probe["timeoutSeconds"] < MIN_STALE_S and probe["initialDelaySeconds"] < MIN_STALE_S


def test_a_judgment_stuck_in_its_thread_fails_healthz_though_the_passes_go_on():
    metrics, clock = Metrics(), Clock()
    healthy = fresh(metrics, "platform", clock)
    stuck_since = clock.now
    for _ in range(10):
        clock.now += 60
        metrics.passed("platform", 60, judging_since=stuck_since)
        metrics.last_pass.labels("platform").set(clock.now)
    assert not healthy()  # ten minutes into one judgment: stuck
    metrics.passed("platform", 60, judging_since=0.0)
    metrics.last_pass.labels("platform").set(clock.now)
    assert healthy()


def test_the_agents_clones_and_their_siblings_live_in_its_writable_volume():
    """The root filesystem is read-only: the clone (--workdir), the follow-up clones beside it
    (`<workdir>.follow-up/<stack>`) and a broken clone moved aside (`<workdir>.broken`) must all be in the work
    volume, so --workdir is a directory inside the mount, not the mount itself."""
    from pathlib import PurePosixPath

    from istio_canary import cli

    manifests = stack_manifests(
        releaseAgent="true", agentGitRepo="https://github.com/acme/shop", agentGitTokenSecret="tok"
    )
    (agent,) = [m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "canary-agent"]
    (container,) = agent["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    workdir = PurePosixPath(cli.build_parser().parse_args(container["command"][1:]).workdir)
    mounts = {PurePosixPath(mount["mountPath"]) for mount in container["volumeMounts"]}
    for path in (workdir, workdir.with_name(workdir.name + ".follow-up"), workdir.with_name(workdir.name + ".broken")):
        assert any(mount in path.parents for mount in mounts), path
