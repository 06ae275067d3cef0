"""The statistical judge: the canary compared with GA over everything the step has served, by tests that stay
calibrated at small counts and under a look every interval. Pure: counts in, a Judgement out.

Each look judges the counts since the step went live (istio_canary/release/looks.py); what every test does:
- errors: given the 5xx both versions had, each one is the canary's with the canary's share of requests when
  both err alike (a binomial, exact at any count). Wald's sequential probability ratio test of "equal" against
  "the canary errs analysisErrorRatio times as often": PASS at the lower boundary; FAIL at the upper one, reached
  by a weighted mixture of that ratio and larger ones (so new errors where GA has none fail fast). Its error
  rates hold however often it is looked at. A service with almost no errors gives that ratio nothing to
  count, so a canary whose exact upper bound is under analysisErrorTolerancePct passes as well.
- latency: a Mann-Whitney test on the two duration histograms (each request one observation at bucket
  resolution, ties half): FAIL when the canary is slower with significance (look k spends alpha 6/(pi^2 k^2),
  which sums to alpha over any number of looks) and by at least half the margin; PASS when the upper bound of
  "a canary request is slower" is under analysisSlowerPairsPct. The Hodges-Lehmann shift is the evidence.
- guardrails: the stack's thresholds still fail a canary on their own, once the counts show it past one (an exact
  binomial bound, not a point value) and GA is not shown past it too.
- traffic share: the data plane's share against the weight; a gap shown beyond analysisShareTolerancePct
  blocks the step (INCONCLUSIVE), never a rollback.
The false-rollback budget (analysisFalseRollbackPct) is split over the steps with GA traffic, then between the
two comparisons (errors 50 %, latency 30 %) and the two guardrails (10 % each).
"""

from __future__ import annotations

import math

from istio_canary.release import stats
from istio_canary.release.guardrails import guardrails, share
from istio_canary.release.model import StatisticalRules
from istio_canary.release.statistical_model import (
    BLOCKED,
    FAIL,
    NO_DATA,
    PASS,
    TOO_LITTLE,
    UNCOMPARED,
    UNSURE,
    Counts,
    Finding,
    Judgement,
    count_text,
    pct,
    step_alpha,
)
from istio_canary.release.verdict import Verdict

MIXTURE = (0.6, 0.1, 0.1, 0.1, 0.1)  # the error test's weights on analysisErrorRatio x 1, 2, 4, 8, 16
INTERVAL = 0.95  # the two-sided confidence of the intervals shown as evidence


def errors(canary: Counts, ga: Counts, rules: StatisticalRules) -> Finding:
    """The error comparison (sequential probability ratio test on the conditional binomial)."""
    beta = rules.missed_detection_pct / 100
    tolerance = rules.error_tolerance_pct / 100
    seen = (
        f"canary {pct(canary.errors / canary.requests)} ({count_text(canary.errors)} of {count_text(canary.requests)})"
    )
    if ga.requests <= 0:
        return Finding("errors", UNCOMPARED, f"{seen}; GA served nothing to compare with")
    seen += f" vs GA {pct(ga.errors / ga.requests)} ({count_text(ga.errors)} of {count_text(ga.requests)})"
    share = canary.requests / (canary.requests + ga.requests)
    alpha = step_alpha(rules, "errors")
    lower, upper = stats.sprt_bounds(alpha, beta)
    llr = stats.conditional_llr(canary.errors, ga.errors, share, rules.error_ratio)
    mixed = _mixture_llr(canary.errors, ga.errors, share, rules.error_ratio)
    total = canary.errors + ga.errors
    ratio = _rate_ratio(canary.errors, total, share)
    statistic = (
        f"log-likelihood ratio of {rules.error_ratio:g}x GA's rate (or more) against equal {mixed:.2f}, "
        f"fail at {upper:.2f}; of {rules.error_ratio:g}x alone {llr:.2f}, pass at {lower:.2f}"
    )
    upper_rate = stats.binomial_upper(canary.errors, canary.requests, 1 - beta)
    numbers = (
        ("canary_requests", canary.requests),
        ("canary_errors", canary.errors),
        ("ga_requests", ga.requests),
        ("ga_errors", ga.errors),
        ("llr", llr),
        ("llr_or_more", mixed),
        ("fail_at", upper),
        ("pass_at", lower),
    )
    if mixed >= upper:
        result, reason = FAIL, f"{seen}: the canary errs more than GA ({rules.error_ratio:g}x is likelier than equal)"
    elif llr <= lower:
        result, reason = PASS, f"{seen}: shown not {rules.error_ratio:g}x GA's rate"
    elif upper_rate <= tolerance:
        result = PASS
        reason = f"{seen}: shown under {pct(tolerance)} (at most {pct(upper_rate)})"
    else:
        result, reason = TOO_LITTLE, f"{seen}: not yet told apart from equal or from {rules.error_ratio:g}x"
    return Finding("errors", result, reason, ratio, statistic, numbers)


def _mixture_llr(canary_errors: float, other_errors: float, share: float, ratio: float) -> float:
    """The log of a weighted average of the likelihood ratios of ratio x 1, 2, 4, 8, 16 against equal. An average
    of test martingales is one, so Wald's boundary holds for it as for one ratio; most weight stays on `ratio`
    itself (the effect the test is sized for), and the rest lets a canary far worse than that (new errors where
    GA has none) fail on a handful of them instead of a dozen."""
    terms = [
        math.log(weight) + stats.conditional_llr(canary_errors, other_errors, share, ratio * 2**k)
        for k, weight in enumerate(MIXTURE)
    ]
    top = max(terms)
    return top + math.log(sum(math.exp(term - top) for term in terms))


