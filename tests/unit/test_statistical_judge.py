"""The statistical judge (istio_canary/release/statistical.py) on counts whose answer is known: what each test
decides, that too little evidence is never a pass, and that its findings carry the numbers a reviewer reads."""

from __future__ import annotations

import math
import random

import pytest

from istio_canary.release import statistical, statistical_model
from istio_canary.release.looks import MAX_STATISTICAL_WINDOW_S, judged_window
from istio_canary.release.model import StatisticalRules
from istio_canary.release.settings import ConfigError, parse
from istio_canary.release.statistical import Counts
from istio_canary.release.verdict import Verdict

BOUNDS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, math.inf)
RULES = StatisticalRules()


def histogram(requests: int, median_ms: float, seed: int, sigma: float = 0.6) -> tuple[tuple[float, float], ...]:
    """`requests` lognormal durations binned as Istio's histogram (cumulative)."""
    rnd = random.Random(seed)
    per = [0] * len(BOUNDS)
    for _ in range(requests):
        value = math.exp(math.log(median_ms) + rnd.gauss(0, sigma))
        per[next(i for i, bound in enumerate(BOUNDS) if value <= bound)] += 1
    total, out = 0, []
    for bound, count in zip(BOUNDS, per, strict=True):
        total += count
        out.append((float(bound), float(total)))
    return tuple(out)


def version(requests: int, errors: float, median_ms: float = 60, seed: int = 1) -> Counts:
    return Counts(float(requests), float(errors), histogram(requests, median_ms, seed))


def findings(judgement: statistical.Judgement) -> dict[str, statistical.Finding]:
    return {finding.name: finding for finding in judgement.findings}


def test_an_identical_canary_with_enough_traffic_passes_with_its_numbers() -> None:
    judged = statistical.judge(version(3000, 15, seed=1), version(27000, 135, seed=2), RULES, look=5, weight=10)
    assert judged.verdict is Verdict.PASS
    errors = findings(judged)["errors"]
    assert "15 of 3,000" in errors.reason and "135 of 27,000" in errors.reason
    assert "interval" in errors.estimate and "pass at" in errors.statistic
    assert dict(errors.numbers)["llr"] <= dict(errors.numbers)["pass_at"]


def test_twice_the_errors_fails_once_the_counts_show_it_and_not_before() -> None:
    early = statistical.judge(version(600, 6, seed=1), version(5400, 27, seed=2), RULES, look=1, weight=10)
    assert early.verdict is Verdict.INCONCLUSIVE  # 6 vs 2.7 expected: not told apart yet
    late = statistical.judge(version(9000, 90, seed=1), version(81000, 405, seed=2), RULES, look=15, weight=10)
    assert late.verdict is Verdict.FAIL
    assert findings(late)["errors"].result == "fail"
    assert "2.00x GA's" in findings(late)["errors"].estimate


def test_new_errors_where_ga_has_none_fail_on_a_handful() -> None:
    """Kayenta once passed this (spinnaker#5622): the mixture's larger ratios see it."""
    judged = statistical.judge(version(700, 8, seed=1), version(6300, 0, seed=2), RULES, look=3, weight=10)
    assert judged.verdict is Verdict.FAIL
    assert findings(judged)["errors"].result == "fail"


def test_below_min_requests_is_never_a_pass_but_a_failure_still_counts() -> None:
    quiet = statistical.judge(version(99, 0, seed=1), version(891, 0, seed=2), RULES, look=9, weight=10)
    assert quiet.verdict is Verdict.INCONCLUSIVE
    assert findings(quiet)["requests"].result == "too-little"
    broken = statistical.judge(version(80, 40, seed=1), version(720, 3, seed=2), RULES, look=1, weight=10)
    assert broken.verdict is Verdict.FAIL


def test_a_service_without_errors_passes_on_the_tolerance_once_the_canary_has_shown_it() -> None:
    few = statistical.judge(version(300, 0, seed=1), version(2700, 0, seed=2), RULES, look=1, weight=10)
    assert few.verdict is Verdict.INCONCLUSIVE  # at most 1% shown: not under 0.5% yet
    enough = statistical.judge(version(700, 0, seed=1), version(6300, 0, seed=2), RULES, look=2, weight=10)
    assert enough.verdict is Verdict.PASS
    assert "shown under 0.50%" in findings(enough)["errors"].reason


