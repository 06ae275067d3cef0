"""Canary analysis: run every check's query for the canary and for GA, and judge the canary.

Everything here is driven by the stack's tuple of checks (istio_canary/release/checks.py): the queries, the verdict,
the table, the JSON and the one-line summary in commit subjects. `judge()` is pure; `analyze()` does the I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from istio_canary import statistical_analysis
from istio_canary.metrics import BadQuery, MetricsProvider, MetricsUnavailable
from istio_canary.release import looks, statistical
from istio_canary.release.checks import Check
from istio_canary.release.model import STATISTICAL_JUDGE, THRESHOLD_JUDGE
from istio_canary.release.names import duration_seconds, workload
from istio_canary.release.statistical import Finding
from istio_canary.release.verdict import Verdict
from istio_canary.stackfile import StackView

PERCENT_SLACK = 1e-9  # float noise above 100 % is not an impossible success rate


class ImpossibleMetrics(MetricsUnavailable):
    """The metrics backend answered numbers no real traffic produces (negative, infinite, a success rate over
    100 %, NaN while there was traffic): the answer is garbage, neither a pass nor a fail (a fail would roll back
    on it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, answered=True)


class BadCheckQuery(RuntimeError):
    """The metrics backend could not parse a check's query (the port's BadQuery): the stack's config is wrong,
    not the backend. The message keeps today's wording, which commit evidence and notices carry."""


@dataclass(frozen=True)
class Measurement:
    """Each check's value for one Deployment over the window; None means no value (no series, or 0/0)."""

    workload: str
    values: dict[str, float | None]

    def __post_init__(self) -> None:
        for name, value in self.values.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ImpossibleMetrics(f"{self.workload}: {name} = {value!r} is not a finite number >= 0")
            if name == "success_rate" and value > 100 + PERCENT_SLACK:
                raise ImpossibleMetrics(f"{self.workload}: a success rate of {value:g}% is over 100%")


@dataclass(frozen=True)
class Outcome:
    """What one check said about the canary."""

    check: Check
    canary: float | None
    ga: float | None
    result: str  # pass, fail, no-data, too-little
    reason: str


@dataclass(frozen=True)
class Analysis:
    """The verdict with every check's numbers and rules."""

    verdict: Verdict
    reasons: tuple[str, ...]
    outcomes: tuple[Outcome, ...]
    canary: Measurement
    ga: Measurement
    window: str
    at: float
    judge: str = THRESHOLD_JUDGE
    findings: tuple[Finding, ...] = ()  # the statistical judge's tests
    look: int = 0  # which look of the step this was (the statistical judge)

    def summary(self) -> str:
        """One line for commit messages and Slack, e.g. `success 99.8% / p99 120ms over 5m, 1234 requests`."""
        if self.judge == STATISTICAL_JUDGE:
            return _statistical_summary(self)
        judged = [o for o in self.outcomes if not o.check.gate]
        parts = " / ".join(f"{o.check.label or o.check.name} {o.check.show(o.canary)}" for o in judged)
        gates = ", ".join(f"{_count(o.canary)} {o.check.name}" for o in self.outcomes if o.check.gate)
        return f"{parts} over {self.window}" + (f", {gates}" if gates else "")

    def to_json(self) -> dict:
        """The machine-readable form (`canary analyze --json`); numbers rounded as people read them."""
        return {
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "window": self.window,
            "at": self.at,
            "at_rfc3339": datetime.fromtimestamp(self.at, UTC).isoformat(),
            **(
                {"judge": self.judge, "look": self.look, "findings": [f.to_json() for f in self.findings]}
                if self.judge == STATISTICAL_JUDGE
                else {}
            ),
            "canary": {"workload": self.canary.workload, **_rounded(self.canary.values)},
            "ga": {"workload": self.ga.workload, **_rounded(self.ga.values)},
            "checks": [
                {
                    "name": o.check.name,
                    "comparison": o.check.comparison,
                    "threshold": _round(o.check.threshold),
                    "unit": o.check.unit,
                    "max_worse_than_ga_pct": o.check.max_worse_than_ga_pct,
                    "gate": o.check.gate,
                    "canary": _round(o.canary),
                    "ga": _round(o.ga),
                    "result": o.result,
                    "reason": o.reason,
                }
                for o in self.outcomes
            ],
        }


