"""Canary analysis from Istio's standard metrics in Prometheus: success rate and p99 latency, canary vs GA."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import Enum

from components import promql
from components.names import workload
from rollout.prometheus import Prometheus, PrometheusError
from rollout.stackfile import ReleaseView

# The latest time `--at` accepts (9999-12-31T23:59:59Z): datetime cannot show a later one.
MAX_TIME_S = 253402300799.0


class ImpossibleMetrics(PrometheusError):
    """Prometheus answered numbers no real traffic produces (negative, infinite, NaN counts, more 5xx than
    requests): the answer is garbage, neither a pass nor a fail (a fail would roll back on garbage)."""


class Verdict(str, Enum):
    """Outcome of an analysis; no data is never a pass."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class WorkloadMetrics:
    """What Istio saw for one Deployment over the window; None means Prometheus returned no value."""

    workload: str
    requests: float | None
    errors: float | None
    p99_ms: float | None

    def __post_init__(self) -> None:
        for name in ("requests", "errors", "p99_ms"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0
            ):
                raise ImpossibleMetrics(f"{self.workload}: {name} = {value!r} is not a finite number >= 0")
        if self.errors and self.errors > (self.requests or 0.0) * (1 + 1e-9):
            raise ImpossibleMetrics(f"{self.workload}: {self.errors:g} 5xx out of {self.requests or 0:g} requests")

    @property
    def success_rate(self) -> float | None:
        """Non-5xx / all x 100, or None without traffic."""
        if not self.requests:
            return None
        return (self.requests - (self.errors or 0.0)) / self.requests * 100.0


@dataclass(frozen=True)
class Analysis:
    """The verdict with the numbers and thresholds that produced it."""

    verdict: Verdict
    reasons: tuple[str, ...]
    canary: WorkloadMetrics
    ga: WorkloadMetrics
    window: str
    at: float
    min_success_rate: float
    max_p99_ms: int
    min_requests: int

    def summary(self) -> str:
        """One line for commit messages and Slack, e.g. `success 99.8% / p99 120ms over 5m, 1234 requests`."""
        return (
            f"success {_pct(self.canary.success_rate)} / p99 {_ms(self.canary.p99_ms)} over {self.window}, "
            f"{_count(self.canary.requests)} requests"
        )

    def to_json(self) -> dict:
        """A machine-readable form (what `canary analyze --json` prints)."""
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["reasons"] = list(self.reasons)
        data["at_rfc3339"] = datetime.fromtimestamp(self.at, UTC).isoformat()
        for side in ("canary", "ga"):
            data[side]["success_rate"] = getattr(self, side).success_rate
        return data


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}ms"


def _count(value: float | None) -> str:
    return "0" if value is None else f"{value:.0f}"


def queries(namespace: str, app: str, version: str, window: str) -> dict[str, str]:
    """Request count, 5xx count and p99 latency of one version over `window`: the dashboard's own PromQL."""
    versions = (version,)
    return {
        "requests": promql.request_count(namespace, app, window, versions),
        "errors": promql.server_error_count(namespace, app, window, versions),
        "p99_ms": promql.p99_latency(namespace, app, window, versions),
    }


def measure(prometheus: Prometheus, namespace: str, app: str, version: str, window: str, at: float) -> WorkloadMetrics:
    """Run the queries for one version (`ga` or `canary`) of the app."""
    values = {name: prometheus.query(q, at) for name, q in queries(namespace, app, version, window).items()}
    p99 = values["p99_ms"]
    if p99 is not None and math.isnan(p99) and not values["requests"]:
        # histogram_quantile over buckets that did not move is 0/0: no traffic, so no latency. With traffic,
        # a NaN stays and is refused as impossible.
        values["p99_ms"] = None
    return WorkloadMetrics(workload=workload(app, version), **values)


def judge(
    canary: WorkloadMetrics, min_success_rate: float, max_p99_ms: int, min_requests: int
) -> tuple[Verdict, tuple[str, ...]]:
    """Apply the thresholds to the canary; too little traffic or a missing latency is INCONCLUSIVE."""
    if canary.requests is None or canary.requests < min_requests:
        seen = _count(canary.requests)
        return Verdict.INCONCLUSIVE, (f"canary served {seen} requests in the window, fewer than {min_requests}",)
    if canary.p99_ms is None:
        return Verdict.INCONCLUSIVE, ("no latency histogram for the canary in the window",)
    reasons = []
    rate = canary.success_rate or 0.0
    if rate < min_success_rate:
        reasons.append(f"success rate {rate:.2f}% is below {min_success_rate:g}%")
    if canary.p99_ms > max_p99_ms:
        reasons.append(f"p99 {canary.p99_ms:.0f}ms is above {max_p99_ms}ms")
    if reasons:
        return Verdict.FAIL, tuple(reasons)
    return Verdict.PASS, (
        f"success rate {rate:.2f}% >= {min_success_rate:g}%, p99 {canary.p99_ms:.0f}ms <= {max_p99_ms}ms",
    )


def analyze(view: ReleaseView, prometheus: Prometheus, at: float) -> Analysis:
    """Measure canary and GA over the configured window at `at` and judge the canary."""
    rel = view.release
    canary = measure(prometheus, view.app.namespace, view.app.name, "canary", rel.window, at)
    ga = measure(prometheus, view.app.namespace, view.app.name, "ga", rel.window, at)
    verdict, reasons = judge(canary, rel.min_success_rate, rel.max_p99_ms, rel.min_requests)
    return Analysis(
        verdict=verdict,
        reasons=reasons,
        canary=canary,
        ga=ga,
        window=rel.window,
        at=at,
        min_success_rate=rel.min_success_rate,
        max_p99_ms=rel.max_p99_ms,
        min_requests=rel.min_requests,
    )


def parse_time(value: str | None) -> float:
    """`--at`: RFC 3339 (2025-01-02T03:04:05Z) or unix seconds; None means now."""
    if value is None:
        return datetime.now(UTC).timestamp()
    shown = value[:40]
    if re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,9})?", value, re.ASCII):
        seconds = float(value)
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"--at {shown!r}: expected RFC 3339 (2025-01-02T03:04:05Z) or unix seconds") from None
        if parsed.tzinfo is None:
            raise ValueError(f"--at {shown!r}: give a time zone (Z or +hh:mm)")
        seconds = parsed.timestamp()
    if not 0 <= seconds <= MAX_TIME_S:
        raise ValueError(f"--at {shown!r}: must be between 1970-01-01 and 9999-12-31")
    return seconds


def table(result: Analysis) -> str:
    """The human table of `canary analyze`."""
    rows = [("", "requests", "success", "p99"), ("-" * 16, "-" * 9, "-" * 8, "-" * 7)]
    for metrics, label in ((result.canary, "canary"), (result.ga, "ga")):
        rows.append(
            (
                f"{label} ({metrics.workload})"[:40],
                _count(metrics.requests),
                _pct(metrics.success_rate),
                _ms(metrics.p99_ms),
            )
        )
    rows.append(
        ("threshold", f">={result.min_requests}", f">={result.min_success_rate:g}%", f"<={result.max_p99_ms}ms")
    )
    width = max(len(r[0]) for r in rows)
    lines = [f"{r[0]:<{width}}  {r[1]:>9}  {r[2]:>8}  {r[3]:>8}" for r in rows]
    when = datetime.fromtimestamp(result.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines.append(f"window {result.window} ending {when}")
    lines.append(f"verdict: {result.verdict.value.upper()}")
    lines.extend(f"  - {reason}" for reason in result.reasons)
    return "\n".join(lines)
