"""The statistical judge's I/O: ask the metrics backend for each version's counts over the step so far, and hand
them to the pure judge (istio_canary/release/statistical.py). A stack's own checks (analysisChecks) are judged
beside it as the threshold judge judges them: their queries answer values, not counts.
"""

from __future__ import annotations

import math

from istio_canary.metrics import BadQuery, MetricsProvider, MetricsUnavailable, istio_observer
from istio_canary.release.checks import Check
from istio_canary.release.names import workload
from istio_canary.release.statistical import Counts

BUILTIN = ("requests", "success_rate", "p99_ms")  # the checks the statistical judge replaces


class CountsUnavailable(MetricsUnavailable):
    """The backend answered counts no traffic produces (more errors than requests, a histogram that is not one):
    garbage, as ImpossibleMetrics is for values."""

    def __init__(self, message: str) -> None:
        super().__init__(message, answered=True)


def own_checks(checks: tuple[Check, ...]) -> tuple[Check, ...]:
    """The stack's own checks: the ones the statistical judge does not replace."""
    return tuple(check for check in checks if check.name not in BUILTIN)


def count(source: MetricsProvider, namespace: str, app: str, version: str, window: str, at: float) -> Counts:
    """One version's requests, 5xx and duration histogram over `window` ending at `at`."""
    name = workload(app, version)

    def one(template: str) -> float:
        value = source.query(istio_observer.render(template, namespace, name, window), at)
        if value is None or math.isnan(value):
            return 0.0  # no series (or 0/0): nothing counted
        return value

    try:
        requests = one(istio_observer.requests_template())
        errors = one(istio_observer.errors_template())
        answer = source.series(
            istio_observer.render(istio_observer.buckets_template(), namespace, name, window), at, "le"
        )
    except BadQuery as exc:  # our own queries: a backend that cannot parse them is not one we can judge with
        raise CountsUnavailable(f"{name}: the backend cannot run the statistical judge's queries: {exc}") from None
    buckets = []
    for bound, value in answer.items():
        try:
            upper = float(bound)
        except ValueError:
            raise CountsUnavailable(f"{name}: a histogram bucket le={bound[:40]!r} is not a number") from None
        buckets.append((upper, 0.0 if math.isnan(value) else value))
    buckets.sort()
    if buckets and not math.isinf(buckets[-1][0]):
        raise CountsUnavailable(f"{name}: the duration histogram has no +Inf bucket")
    if errors > requests * 1.01 + 1:  # increase() extrapolates each series alone: a sliver over is rounding
        raise CountsUnavailable(f"{name}: {errors:g} 5xx but {requests:g} requests in the window")
    try:
        return Counts(requests, min(errors, requests), tuple(buckets))
    except ValueError as exc:
        raise CountsUnavailable(f"{name}: {exc}") from None