def _round(value: float | None) -> float | int | None:
    if value is None:
        return None
    rounded = round(float(value), 3)
    return int(rounded) if rounded.is_integer() else rounded


def _rounded(values: dict[str, float | None]) -> dict[str, float | int | None]:
    return {name: _round(value) for name, value in values.items()}


def _count(value: float | None) -> str:
    return "0" if value is None else f"{value:.0f}"


def measure(
    source: MetricsProvider, checks: tuple[Check, ...], namespace: str, app: str, version: str, window: str, at: float
) -> Measurement:
    """Run every check's query for one version (`ga` or `canary`) of the app."""
    name = workload(app, version)
    values: dict[str, float | None] = {}
    for check in checks:
        try:
            values[check.name] = source.query(check.promql(namespace, name, window), at)
        except BadQuery as exc:
            raise BadCheckQuery(f"check {check.name}: Prometheus could not parse its query: {exc}") from None
    for check in checks:
        if check.gate and values[check.name] is None:
            values[check.name] = 0.0  # a count with no series counted nothing: zero, not "no value"
    traffic = next((values[c.name] for c in checks if c.gate), None)
    for key, value in values.items():
        if value is not None and math.isnan(value):
            if traffic:  # with traffic every ratio and quantile is defined
                raise ImpossibleMetrics(f"{name}: {key} is NaN although the workload served {traffic:g} requests")
            values[key] = None  # 0/0 over a window without traffic: no value
    return Measurement(workload=name, values=values)


def judge(checks: tuple[Check, ...], canary: Measurement, ga: Measurement) -> tuple[Verdict, tuple[Outcome, ...]]:
    """The verdict: a gate below its threshold or a missing value is INCONCLUSIVE; any failed rule is FAIL. A rule
    relative to GA is judged only on enough of GA's traffic too: GA under the gate (a half-empty window after a
    scrape gap) makes that comparison too-little, so a canary that fails nothing else is INCONCLUSIVE, not
    compared on a few dozen requests; GA serving nothing (the canary at 100 %) leaves the comparison out."""
    gate = next((c for c in checks if c.gate), None)
    ga_served = ga.values.get(gate.name) if gate else None
    ga_short = bool(gate and ga_served and not gate.passes(ga_served))
    outcomes, uncompared = [], set()
    for check in checks:
        mine, theirs = canary.values.get(check.name), ga.values.get(check.name)
        relative = check.max_worse_than_ga_pct is not None and theirs is not None
        if mine is None or (check.gate and not check.passes(mine)):
            if check.gate:
                result = "too-little"
                reason = (
                    f"canary served {_count(mine)} {check.name} in the window, fewer than {check.show(check.threshold)}"
                )
            else:
                result, reason = "no-data", f"no value of {check.name} for the canary in the window"
        elif not check.passes(mine):
            result, reason = "fail", f"{check.name} {check.show(mine)} is not {check.rule()}"
        elif relative and ga_short and gate:
            uncompared.add(check.name)
            result = "too-little"
            reason = (
                f"GA served {_count(ga_served)} {gate.name} in the window, fewer than {gate.show(gate.threshold)}: "
                f"too few to compare {check.name} with"
            )
        elif theirs is not None and not check.within_ga(mine, theirs):
            limit = check.ga_limit(theirs)
            result = "fail"
            reason = (
                f"{check.name} {check.show(mine)} is worse than GA's {check.show(theirs)} allows ({check.show(limit)})"
            )
        else:
            compared = "" if check.max_worse_than_ga_pct is None or theirs is not None else "; GA has no value"
            result, reason = "pass", f"{check.name} {check.show(mine)} {check.rule()}{compared}"
        outcomes.append(Outcome(check, mine, theirs, result, reason))
    own = {o.result for o in outcomes if o.check.name not in uncompared}  # what the canary's own numbers say
    if own & {"too-little", "no-data"}:
        verdict = Verdict.INCONCLUSIVE
    elif "fail" in own:
        verdict = Verdict.FAIL
    elif uncompared:
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.PASS
    return verdict, tuple(outcomes)