def _rate_ratio(canary_errors: float, total: float, share: float) -> str:
    """The canary's error rate over GA's with its interval, from the canary's part of all errors."""
    if total <= 0:
        return "no errors in either version"
    tail = (1 - INTERVAL) / 2
    low_p = stats.binomial_lower(canary_errors, total, 1 - tail)
    high_p = stats.binomial_upper(canary_errors, total, 1 - tail)
    odds = (1 - share) / share

    def ratio(p: float) -> str:
        return "inf" if p >= 1 else f"{p / (1 - p) * odds:.2f}x"

    point = canary_errors / total
    return f"error rate {ratio(point)} GA's ({INTERVAL:.0%} interval {ratio(low_p)} to {ratio(high_p)})"


def latency(canary: Counts, ga: Counts, rules: StatisticalRules, look: int) -> Finding:
    """The latency comparison (Mann-Whitney on the histograms; Hodges-Lehmann as the shown shift)."""
    bounds, mine = canary.per_bucket()
    other_bounds, theirs = ga.per_bucket()
    if not bounds or sum(mine) <= 0:
        return Finding("latency", NO_DATA, "no duration histogram for the canary in the window")
    if sum(theirs) <= 0:
        return Finding("latency", UNCOMPARED, "GA served nothing to compare latency with")
    if other_bounds != bounds:
        return Finding("latency", NO_DATA, "the two versions' histograms have different buckets")
    test = stats.mann_whitney(mine, theirs)
    alpha = stats.spent_alpha(step_alpha(rules, "latency"), max(1, look))
    beta = rules.missed_detection_pct / 100
    margin = rules.slower_pairs_pct / 100
    p_value = stats.normal_sf(test.z)
    upper = test.auc + stats.normal_isf(beta) * test.se
    shift, low, high = _shift(bounds, mine, theirs)
    estimate = (
        f"canary slower in {test.auc:.1%} of request pairs; Hodges-Lehmann shift x{math.exp(shift):.2f} "
        f"({INTERVAL:.0%} interval x{math.exp(low):.2f} to x{math.exp(high):.2f}, at bucket resolution)"
    )
    statistic = (
        f"Mann-Whitney z {test.z:.2f}, one-sided p {p_value:.2g} against {alpha:.2g} at look {look}; "
        f"upper bound of slower pairs {upper:.1%} against {margin:.0%}"
    )
    numbers = (
        ("canary_requests", test.n_canary),
        ("ga_requests", test.n_other),
        ("slower_pairs", test.auc),
        ("z", test.z),
        ("p", p_value),
        ("alpha", alpha),
        ("shift_ratio", math.exp(shift)),
    )
    if p_value <= alpha and test.auc >= 0.5 + (margin - 0.5) / 2:
        result, reason = FAIL, f"latency: {estimate}: slower than GA"
    elif upper <= margin:
        result, reason = PASS, f"latency: shown slower in under {margin:.0%} of pairs ({test.auc:.1%})"
    else:
        result, reason = TOO_LITTLE, f"latency: {test.auc:.1%} of pairs slower, not yet told apart"
    return Finding("latency", result, reason, estimate, statistic, numbers)


def _shift(bounds: tuple[float, ...], mine: tuple[float, ...], theirs: tuple[float, ...]) -> tuple[float, ...]:
    """The Hodges-Lehmann shift on log bounds (a ratio), with its interval. The +Inf bucket joins the last
    finite one (a tie at the top: nothing says how much slower). No shift is shown for bounds at or below 0,
    which have no log (Istio's start at 0.5 ms)."""
    if len(bounds) > 1 and math.isinf(bounds[-1]):
        bounds = bounds[:-1]
        mine = (*mine[:-2], mine[-2] + mine[-1])
        theirs = (*theirs[:-2], theirs[-2] + theirs[-1])
    if not bounds or bounds[0] <= 0 or sum(theirs) <= 0 or sum(mine) <= 0:
        return 0.0, 0.0, 0.0
    values = [math.log(bound) for bound in bounds]
    return stats.hodges_lehmann(mine, theirs, values, INTERVAL)


def judge(canary: Counts, ga: Counts, rules: StatisticalRules, look: int, weight: int | None = None) -> Judgement:
    """The verdict of one look: FAIL when a test fails (whatever the rest say: a bad canary is bad at any
    count); INCONCLUSIVE while the canary served fewer than analysisMinRequests, a comparison has not decided,
    or the traffic share blocks the step; else PASS. `weight`: the step's weight (None for a shape step)."""
    found: list[Finding] = []
    if canary.requests < rules.min_requests:
        found.append(
            Finding(
                "requests",
                TOO_LITTLE,
                f"canary served {count_text(canary.requests)} requests since the step went live, "
                f"fewer than {rules.min_requests}",
            )
        )
    if canary.requests > 0:
        found.append(errors(canary, ga, rules))
        found.append(latency(canary, ga, rules, look))
        found.extend(guardrails(canary, ga, rules, look))
        plane = share(canary, ga, rules, weight)
        if plane:
            found.append(plane)
    uncompared = all(f.result == UNCOMPARED for f in found if f.name in ("errors", "latency"))
    failed = [f for f in found if f.result == FAIL]
    # UNSURE guardrails hold a step back only with no GA to compare with (the canary at 100 %).
    holding = [f for f in found if f.result in (TOO_LITTLE, NO_DATA, BLOCKED) or (f.result == UNSURE and uncompared)]
    if failed:
        return Judgement(Verdict.FAIL, tuple(found), tuple(f.reason for f in failed))
    if holding or not found:
        return Judgement(Verdict.INCONCLUSIVE, tuple(found), tuple(f.reason for f in holding))
    return Judgement(Verdict.PASS, tuple(found), tuple(f.reason for f in found if f.result == PASS))
