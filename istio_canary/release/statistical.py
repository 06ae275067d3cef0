"""The statistical judge: the canary compared with GA over everything the step has served, by tests that stay
calibrated at small counts and under a look every interval. Pure: counts in, a Judgement out.

Each look judges the counts since the step went live (istio_canary/release/looks.py). Every FAIL test spends
its share of the step's false-rollback budget over the looks: evenly over the planned ones (4 x
analysisIterations: a step decides within them), at levels that credit how alike the looks are
(istio_canary/release/sequential.py), and a reserve after, so looking every interval never adds up to more than
the budget. A test fails only once it is significant AND
the effect is at least halfway to the one that matters, so a trivial difference at high traffic is no rollback.
- errors: given the 5xx both versions had, each one is the canary's with the canary's share of requests when
  both err alike (a binomial, exact at any count). FAIL: the exact one-sided test. PASS: Wald's sequential
  probability ratio test of "equal" against "analysisErrorRatio times as often" reaches its lower boundary
  (its missed-detection rate holds however often it is looked at), or, for a service with almost no errors
  (nothing for a ratio to count), the canary's exact upper bound is under analysisErrorTolerancePct.
- latency: a Mann-Whitney test on the two duration histograms (each request one observation at bucket
  resolution, ties half): FAIL when the canary is slower with significance; PASS when the upper bound of "a
  canary request is slower" is under analysisSlowerPairsPct. The Hodges-Lehmann shift is the evidence.
- guardrails: the stack's thresholds still fail a canary on their own, once the counts show it past one (an exact
  binomial bound, not a point value) while they show GA within it (else a canary as good as GA is the
  comparison's to judge).
- traffic share: the data plane's share against the weight; a gap shown beyond analysisShareTolerancePct
  blocks the step (INCONCLUSIVE), never a rollback.
The budget (analysisFalseRollbackPct) is split over the steps (the first weight step counting twice), then
between the two comparisons (errors 60 %, latency 20 %) and the two guardrails (10 % each). With the canary at 100 % GA serves nothing: the
comparisons take GA's traffic over an equally long stretch just before the step.
"""

from __future__ import annotations

import dataclasses
import math
import re

