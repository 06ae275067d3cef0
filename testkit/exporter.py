"""A live exporter of Istio's standard request metrics for podinfo-ga / podinfo-canary, for a real Prometheus to
scrape while a test changes the traffic (testkit/livemetrics.py starts that Prometheus).

The metrics are named and labelled as an Istio sidecar exposes them: the counter `istio_requests_total` and the
histogram `istio_request_duration_milliseconds` (`_bucket`/`_sum`/`_count`, Istio's default buckets), with
`reporter`, `destination_workload_namespace`, `destination_workload`, `destination_version` (the pod's `version`
label: the image tag, as components/canary_app.py sets it), `response_code` and a few more of Istio's standard
labels, so istio_canary/metrics/istio_observer.py's queries run against it unchanged. They are served by the Prometheus client
library (a custom collector: no `_created` series, which Envoy does not expose either) from 127.0.0.1.

Traffic is generated, not measured: a background thread adds, every `tick_s`, each workload's requests for the
time that passed (rps x elapsed, fractions carried over), exactly `error_share` of them 503 and
`client_error_share` 404 (carried shares, not dice: 10 % errors is 10 % over any few seconds), each taking
between half and all of `latency_ms` (so p99 lies in the Istio bucket holding `latency_ms`). Like a real sidecar a
series appears with its first request: the first 503 of a workload creates its 503 series, and rate() counts the
increase from the second scrape of it on.

The client side (the ingress gateway, `reporter="source"`) reports the same requests plus `source_error_share`
extra 503s taking 5 s (requests that never reached a pod): a query that forgets `reporter="destination"` reads a
worse canary than there is. Set it to 0 for a quiet source side.

    with IstioExporter(namespace="demo") as exporter:          # ga and canary at 10 rps, healthy
        exporter.set("canary", rps=20, error_share=0.1, latency_ms=300)
        exporter.remove("canary")       # the workload is gone: its series vanish (stale in Prometheus)
        exporter.set("canary", rps=5)   # back, counters from 0 (a new pod)
        exporter.down()                 # connection refused: Prometheus records up=0; traffic keeps counting
        exporter.up()                   # serving again on the same port
        exporter.split(60, total_rps=20)  # 12 rps canary, 8 rps GA: the VirtualService at weight 60

Everything is bounded: the generator thread and the HTTP server stop on `close()` (the context manager's exit).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from socketserver import ThreadingMixIn
from typing import Self
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from testkit.servers import BUCKETS

REQUESTS = "istio_requests"  # exposed as istio_requests_total (the client library adds _total to a counter)
DURATION = "istio_request_duration_milliseconds"
# Istio's standard labels of both metrics (a subset: the ones a mesh of two Deployments behind a gateway fills).
LABELS = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "destination_workload",
    "destination_workload_namespace",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "request_protocol",
    "response_code",
    "response_flags",
    "connection_security_policy",
)
SUBSETS = ("ga", "canary")
GATEWAY = ("istio-ingressgateway", "istio-system")
SOURCE_ERROR_LATENCY_MS = 5000.0  # the client side's own 503s: upstream timeouts
JOIN_TIMEOUT_S = 5.0
SHARE_EPSILON = 1e-9  # ten times 0.1 is 0.9999999999999999: still the tenth request's error


class _Server(ThreadingMixIn, WSGIServer):
    """prometheus_client's threading WSGI server, quiet about clients that hang up (a scrape timeout)."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class _Handler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass


@dataclass(frozen=True)
class Traffic:
    """What one workload serves: requests per second, share of 503s and of 404s, latency (requests take between
    half and all of it), and the pod's version label."""

    rps: float
    error_share: float = 0.0
    client_error_share: float = 0.0
    latency_ms: float = 50.0
    version: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rps) and self.rps >= 0):
            raise ValueError(f"rps must be a finite number >= 0, not {self.rps!r}")
        for name in ("error_share", "client_error_share"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be within [0, 1], not {value!r}")
        if self.error_share + self.client_error_share > 1:
            raise ValueError("error_share + client_error_share must be at most 1")
        if not (math.isfinite(self.latency_ms) and self.latency_ms > 0):
            raise ValueError(f"latency_ms must be a finite number > 0, not {self.latency_ms!r}")


@dataclass
class _Series:
    """One (reporter, version, response code, flags) series: request count and the histogram."""

    count: int = 0
    total_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))  # per bucket, not cumulative

    def observe(self, latency_ms: float) -> None:
        self.count += 1
        self.total_ms += latency_ms
        for index, bound in enumerate(BUCKETS):
            if latency_ms <= bound:
                self.buckets[index] += 1
                return  # above the last bound: only +Inf (the count) holds it


