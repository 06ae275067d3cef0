"""The statistical judge's limits: the stack's thresholds as guardrails judged on counts, and the data plane's
traffic share against the weight. Pure."""

from __future__ import annotations

from istio_canary.release import sequential, stats
from istio_canary.release.model import StatisticalRules
from istio_canary.release.statistical_model import (
    BLOCKED,
    FAIL,
    NO_DATA,
    PASS,
    UNCOMPARED,
    UNSURE,
    Counts,
    Finding,
    count_text,
    pct,
    step_alpha,
)


def guardrails(
    canary: Counts, ga: Counts, rules: StatisticalRules, look: int, weight: int | None = None
) -> tuple[Finding, ...]:
    """The stack's thresholds: FAIL once the counts show the canary past one (an exact bound, not a point value)
    while they show GA within it; PASS once they show the canary within; UNSURE between, which holds a step back
    only when there is no GA to compare with."""
    beta = rules.missed_detection_pct / 100
    found = []
    for name, allowed in (("success_rate", 1 - rules.min_success_rate / 100), ("p99_ms", 0.01)):
        # p99 over the limit is "more than 1 % of requests slower than it"
        (k, k_maybe, n), (_, k_ga, n_ga) = _past(canary, name, rules), _past(ga, name, rules)
        if n <= 0:
            found.append(Finding(name, NO_DATA, f"{name}: no canary requests"))
            continue
        confidence = 1 - sequential.look_level(step_alpha(rules, name, weight), max(1, look), rules.planned_looks)
        shown_past = stats.binomial_lower(k, n, confidence)
        shown_within = stats.binomial_upper(k_maybe, n, 1 - beta)
        what = "errored" if name == "success_rate" else f"took over {rules.max_p99_ms:g}ms"
        seen = f"{count_text(k)} of {count_text(n)} canary requests {what} (limit {pct(allowed)})"
        numbers = (("count", k), ("requests", n), ("lower_bound", shown_past), ("upper_bound", shown_within))
        statistic = f"exact bounds {pct(shown_past)} to {pct(shown_within)} against {pct(allowed)}"
        if shown_past > allowed:
            if n_ga > 0 and stats.binomial_upper(k_ga, n_ga, 1 - beta) > allowed:
                # GA itself is not shown within it: a canary as good as GA is the comparison's to judge.
                result, reason = UNCOMPARED, f"{name}: {seen}, and GA is not shown within it: the comparison decides"
            else:
                result, reason = FAIL, f"{name}: shown past its threshold: {seen}"
        elif shown_within <= allowed:
            result, reason = PASS, f"{name}: shown within its threshold: {seen}"
        else:
            result, reason = UNSURE, f"{name}: not yet shown within its threshold: {seen}"
        found.append(Finding(name, result, reason, "", statistic, numbers))
    return tuple(found)


def _past(counts: Counts, name: str, rules: StatisticalRules) -> tuple[float, float, float]:
    """Requests certainly past a guardrail, possibly past it, and all of them. Errors are exact; for p99 a request
    is certainly slower than the limit in a bucket that starts at or above it, possibly in one that ends above."""
    if name == "success_rate":
        return counts.errors, counts.errors, counts.requests
    bounds, per = counts.per_bucket()
    starts = (0.0, *bounds[:-1])
    certain = sum(count for start, count in zip(starts, per, strict=True) if start >= rules.max_p99_ms)
    maybe = sum(count for end, count in zip(bounds, per, strict=True) if end > rules.max_p99_ms)
    return certain, maybe, sum(per)


def share(canary: Counts, ga: Counts, rules: StatisticalRules, weight: int | None) -> Finding | None:
    """The data plane's share of requests against the weight, for a weight step with GA traffic; None otherwise."""
    total = canary.requests + ga.requests
    if weight is None or not 0 < weight < 100 or total <= 0:
        return None
    observed = canary.requests / total
    tolerance = rules.share_tolerance_pct / 100
    confidence = 1 - 0.001  # a routing gap is reported, not a rollback: sure before blocking a step on it
    low = stats.binomial_lower(canary.requests, total, confidence)
    high = stats.binomial_upper(canary.requests, total, confidence)
    seen = f"the canary served {pct(observed)} of requests for a weight of {weight}%"
    numbers = (("observed_share", observed), ("weight", weight / 100))
    estimate = f"{pct(observed)} ({pct(low)} to {pct(high)})"
    if low > weight / 100 + tolerance or high < weight / 100 - tolerance:
        return Finding("traffic_share", BLOCKED, f"{seen}: beyond {pct(tolerance)} of it", estimate, "", numbers)
    return Finding("traffic_share", PASS, seen, estimate, "", numbers)
