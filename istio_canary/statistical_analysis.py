"""The statistical judge's I/O: ask the metrics backend for each version's counts over the step so far, and hand
them to the pure judge (istio_canary/release/statistical.py). A stack's own checks (analysisChecks) are judged
beside it as the threshold judge judges them: their queries answer values, not counts. With analysisBaseline the
canary is compared with <app>-baseline at a weight step, warm for warm.
"""

from __future__ import annotations

import math

from istio_canary.metrics import BadQuery, MetricsProvider, MetricsUnavailable, istio_observer
from istio_canary.release import statistical
from istio_canary.release.checks import Check
from istio_canary.release.looks import Window
from istio_canary.release.model import AppSettings, ReleaseSettings
from istio_canary.release.names import BASELINE, workload
from istio_canary.release.statistical import Counts, Judgement

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


def comparator(app: AppSettings, release: ReleaseSettings) -> str:
    """The subset the canary is compared with: the baseline at a weight step of a stack that runs one (it has the
    canary's share, so both are equally warm), else GA (a traffic-shape step sends the baseline nothing)."""
    return BASELINE if release.baseline and not app.canary_shape and app.canary_weight > 0 else "ga"


def compare(
    source: MetricsProvider, app: AppSettings, release: ReleaseSettings, judged: Window, at: float
) -> tuple[Judgement, dict[str, Counts]]:
    """Each subset's counts over the step so far, and the canary judged against its comparator's; when that served
    nothing during the step (the canary at 100 %), against its traffic over as long just before it."""
    against = comparator(app, release)
    subsets = ("canary", "ga", BASELINE) if against == BASELINE else ("canary", "ga")
    counted = {subset: count(source, app.namespace, app.name, subset, judged.duration, at) for subset in subsets}
    weight = None if app.canary_shape else app.canary_weight
    before = None
    if counted[against].requests <= 0:
        before = count(source, app.namespace, app.name, against, judged.duration, at - judged.seconds)
    rules, look = release.statistical, judged.look
    if against == "ga":
        return statistical.judge(counted["canary"], counted["ga"], rules, look, weight, before), counted
    ga, baseline = counted["ga"], counted[BASELINE]
    # The traffic share is the canary's of all three: GA and the baseline together are the rest of the route.
    others = Counts(ga.requests + baseline.requests, ga.errors + baseline.errors)
    judgement = statistical.judge(
        counted["canary"], baseline, rules, look, weight, before, comparator_name=BASELINE, others=others
    )
    return judgement, counted
