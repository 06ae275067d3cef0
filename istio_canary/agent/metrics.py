"""The agent's own observability: /healthz and /metrics (prometheus_client) on one port.

/healthz is 200 while the loop has finished a pass lately and no stack's judgment has run for as long, else 503,
so a stuck loop (or a judgment stuck in its thread) gets restarted by its liveness probe. "Lately" follows the stacks served: a pass ends at least every longest analysisInterval (plus the
time the pass takes), so the loop is stale after STALE_INTERVALS of the longest one, never sooner than
MIN_STALE_S (a pass whose Prometheus queries all run into their deadlines is slow, not stuck). Every pass counts,
for the stack the agent was started for (a platform agent serves its app stacks, never its own), whether it led
or only waited for the Lease. Before the first pass has read a stack, the longest interval a stack may set
(MAX_ANALYSIS_INTERVAL, validated in istio_canary/release/settings.py) stands in, so a slow first pass is never a restart:
with the liveness probe of components/release_agent.py, a stuck agent is restarted at most
STALE_INTERVALS x that bound + the probe's failure window after its last pass.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app

from istio_canary.release.names import (
    AGENT_DECISIONS,
    AGENT_DRIFT,
    AGENT_EVIDENCE,
    AGENT_LAST_ITERATION,
    AGENT_SHAPE,
    AGENT_VERDICT,
    AGENT_WEIGHT,
    duration_seconds,
)
from istio_canary.release.settings import MAX_ANALYSIS_INTERVAL

STALE_INTERVALS = 3
MIN_STALE_S = 300.0


class Metrics:
    """The series the agent exports; the dashboard and alerts read these names."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("stack",)
        self.verdict = Gauge(AGENT_VERDICT, "1 for the latest verdict", [*labels, "verdict"], registry=self.registry)
        self.checks = Counter(
            "canary_agent_analyses", "Analyses by verdict", [*labels, "verdict"], registry=self.registry
        )
        self.weight = Gauge(AGENT_WEIGHT, "Canary weight, Git vs live", [*labels, "source"], registry=self.registry)
        self.drift = Gauge(AGENT_DRIFT, "1 while Git and the cluster disagree", labels, registry=self.registry)
        self.shape = Gauge(
            AGENT_SHAPE, "1 for the live VirtualService's shape", [*labels, "shape"], registry=self.registry
        )
        self.evidence = Gauge(
            AGENT_EVIDENCE,
            "The statistical judge's numbers of the newest look",
            [*labels, "check", "quantity"],
            registry=self.registry,
        )
        self.evidence_seen: dict[str, set[tuple[str, str]]] = {}
        self.leader = Gauge("canary_agent_leader", "1 while this agent holds the Lease", labels, registry=self.registry)
        self.decisions = Counter(AGENT_DECISIONS, "Decisions by action", [*labels, "action"], registry=self.registry)
        self.last_commit = Gauge(
            "canary_agent_last_commit_timestamp_seconds",
            "When the agent last committed",
            labels,
            registry=self.registry,
        )
        self.errors = Counter("canary_agent_loop_errors", "Iterations that raised", labels, registry=self.registry)
        # An alert on result="failed" catches expired registry credentials before anyone wonders about a release.
        self.image_checks = Counter(
            "canary_agent_image_checks",
            "Image tag checks by line and outcome (proposed, updated, already-proposed, pushed, nothing-new, failed)",
            [*labels, "line", "result"],
            registry=self.registry,
        )
        self.last_iteration = Gauge(
            AGENT_LAST_ITERATION,
            "End of the last loop iteration",
            labels,
            registry=self.registry,
        )
        self.passes = Counter(
            "canary_agent_passes", "Passes of the loop (every served stack judged once)", labels, registry=self.registry
        )
        self.last_pass = Gauge(
            "canary_agent_last_pass_timestamp_seconds",
            "End of the last pass of the loop",
            labels,
            registry=self.registry,
        )
        self.judging_since = Gauge(
            "canary_agent_judging_since_timestamp_seconds",
            "When the oldest judgment still running began (0: none runs)",
            labels,
            registry=self.registry,
        )
        self.longest_interval = Gauge(
            "canary_agent_longest_interval_seconds",
            "The longest analysisInterval of the stacks the last pass served (0: none read)",
            labels,
            registry=self.registry,
        )
        # Work a failure elsewhere made the agent skip this pass: an alert on it catches a dead Git host, registry or
        # webhook, or a stack file that cannot be read, long before anyone wonders why a release stands still.
        self.skipped = Counter(
            "canary_agent_skipped",
            "Work skipped by stack, kind (judge, rollback, proposal, images, notice) and reason",
            [*labels, "work", "reason"],
            registry=self.registry,
        )
        self.repairs = Counter(
            "canary_agent_repairs",
            "Clones found unusable (a stale lock, a half-written ref, a corrupt index) and rebuilt from the origin",
            labels,
            registry=self.registry,
        )
        self.verdicts_seen: set[str] = set()

    def passed(self, stack: str, longest_interval_s: float, judging_since: float = 0.0) -> None:
        """A pass of the agent started for `stack` ended; `longest_interval_s` of the stacks it served (0: none),
        and when the oldest judgment still running began (0: none)."""
        self.passes.labels(stack).inc()
        self.last_pass.labels(stack).set(time.time())
        self.longest_interval.labels(stack).set(longest_interval_s)
        self.judging_since.labels(stack).set(judging_since)

    def set_evidence(self, stack: str, numbers: Iterable[tuple[str, str, float]]) -> None:
        """The statistical judge's (check, quantity, value) of the stack's newest look; the series of an earlier
        look that this one has not are removed, so a panel never shows a stale number as current."""
        fresh = {(check, quantity): value for check, quantity, value in numbers}
        for check, quantity in self.evidence_seen.get(stack, set()) - set(fresh):
            self.evidence.remove(stack, check, quantity)
        for (check, quantity), value in fresh.items():
            self.evidence.labels(stack, check, quantity).set(value)
        self.evidence_seen[stack] = set(fresh)

    def set_verdict(self, stack: str, verdict: str) -> None:
        for seen in self.verdicts_seen | {verdict}:
            self.verdict.labels(stack, seen).set(1 if seen == verdict else 0)
        self.verdicts_seen.add(verdict)
        self.checks.labels(stack, verdict).inc()


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:  # probes every few seconds: not worth a log line each
        pass