def test_a_slower_canary_fails_the_rank_test_and_shows_its_shift() -> None:
    judged = statistical.judge(
        version(3000, 15, median_ms=120, seed=1), version(27000, 135, seed=2), RULES, look=5, weight=10
    )
    assert judged.verdict is Verdict.FAIL
    latency = findings(judged)["latency"]
    assert latency.result == "fail"
    assert "Hodges-Lehmann shift" in latency.estimate and "Mann-Whitney z" in latency.statistic
    assert dict(latency.numbers)["slower_pairs"] > 0.6


def test_a_tiny_slowdown_at_high_traffic_is_not_a_rollback() -> None:
    """5% slower at 100 rps: significant, but slower in 52% of pairs is under half the margin: a pass."""
    judged = statistical.judge(
        version(60000, 300, median_ms=63, seed=1), version(540000, 2700, seed=2), RULES, look=10, weight=10
    )
    latency = dict(findings(judged)["latency"].numbers)
    assert latency["z"] > 5 and 0.51 < latency["slower_pairs"] < 0.53
    assert findings(judged)["latency"].result == "pass"


def test_a_routing_gap_blocks_the_step_but_a_failure_still_fails() -> None:
    off = statistical.judge(version(6000, 30, seed=1), version(24000, 120, seed=2), RULES, look=5, weight=10)
    assert off.verdict is Verdict.INCONCLUSIVE
    assert findings(off)["traffic_share"].result == "blocked"
    assert "20.0% of requests for a weight of 10%" in findings(off)["traffic_share"].reason
    bad = statistical.judge(version(6000, 300, seed=1), version(24000, 120, seed=2), RULES, look=5, weight=10)
    assert bad.verdict is Verdict.FAIL


def test_a_guardrail_fails_on_its_own_unless_ga_is_not_shown_within_it() -> None:
    rules = StatisticalRules(min_success_rate=99.9)
    alone = statistical.judge(version(20000, 100, seed=1), version(20000, 4, seed=2), rules, look=5, weight=50)
    assert findings(alone)["success_rate"].result == "fail"
    both = statistical.judge(version(20000, 100, seed=1), version(20000, 100, seed=2), rules, look=5, weight=50)
    assert findings(both)["success_rate"].result == "uncompared"
    assert both.verdict is Verdict.PASS  # the comparison decides: the canary is as good as GA
    # GA at the threshold exactly (0.1%): not shown within it, so a canary worse than it is still failed by the
    # comparison, not by the guardrail
    edge = statistical.judge(version(20000, 100, seed=1), version(20000, 20, seed=2), rules, look=5, weight=50)
    assert findings(edge)["success_rate"].result == "uncompared"
    assert findings(edge)["errors"].result == "fail" and edge.verdict is Verdict.FAIL


def test_at_100_percent_the_guardrails_must_be_shown_within() -> None:
    nothing = Counts(0.0, 0.0, tuple((b, 0.0) for b in BOUNDS))
    unsure = statistical.judge(version(200, 1, seed=1), nothing, RULES, look=3, weight=100)
    assert unsure.verdict is Verdict.INCONCLUSIVE  # 1 of 200: not shown under 1% yet
    assert findings(unsure)["errors"].result == "uncompared"
    shown = statistical.judge(version(5000, 5, seed=1), nothing, RULES, look=3, weight=100)
    assert shown.verdict is Verdict.PASS


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="impossible counts"):
        Counts(10.0, 11.0)
    with pytest.raises(ValueError, match="impossible counts"):
        Counts(math.nan, 0.0)