def analyze(
    view: StackView, source: MetricsProvider, at: float, window: str | None = None, step_age_s: float | None = None
) -> Analysis:
    """Measure canary and GA over the window ending at `at` (analysisWindow unless given) and judge the canary.
    The statistical judge judges the step so far: `step_age_s` (how long it has been live at `at`) gives its
    window and look; without it, `window` (or analysisWindow) is taken as the whole step."""
    rel, app = view.release, view.app
    if rel.judge == STATISTICAL_JUDGE:
        return _analyze_statistical(view, source, at, window, step_age_s)
    window = window or rel.window
    canary = measure(source, rel.checks, app.namespace, app.name, "canary", window, at)
    ga = measure(source, rel.checks, app.namespace, app.name, "ga", window, at)
    verdict, outcomes = judge(rel.checks, canary, ga)
    results = {o.result for o in outcomes}
    # The reasons that decided it: too little traffic explains any missing value, so it alone is given then.
    decisive = {
        Verdict.INCONCLUSIVE: ("too-little",) if "too-little" in results else ("no-data",),
        Verdict.FAIL: ("fail",),
        Verdict.PASS: ("pass",),
    }[verdict]
    reasons = tuple(o.reason for o in outcomes if o.result in decisive)
    return Analysis(verdict, reasons, outcomes, canary, ga, window, at)


def _analyze_statistical(
    view: StackView, source: MetricsProvider, at: float, window: str | None, step_age_s: float | None
) -> Analysis:
    rel, app = view.release, view.app
    age = step_age_s if step_age_s is not None else duration_seconds(window or rel.window)
    judged = looks.judged_window(rel, age)
    own = statistical_analysis.own_checks(rel.checks)
    if judged is None:  # less than one interval of the step: nothing to judge yet
        empty = Measurement(workload(app.name, "canary"), {})
        reason = f"the step has been live {age:.0f}s, less than one analysisInterval ({rel.interval})"
        return Analysis(
            Verdict.INCONCLUSIVE,
            (reason,),
            (),
            empty,
            Measurement(workload(app.name, "ga"), {}),
            f"{max(0, int(age))}s",
            at,
            STATISTICAL_JUDGE,
        )
    span = judged.duration
    counted = {
        version: statistical_analysis.count(source, app.namespace, app.name, version, span, at)
        for version in ("canary", "ga")
    }
    weight = None if app.canary_shape else app.canary_weight
    result = statistical.judge(counted["canary"], counted["ga"], rel.statistical, judged.look, weight)
    canary = measure(source, own, app.namespace, app.name, "canary", span, at)
    ga = measure(source, own, app.namespace, app.name, "ga", span, at)
    for version, measured in (("canary", canary), ("ga", ga)):
        measured.values.update(requests=counted[version].requests, errors=counted[version].errors)
    verdict, outcomes = judge(own, canary, ga) if own else (Verdict.PASS, ())
    verdicts = {result.verdict, verdict}
    final = next(v for v in (Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.PASS) if v in verdicts)
    decisive = {Verdict.FAIL: ("fail",), Verdict.INCONCLUSIVE: ("too-little", "no-data"), Verdict.PASS: ("pass",)}
    reasons = result.reasons if result.verdict is final else ()
    reasons += tuple(o.reason for o in outcomes if o.result in decisive[final])
    return Analysis(final, reasons, outcomes, canary, ga, span, at, STATISTICAL_JUDGE, result.findings, judged.look)


def _statistical_summary(result: Analysis) -> str:
    """`errors 1.02% vs GA 0.49% (2.08x) / latency slower in 51.2% of pairs over 420s, 3040 requests`."""
    by_name = {f.name: f for f in result.findings}
    parts = []
    errors, latency = by_name.get("errors"), by_name.get("latency")
    if errors and errors.numbers:
        n = dict(errors.numbers)
        canary = n["canary_errors"] / n["canary_requests"] if n["canary_requests"] else 0.0
        ga = n["ga_errors"] / n["ga_requests"] if n["ga_requests"] else 0.0
        parts.append(f"errors {100 * canary:.2f}% vs GA {100 * ga:.2f}% ({errors.result})")
    if latency and latency.numbers:
        parts.append(
            f"latency slower in {100 * dict(latency.numbers)['slower_pairs']:.1f}% of pairs ({latency.result})"
        )
    requests = result.canary.values.get("requests")
    text = " / ".join(parts) or "no comparison"
    return f"{text} over {result.window} (look {result.look}), {_count(requests)} requests"
