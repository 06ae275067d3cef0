"""The agent's verdict history against a stand-in Prometheus that answers the stack's check queries exactly from a
synthetic timeline: each analysis judges its own slice of traffic (no request is judged by two instants), so one
bad interval fails at most two analyses and a persistent failure is rolled back within
analysisThreshold x analysisInterval + one interval; errors are verdicts with a limit, not exceptions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from istio_canary import analysis
from istio_canary.agent import history, live
from istio_canary.analysis import Measurement
from istio_canary.metrics.prometheus import Prometheus
from istio_canary.release import decide
from istio_canary.release.checks import Check
from istio_canary.release.names import duration_seconds
from istio_canary.stackfile import StackFile, StackView
from testkit import servers
from testkit.stackfiles import stack_text

ROOT = Path(__file__).resolve().parents[2]
RANGE = re.compile(r"\[([0-9]+[smhd])\]")
START = 1_700_000_000.0  # the timeline's origin (unix seconds)


def overlap(start: float, end: float, spans: tuple[tuple[float, float], ...]) -> float:
    """Seconds of [start, end] inside any of `spans` (which do not overlap each other)."""
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)


@dataclass
class Timeline:
    """A stand-in Prometheus: GA and the canary serve `rps` each; the canary answers `share` of its requests with
    5xx during `bad`; nothing is recorded during `gaps` (a scrape gap). Every check query is answered exactly
    over its own range, and the ranges asked for are kept."""

    checks: tuple[Check, ...]
    namespace: str = "test"
    rps: float = 20.0
    bad: tuple[tuple[float, float], ...] = ()
    share: float = 0.5
    gaps: tuple[tuple[float, float], ...] = ()
    ranges: list[str] = field(default_factory=list)

    def query(self, promql: str, at: float) -> float | None:
        match = RANGE.search(promql)
        assert match, promql
        window = match.group(1)
        self.ranges.append(window)
        for check in self.checks:
            for version in ("ga", "canary"):
                if promql == check.promql(self.namespace, f"podinfo-{version}", window):
                    return self._value(check.name, version, at - duration_seconds(window), at)
        raise AssertionError(f"not a check query of this stack: {promql}")

    def _value(self, name: str, version: str, start: float, end: float) -> float | None:
        seen = (end - start) - overlap(start, end, self.gaps)
        served = self.rps * seen
        errors = self.rps * self.share * overlap(start, end, self.bad) if version == "canary" else 0.0
        if name == "requests":
            return served
        if not served:
            return None
        return 100 * (served - errors) / served if name == "success_rate" else 40.0


def view_of(tmp_path: Path, **keys: object) -> StackView:
    """A stack at 10 % with the release keys given (e.g. analysisInterval="1m")."""
    text = stack_text(namespace="test", weight=10, window=str(keys.pop("analysisWindow", "5m")))
    text += "".join(f"  istio-canary:{key}: {value}\n" for key, value in keys.items())
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.dev.yaml").write_text(text)
    return StackFile(tmp_path / "Pulumi.dev.yaml").view()


def decide_at(view: StackView, prometheus: Any, now: float, live_since: float = START) -> decide.Decision:
    """What the agent decides at `now` (a pass), with the step live since `live_since`, as the loop builds it."""
    rel = view.release
    interval_s = duration_seconds(rel.interval)
    window_s = duration_seconds(history.window(rel))
    depths = history.depths(rel, decide.live_instants(now - live_since, interval_s, window_s))
    found = history.history(view, prometheus, now, interval_s, depths)
    state = decide.State(
        weight=10,
        schedule=rel.steps,
        shapes=(),
        shape="",
        ga_version="6.8.0",
        canary_version="6.9.0",
        rolled_back=False,
        live=decide.Live(10, "6.8.0", True, "6.9.0"),
        history=found.verdicts,
        seconds_since_step=now - START,
        interval_s=interval_s,
        threshold=rel.threshold,
        iterations=rel.iterations,
        notice_after_s=600,
        drift_grace_s=300,
        proposal_open=False,
        error_limit=rel.error_limit,
        errors=found.errors,
        seconds_live=now - live_since,
        window_s=window_s,
    )
    return decide.decide(state)


def every(depth: int) -> dict[str, int]:
    """Read up to `depth` instants whatever the run."""
    return dict.fromkeys((decide.PASS, decide.FAIL, decide.ERROR, decide.INCONCLUSIVE, decide.UNAVAILABLE), depth)


# --- windows --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "interval", "judged"),
    [("5m", "1m", "1m"), ("30s", "1m", "30s"), ("10s", "2s", "2s"), ("1m", "1m", "1m")],
)
def test_each_analysis_judges_at_most_one_interval_of_traffic(tmp_path, window, interval, judged):
    view = view_of(tmp_path, analysisWindow=window, analysisInterval=interval)
    timeline = Timeline(view.release.checks, rps=100)  # 200 requests in 2 s: over analysisMinRequests
    found = history.history(view, timeline, START + 3600, duration_seconds(interval), every(5))
    assert found.window == judged
    assert set(timeline.ranges) == {judged}  # every query of every instant
    assert found.verdicts == (decide.PASS,) * 5


@pytest.mark.parametrize("phase", [0.0, 1.0, 15.0, 30.0, 45.0, 59.0])
def test_one_bad_interval_fails_at_most_two_analyses_and_is_never_a_rollback(tmp_path, phase):
    view = view_of(tmp_path, analysisInterval="1m", analysisThreshold=3)
    bad_from = START + 3600 + phase
    timeline = Timeline(view.release.checks, bad=((bad_from, bad_from + 60),))
    for n in range(15):  # passes every minute, from before the bad minute until well after it
        now = START + 3540 + n * 60
        found = history.history(view, timeline, now, 60, every(10))
        assert found.verdicts.count(decide.FAIL) <= 2, (n, found.verdicts)
        assert decide_at(view, timeline, now).action != decide.ROLLBACK, (n, found.verdicts)


@pytest.mark.parametrize("phase", [0.0, 1.0, 20.0, 40.0, 59.0])
@pytest.mark.parametrize("threshold", [1, 2, 3, 5])
def test_a_persistent_failure_is_rolled_back_within_threshold_intervals_plus_one(tmp_path, phase, threshold):
    view = view_of(tmp_path, analysisInterval="1m", analysisThreshold=threshold)
    failing_from = START + 3600 + phase
    timeline = Timeline(view.release.checks, bad=((failing_from, START + 10**6),))
    first = None
    for n in range(20):
        now = START + 3600 + n * 60
        if decide_at(view, timeline, now).action == decide.ROLLBACK:
            first = now
            break
    assert first is not None
    assert first - failing_from <= threshold * 60 + 60


def test_the_history_reads_no_further_back_than_the_decision_can_use(tmp_path):
    view = view_of(tmp_path, analysisInterval="1m", analysisIterations=1000, analysisErrorLimit=4)
    now = START + 3600
    healthy = Timeline(view.release.checks)
    assert decide_at(view, healthy, now, live_since=now - 150).action == decide.NOTHING
    assert len(healthy.ranges) == 2 * 6  # live for 2.5 minutes: two whole windows, six queries each
    failing = Timeline(view.release.checks, bad=((START, now),))
    assert decide_at(view, failing, now).action == decide.ROLLBACK
    assert len(failing.ranges) == 4 * 6  # as far as the larger of threshold and error limit, not a thousand


def test_a_scrape_gap_that_halves_the_window_is_inconclusive_not_a_pass_or_a_fail(tmp_path):
    view = view_of(tmp_path, analysisInterval="1m", analysisMinRequests=1000)  # 20 rps x 60 s = 1200
    now = START + 3600
    timeline = Timeline(view.release.checks, gaps=((now - 60, now - 30),))
    found = history.history(view, timeline, now, 60, every(3))
    assert found.verdicts[0] == decide.INCONCLUSIVE


# --- a relative check needs enough requests on both sides ------------------------------------------------------


def judged(canary_requests: float, ga_requests: float | None, ga_p99: float | None) -> analysis.Verdict:
    checks = (
        Check("requests", "x{workload}", ">=", 100, gate=True),
        Check("p99_ms", "y{workload}", "<=", 500, unit="ms", max_worse_than_ga_pct=50),
    )
    canary = Measurement("podinfo-canary", {"requests": canary_requests, "p99_ms": 40.0})
    ga = Measurement("podinfo-ga", {"requests": ga_requests, "p99_ms": ga_p99})
    verdict, outcomes = analysis.judge(checks, canary, ga)
    if verdict is analysis.Verdict.INCONCLUSIVE:
        (reason,) = [o.reason for o in outcomes if o.result == "too-little"]
        assert "GA served 30 requests" in reason and "fewer than 100" in reason
    return verdict


def test_too_few_ga_requests_make_a_relative_check_inconclusive_not_a_fail():
    # A canary p99 of 40 ms against GA's 10 ms on 30 requests (a half-empty window after a scrape gap).
    assert judged(500, 30, 10.0) is analysis.Verdict.INCONCLUSIVE
    assert judged(500, 1000, 10.0) is analysis.Verdict.FAIL  # enough on both sides: judged
    assert judged(500, 1000, 40.0) is analysis.Verdict.PASS
    assert judged(500, 0, None) is analysis.Verdict.PASS  # GA served nothing (canary at 100 %): nothing to compare


# --- errors are verdicts -------------------------------------------------------------------------------------------


class Answers:
    """A stand-in Prometheus that raises or answers the same for every query."""

    def __init__(self, value: float | None = None, error: Exception | None = None) -> None:
        self.value, self.error = value, error

    def query(self, promql: str, at: float) -> float | None:
        if self.error is not None:
            raise self.error
        return self.value


def test_a_check_prometheus_cannot_parse_is_an_error_with_its_message(tmp_path):
    from istio_canary.metrics import BadQuery

    view = view_of(tmp_path, analysisInterval="1m")
    refusing = Answers(error=BadQuery("parse error at char 7: unexpected <by>"))
    found = history.history(view, refusing, START, 60, every(4))
    assert found.verdicts == (decide.ERROR,) * 4
    assert len(found.errors) == 4 and all("could not parse its query" in e for e in found.errors)


@pytest.fixture(scope="module")
def one_minute(tmp_path_factory) -> StackView:
    """A stack judged every minute."""
    return view_of(tmp_path_factory.mktemp("stack"), analysisInterval="1m")


def test_impossible_numbers_are_an_error(one_minute):
    garbage = Answers(value=-5.0)  # a negative request count
    verdict, why = history.verdict_at(one_minute, garbage, START, "1m")
    assert verdict == decide.ERROR and "not a finite number >= 0" in why


def _prometheus_answering(status: int, body: bytes, content_type: str = "application/json"):
    return servers.stub(lambda _request: (status, {"Content-Type": content_type}, body))


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (503, b"upstream connect error", "text/plain", decide.UNAVAILABLE),  # a gateway: Prometheus is not there
        (502, b"<html>bad gateway</html>", "text/html", decide.UNAVAILABLE),
        (
            503,
            json.dumps({"status": "error", "errorType": "timeout", "error": "query timed out"}).encode(),
            "application/json",
            decide.UNAVAILABLE,
        ),
        (200, b"<html><body>Sign in</body></html>", "text/html", decide.ERROR),  # a login page, forever
        (
            400,
            json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}).encode(),
            "application/json",
            decide.ERROR,
        ),
        (
            200,
            json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode(),
            "application/json",
            decide.ERROR,
        ),
        (401, b"Unauthorized", "text/plain", decide.ERROR),  # a revoked token does not heal by waiting
    ],
)
def test_what_prometheus_answers_is_an_error_and_no_answer_is_unavailable(
    one_minute, status, body, content_type, expected
):
    with _prometheus_answering(status, body, content_type) as (url, _seen):
        verdict, why = history.verdict_at(one_minute, Prometheus(url, timeout=5), START, "1m")
    assert verdict == expected
    assert why  # the notice and the rollback name it


def test_an_unreachable_prometheus_is_unavailable(one_minute):
    closed = Prometheus(f"http://127.0.0.1:{servers.free_port()}", timeout=2)
    verdict, why = history.verdict_at(one_minute, closed, START, "1m")
    assert verdict == decide.UNAVAILABLE and "unreachable" in why


# --- when the live routing object was last applied -----------------------------------------------------------------


def test_the_last_apply_of_the_routing_object_is_read_from_its_managed_fields():
    service = {
        "metadata": {
            "creationTimestamp": "2025-01-02T03:00:00Z",
            "managedFields": [
                {"manager": "pulumi-kubernetes", "operation": "Apply", "time": "2025-01-02T03:04:05Z"},
                {"manager": "kubectl-edit", "operation": "Update", "time": "2025-01-02T03:10:00Z"},
                # istiod writing the status is no change of the routing
                {"manager": "pilot", "operation": "Update", "subresource": "status", "time": "2025-01-02T04:00:00Z"},
            ],
        }
    }
    stamp = 1735787400.0  # 2025-01-02T03:10:00Z
    # One-second resolution: the write happened within that second, so it counts from the end of it.
    assert live.applied_at(service) == stamp + 1
    assert live.applied_at({"metadata": {"creationTimestamp": "2025-01-02T03:00:00Z"}}) == stamp - 600 + 1
    for broken in ({}, {"metadata": {"managedFields": [{"time": "yesterday"}]}}, {"metadata": None}, None):
        assert live.applied_at(broken) is None


def test_when_the_routing_was_applied_is_not_part_of_what_is_live():
    assert live.Live(10, "6.8.0", True, "6.9.0", since=1.0) == live.Live(10, "6.8.0", True, "6.9.0")


def test_canary_status_shows_an_errored_verdict_as_the_agent_reported_it():
    from istio_canary.commands.status import agent_view
    from istio_canary.release.names import AGENT_LAST_ITERATION

    class Reported:
        def query(self, promql: str, at: float) -> float | None:
            if promql.startswith(AGENT_LAST_ITERATION):
                return START
            return 1.0 if 'verdict="error"' in promql else 0.0

    view = agent_view(Reported(), "dev", START, "1m")
    assert view is not None and view["verdict"] == "error"