def test_the_threshold_judge_looks_at_one_window_and_the_statistical_at_the_step() -> None:
    threshold = parse({"canaryVersion": "6.1.0", "gaVersion": "6.0.0"}, check_environment=False).release
    assert judged_window(threshold, 10) == judged_window(threshold, 9000)
    stat = parse(
        {"canaryVersion": "6.1.0", "gaVersion": "6.0.0", "analysisJudge": "statistical"}, check_environment=False
    ).release
    assert judged_window(stat, 59) is None
    window = judged_window(stat, 421)
    assert window is not None and (window.seconds, window.look, window.duration) == (421, 7, "421s")
    capped = judged_window(stat, 10 * MAX_STATISTICAL_WINDOW_S)
    assert capped is not None and capped.seconds == MAX_STATISTICAL_WINDOW_S


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("analysisJudge", "bayesian"),
        ("analysisFalseRollbackPct", "0"),
        ("analysisFalseRollbackPct", "25"),
        ("analysisMissedDetectionPct", "50"),
        ("analysisErrorRatio", "1"),
        ("analysisErrorRatio", "two"),
        ("analysisErrorTolerancePct", "-1"),
        ("analysisSlowerPairsPct", "50"),
        ("analysisShareTolerancePct", "0"),
    ],
)
def test_bad_judge_settings_are_refused_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"istio-canary:{key}: .*is not allowed"):
        parse({"canaryVersion": "6.1.0", "gaVersion": "6.0.0", key: value}, check_environment=False)


def test_the_rules_come_from_the_stack() -> None:
    release = parse(
        {
            "canaryVersion": "6.1.0",
            "gaVersion": "6.0.0",
            "analysisJudge": "statistical",
            "analysisFalseRollbackPct": "0.5",
            "analysisErrorRatio": "1.5",
            "analysisMinSuccessRate": "99.5",
            "canarySteps": [5, 25, 50, 100],
        },
        check_environment=False,
    ).release
    rules = release.statistical
    assert release.judge == "statistical"
    assert (rules.false_rollback_pct, rules.error_ratio, rules.min_success_rate) == (0.5, 1.5, 99.5)
    assert rules.analysed_steps == 4  # every step, 100 too (against GA before it)
    assert rules.planned_looks == 20  # 4 x analysisIterations (5)
    assert rules.first_weight == 5


@pytest.mark.parametrize(
    ("steps", "shapes", "first_share"), [([10, 60, 100], [], 2 / 4), ([5, 25, 50, 100], ["mirror", "header"], 2 / 7)]
)
def test_the_first_weight_step_gets_twice_a_steps_budget_and_the_steps_add_up_to_the_release(
    steps: list[int], shapes: list[str], first_share: float
) -> None:
    raw = {"canaryVersion": "6.1.0", "gaVersion": "6.0.0", "analysisJudge": "statistical", "canarySteps": steps}
    if shapes:
        raw.update(canaryPreSteps=shapes, canaryMatch="header:x-canary=always")
    rules = parse(raw, check_environment=False).release.statistical
    for test, share in statistical_model.SHARES.items():
        assert statistical_model.step_alpha(rules, test, steps[0]) == pytest.approx(0.01 * first_share * share)
        spent = sum(statistical_model.step_alpha(rules, test, w) for w in steps)
        spent += sum(statistical_model.step_alpha(rules, test, None) for _ in shapes)
        assert spent == pytest.approx(0.01 * share)  # the whole release's budget for this test, no more


def test_the_first_step_tests_at_its_larger_budget() -> None:
    """The same counts at the first weight step and at a later one: only the first's level is the larger one."""
    rules = StatisticalRules(first_weight=10)
    canary, ga = Counts(6000, 40), Counts(54000, 270)
    first = dict(statistical.errors(canary, ga, rules, 5, weight=10).numbers)["alpha"]
    later = dict(statistical.errors(canary, ga, rules, 5, weight=60).numbers)["alpha"]
    assert first == pytest.approx(2 * later, rel=0.05)


def test_a_histogram_whose_bounds_do_not_increase_is_refused() -> None:
    with pytest.raises(ValueError, match="must increase"):
        Counts(10.0, 0.0, ((100.0, 5.0), (100.0, 10.0)))
    with pytest.raises(ValueError, match="must increase"):
        Counts(10.0, 0.0, ((math.nan, 5.0), (math.inf, 10.0)))