@dataclass
class _Workload:
    traffic: Traffic
    series: dict[tuple[str, str, str], _Series] = field(default_factory=dict)  # (reporter, code, flags)
    carry: float = 0.0  # fraction of a request owed from earlier ticks
    error_carry: float = 0.0
    client_error_carry: float = 0.0
    source_error_carry: float = 0.0
    served: dict[str, int] = field(default_factory=dict)  # response code -> requests (destination side)


class IstioExporter(Collector):
    """Istio's request metrics for `{app}-ga` and `{app}-canary` in `namespace`, served live on 127.0.0.1."""

    def __init__(
        self,
        namespace: str = "live",
        app: str = "podinfo",
        *,
        ga: Traffic | None = None,
        canary: Traffic | None = None,
        ga_version: str = "6.8.0",
        canary_version: str = "6.9.0",
        source_error_share: float = 0.5,
        tick_s: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.namespace = namespace
        self.app = app
        self.source_error_share = source_error_share
        self.tick_s = tick_s
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._versions = {"ga": ga_version, "canary": canary_version}
        self._workloads: dict[str, _Workload] = {}
        for subset, traffic in (("ga", ga), ("canary", canary)):
            start = traffic or Traffic(rps=10)
            self._workloads[subset] = _Workload(
                start if start.version else replace(start, version=self._versions[subset])
            )
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)
        self._server: WSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self.port = 0
        self.up()
        self._thread = threading.Thread(target=self._generate, name="istio-exporter-traffic", daemon=True)
        self._thread.start()

    # --- what a test calls ------------------------------------------------------------------------------

    @property
    def target(self) -> str:
        """host:port for a scrape config."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The metrics page."""
        return f"http://{self.target}/metrics"

    def workload(self, subset: str) -> str:
        """The Deployment / destination_workload name of `ga` or `canary`."""
        return f"{self.app}-{self._subset(subset)}"

    def traffic(self, subset: str) -> Traffic | None:
        """The current traffic of a workload, None when it was removed."""
        with self._lock:
            current = self._workloads.get(self._subset(subset))
            return current.traffic if current else None

    def set(
        self,
        subset: str,
        *,
        rps: float | None = None,
        error_share: float | None = None,
        client_error_share: float | None = None,
        latency_ms: float | None = None,
        version: str | None = None,
    ) -> Traffic:
        """Change a workload's traffic from now on (unset arguments keep their value). A removed workload comes
        back with counters from 0, as a new pod does; so does a new `version` (new pods, new series)."""
        subset = self._subset(subset)
        self._advance()  # what was served so far was served at the old rate
        with self._lock:
            current = self._workloads.get(subset)
            base = current.traffic if current else Traffic(rps=10, version=self._versions[subset])
            changes = {
                name: value
                for name, value in (
                    ("rps", rps),
                    ("error_share", error_share),
                    ("client_error_share", client_error_share),
                    ("latency_ms", latency_ms),
                    ("version", version),
                )
                if value is not None
            }
            traffic = replace(base, **changes)  # type: ignore[arg-type]  # validated in __post_init__
            if current is None or traffic.version != current.traffic.version:
                self._workloads[subset] = _Workload(traffic)
            else:
                current.traffic = traffic
            return traffic

    def split(self, canary_weight: int, total_rps: float = 20.0) -> None:
        """Route `total_rps` as a VirtualService with this canary weight does: canary_weight % to the canary, the
        rest to GA (weight 0 leaves the canary's series in place, flat: no new requests)."""
        if not 0 <= canary_weight <= 100:
            raise ValueError(f"canary weight {canary_weight} is not a percentage from 0 to 100")
        self.set("canary", rps=total_rps * canary_weight / 100)
        self.set("ga", rps=total_rps * (100 - canary_weight) / 100)

    def remove(self, subset: str) -> None:
        """The workload disappears (scaled to zero, pods gone): its series are no longer exposed."""
        self._advance()
        with self._lock:
            self._workloads.pop(self._subset(subset), None)

    def served(self, subset: str) -> dict[str, int]:
        """Requests the workload served (destination side) by response code since it (re)appeared."""
        self._advance()
        with self._lock:
            current = self._workloads.get(self._subset(subset))
            return dict(current.served) if current else {}

    def down(self) -> None:
        """Stop serving /metrics: connections are refused (Prometheus marks the target down, up=0). Traffic keeps
        being counted, as it does in a sidecar Prometheus cannot reach."""
        server, thread = self._server, self._server_thread
        self._server = self._server_thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=JOIN_TIMEOUT_S)

    def up(self) -> None:
        """Serve /metrics (again) on 127.0.0.1, on the same port as before."""
        if self._server is not None:
            return
        # What prometheus_client's start_http_server does, with a short poll so down() and close() are quick.
        server = make_server("127.0.0.1", self.port, make_wsgi_app(self._registry), _Server, handler_class=_Handler)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="istio-exporter-http", daemon=True
        )
        thread.start()
        self._server, self._server_thread = server, thread
        self.port = server.server_port

    @property
    def serving(self) -> bool:
        """Is /metrics being served right now?"""
        return self._server is not None

    def close(self) -> None:
        """Stop the traffic thread and the server; idempotent."""
        self._stop.set()
        self._thread.join(timeout=JOIN_TIMEOUT_S)
        self.down()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the collector: what Prometheus scrapes ----------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        self._advance()
        requests = CounterMetricFamily(REQUESTS, "Total requests.", labels=LABELS)
        duration = HistogramMetricFamily(DURATION, "Request duration in milliseconds.", labels=LABELS)
        with self._lock:
            snapshot = [
                (subset, w.traffic.version, key, s.count, s.total_ms, list(s.buckets))
                for subset, w in self._workloads.items()
                for key, s in w.series.items()
            ]
        for subset, version, (reporter, code, flags), count, total_ms, buckets in snapshot:
            values = self._label_values(subset, version, reporter, code, flags)
            requests.add_metric(values, count)
            cumulative, points = 0, []
            for bound, observed in zip(BUCKETS, buckets, strict=True):
                cumulative += observed
                points.append((f"{bound:g}", float(cumulative)))
            points.append(("+Inf", float(count)))
            duration.add_metric(values, buckets=points, sum_value=total_ms)
        yield requests
        yield duration

    def _label_values(self, subset: str, version: str, reporter: str, code: str, flags: str) -> list[str]:
        service = f"{self.app}.{self.namespace}.svc.cluster.local"
        labels = {
            "reporter": reporter,
            "source_workload": GATEWAY[0],
            "source_workload_namespace": GATEWAY[1],
            "destination_workload": f"{self.app}-{subset}",
            "destination_workload_namespace": self.namespace,
            "destination_app": self.app,
            "destination_version": version,
            "destination_service": service,
            "destination_service_name": self.app,
            "destination_service_namespace": self.namespace,
            "destination_canonical_service": self.app,
            "destination_canonical_revision": version,
            "request_protocol": "http",
            "response_code": code,
            "response_flags": flags,
            "connection_security_policy": "mutual_tls" if reporter == "destination" else "unknown",
        }
        return [labels[name] for name in LABELS]

    # --- traffic -------------------------------------------------------------------------------------------

    def _generate(self) -> None:
        while not self._stop.wait(self.tick_s):
            self._advance()

    def _advance(self) -> None:
        """Add the requests served since the last call, at the current traffic."""
        with self._lock:
            now = time.monotonic()
            elapsed, self._last = now - self._last, now
            for w in self._workloads.values():
                self._serve(w, elapsed)

    def _serve(self, w: _Workload, elapsed: float) -> None:
        t = w.traffic
        due = t.rps * elapsed + w.carry
        n = int(due)
        w.carry = due - n
        for _ in range(n):
            latency = t.latency_ms * (0.5 + 0.5 * self._random.random())
            w.error_carry += t.error_share
            w.client_error_carry += t.client_error_share
            if w.error_carry >= 1 - SHARE_EPSILON:
                w.error_carry -= 1
                code = "503"
            elif w.client_error_carry >= 1 - SHARE_EPSILON:
                w.client_error_carry -= 1
                code = "404"
            else:
                code = "200"
            w.served[code] = w.served.get(code, 0) + 1
            for reporter in ("destination", "source"):
                w.series.setdefault((reporter, code, "-"), _Series()).observe(latency)
            w.source_error_carry += self.source_error_share
            while w.source_error_carry >= 1 - SHARE_EPSILON:
                w.source_error_carry -= 1
                w.series.setdefault(("source", "503", "UF"), _Series()).observe(SOURCE_ERROR_LATENCY_MS)

    def _subset(self, subset: str) -> str:
        if subset not in SUBSETS:
            raise ValueError(f"subset must be one of {SUBSETS}, not {subset!r}")
        return subset
