"""The agent's own observability: /healthz and /metrics (prometheus_client) on one port.

/healthz is 200 while the loop has finished an iteration within the last `stale_after_s`, else 503, so a
stuck loop gets restarted by its liveness probe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app

from components.names import (
    AGENT_DECISIONS,
    AGENT_DRIFT,
    AGENT_LAST_ITERATION,
    AGENT_SHAPE,
    AGENT_VERDICT,
    AGENT_WEIGHT,
)


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
        self.verdicts_seen: set[str] = set()

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


def fresh(metrics: Metrics, stack: str, stale_after_s: float) -> Callable[[], bool]:
    """A /healthz predicate: the last iteration ended less than `stale_after_s` ago (or the loop just began)."""
    started = time.time()

    def healthy() -> bool:
        last = metrics.last_iteration.labels(stack)._value.get() or started
        return time.time() - last < stale_after_s

    return healthy