from istio_canary.release import sequential, stats
from istio_canary.release.guardrails import guardrails, share
from istio_canary.release.model import StatisticalRules
from istio_canary.release.statistical_model import (
    BLOCKED,
    FAIL,
    NO_DATA,
    NOTE,
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

INTERVAL = 0.95  # the two-sided confidence of the intervals shown as evidence


def errors(canary: Counts, ga: Counts, rules: StatisticalRules, look: int, weight: int | None = None) -> Finding:
    """The error comparison on the conditional binomial: the exact test to fail, Wald's lower boundary (or the
    tolerance) to pass."""
    beta = rules.missed_detection_pct / 100
    tolerance = rules.error_tolerance_pct / 100
    seen = (
        f"canary {pct(canary.errors / canary.requests)} ({count_text(canary.errors)} of {count_text(canary.requests)})"
    )
    if ga.requests <= 0:
        return Finding("errors", UNCOMPARED, f"{seen}; GA served nothing to compare with")
    seen += f" vs GA {pct(ga.errors / ga.requests)} ({count_text(ga.errors)} of {count_text(ga.requests)})"
    share = canary.requests / (canary.requests + ga.requests)
    total = canary.errors + ga.errors
    alpha = sequential.look_level(step_alpha(rules, "errors", weight), max(1, look), rules.planned_looks)
    # The chance of the canary having at least its part of all errors if both versions erred alike.
    p_value = stats.binom_sf(canary.errors, total, share) if total > 0 else 1.0
    lower, _ = stats.sprt_bounds(step_alpha(rules, "errors", weight), beta)
    llr = stats.conditional_llr(canary.errors, ga.errors, share, rules.error_ratio)
    point = _ratio(canary.errors / total, share) if total > 0 else 1.0
    halfway = (1 + rules.error_ratio) / 2
    statistic = (
        f"exact one-sided p {p_value:.2g} against {alpha:.2g} (look {look} of {rules.planned_looks} planned); "
        f"log-likelihood ratio of {rules.error_ratio:g}x GA's rate against equal {llr:.2f}, pass at {lower:.2f}"
    )
    upper_rate = stats.binomial_upper(canary.errors, canary.requests, 1 - beta)
    numbers = (
        ("canary_requests", canary.requests),
        ("canary_errors", canary.errors),
        ("ga_requests", ga.requests),
        ("ga_errors", ga.errors),
        ("ratio", min(point, 1e6)),
        ("p", p_value),
        ("alpha", alpha),
        ("llr", llr),
        ("pass_at", lower),
    )
    if p_value <= alpha and point >= halfway:
        result, reason = FAIL, f"{seen}: the canary errs more than GA, {_shown(point)} its rate"
    elif llr <= lower:
        result, reason = PASS, f"{seen}: shown not {rules.error_ratio:g}x GA's rate"
    elif upper_rate <= tolerance:
        result = PASS
        reason = f"{seen}: shown under {pct(tolerance)} (at most {pct(upper_rate)})"
    else:
        result, reason = TOO_LITTLE, f"{seen}: not yet told apart from equal or from {rules.error_ratio:g}x"
    return Finding("errors", result, reason, _rate_ratio(canary.errors, total, share), statistic, numbers)


def _ratio(canary_part: float, share: float) -> float:
    """The canary's error rate over GA's, from the canary's part of all errors and its share of requests."""
    return math.inf if canary_part >= 1 else canary_part / (1 - canary_part) * (1 - share) / share


def _shown(ratio: float) -> str:
    return "inf" if math.isinf(ratio) else f"{ratio:.2f}x"


def _rate_ratio(canary_errors: float, total: float, share: float) -> str:
    """The canary's error rate over GA's with its interval, from the canary's part of all errors."""
    if total <= 0:
        return "no errors in either version"
    tail = (1 - INTERVAL) / 2
    low = _ratio(stats.binomial_lower(canary_errors, total, 1 - tail), share)
    high = _ratio(stats.binomial_upper(canary_errors, total, 1 - tail), share)
    point = _ratio(canary_errors / total, share)
    return f"error rate {_shown(point)} GA's ({INTERVAL:.0%} interval {_shown(low)} to {_shown(high)})"


def latency(canary: Counts, ga: Counts, rules: StatisticalRules, look: int, weight: int | None = None) -> Finding:
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
    alpha = sequential.look_level(step_alpha(rules, "latency", weight), max(1, look), rules.planned_looks)
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


def judge(
    canary: Counts,
    ga: Counts,
    rules: StatisticalRules,
    look: int,
    weight: int | None = None,
    ga_before: Counts | None = None,
    *,
    comparator_name: str = "GA",
    others: Counts | None = None,
) -> Judgement:
    """The verdict of one look: FAIL when a test fails (whatever the rest say: a bad canary is bad at any
    count); INCONCLUSIVE while the canary served fewer than analysisMinRequests, a comparison has not decided,
    or the traffic share blocks the step; else PASS. `weight`: the step's weight (None for a shape step).
    `ga_before`: GA's counts over an equally long stretch before the step, the comparison when GA serves nothing
    during it (the canary at 100 %). With analysisBaseline, `ga` and `ga_before` are the baseline's counts,
    `comparator_name` names it in the findings' words, and `others` is all the route sent elsewhere (GA and the
    baseline) for the traffic share."""
    found: list[Finding] = []
    comparator = ga
    if ga.requests <= 0 and ga_before is not None and ga_before.requests > 0:
        comparator = ga_before
        found.append(
            Finding(
                "comparator",
                NOTE,
                f"{comparator_name} served nothing during the step: compared with {comparator_name}'s "
                f"{count_text(ga_before.requests)} requests "
                "over as long just before it",
            )
        )
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
        compared = [errors(canary, comparator, rules, look, weight), latency(canary, comparator, rules, look, weight)]
        compared.extend(guardrails(canary, comparator, rules, look, weight))
        found.extend(_named(finding, comparator_name) for finding in compared)
        plane = share(canary, ga if others is None else others, rules, weight)
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


# --- analysisBaseline: the tests' words name GA, their comparator; with a baseline they name it instead.
_GA_WORD = re.compile(r"\bGA\b")


def _named(finding: Finding, comparator_name: str) -> Finding:
    """`finding` with `comparator_name` wherever its words name GA (unchanged for GA itself)."""
    if comparator_name == "GA":
        return finding
    return dataclasses.replace(
        finding,
        reason=_GA_WORD.sub(comparator_name, finding.reason),
        estimate=_GA_WORD.sub(comparator_name, finding.estimate),
        statistic=_GA_WORD.sub(comparator_name, finding.statistic),
    )