def serve(metrics: Metrics, host: str, port: int, healthy: Callable[[], bool]) -> WSGIServer:
    """Start the HTTP server in a daemon thread; returns it (call shutdown() to stop)."""
    metrics_app = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            ok = healthy()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"the loop has not finished an iteration lately\n"]
        return metrics_app(environ, start_response)

    server = make_server(host, port, app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    return server


def stale_after(longest_interval_s: float) -> float:
    """Seconds without a finished pass after which the loop counts as stuck; 0 (no stack read yet) stands for the
    longest interval any stack may set."""
    interval = longest_interval_s or duration_seconds(MAX_ANALYSIS_INTERVAL)
    return max(MIN_STALE_S, STALE_INTERVALS * interval)


def fresh(metrics: Metrics, stack: str, clock: Callable[[], float] = time.time) -> Callable[[], bool]:
    """A /healthz predicate for the agent started for `stack`: its last pass ended less than `stale_after()` of
    the stacks it served ago (or the loop just began)."""
    started = clock()

    def healthy() -> bool:
        now, limit = clock(), stale_after(metrics.longest_interval.labels(stack)._value.get())
        last = metrics.last_pass.labels(stack)._value.get() or started
        judging_since = metrics.judging_since.labels(stack)._value.get()
        return now - last < limit and not (judging_since and now - judging_since >= limit)

    return healthy
