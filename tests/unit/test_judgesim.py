"""The judges' simulation harness (testkit/judgesim.py): its samplers draw the distributions they name, its traffic
keeps Prometheus-like counters, its histogram_quantile is Prometheus', its walker drives the agent's decision as
the agent does, and with today's threshold judge it reproduces the problems issue 21 describes."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import pytest

from istio_canary.agent import history
from istio_canary.metrics import MetricsUnavailable
from istio_canary.release import statistical
from istio_canary.release.names import workload
from istio_canary.release.settings import parse
from istio_canary.release.verdict import Verdict
from istio_canary.stackfile import StackView
from testkit import judgesim as js

PASS, FAIL, INCONCLUSIVE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE
RELEASE = js.release_settings()
Z_1E4 = 3.719  # the standard normal's 1 - 1e-4 quantile


# --- samplers -----------------------------------------------------------------------------------------------


def chi_square_limit(df: int) -> float:
    """The chi-square distribution's 1 - 1e-4 quantile (Wilson-Hilferty): a right sampler exceeds it once in
    10,000 seeds; a biased one (a shifted mean, a wrong spread) by far."""
    return df * (1 - 2 / (9 * df) + Z_1E4 * math.sqrt(2 / (9 * df))) ** 3


def chi_square(draws: list[int], pmf: Callable[[int], float]) -> tuple[float, int]:
    """Pearson's statistic of `draws` against `pmf`, over the values expected >= 5 times and one bin each for
    the two tails; and its degrees of freedom."""
    n, seen = len(draws), Counter(draws)
    mode = max(range(max(draws) + 1), key=pmf)
    inner = [k for k in range(max(draws) + 2) if n * pmf(k) >= 5]
    lo, hi = min(*inner, mode), max(*inner, mode)
    below = sum(pmf(k) for k in range(lo))
    above = max(0.0, 1 - below - sum(pmf(k) for k in range(lo, hi + 1)))
    bins = [(seen[k], n * pmf(k)) for k in range(lo, hi + 1)]
    tails = [
        (sum(c for k, c in seen.items() if k < lo), n * below),
        (sum(c for k, c in seen.items() if k > hi), n * above),
    ]
    bins += [tail for tail in tails if tail[1] >= 5]
    stat = sum((observed - expected) ** 2 / expected for observed, expected in bins)
    return stat, len(bins) - 1


def poisson_pmf(mean: float) -> Callable[[int], float]:
    return lambda k: math.exp(k * math.log(mean) - mean - math.lgamma(k + 1))


def binomial_pmf(n: int, p: float) -> Callable[[int], float]:
    def pmf(k: int) -> float:
        if not 0 <= k <= n:
            return 0.0
        log = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        return math.exp(log + k * math.log(p) + (n - k) * math.log1p(-p))

    return pmf


@pytest.mark.parametrize("mean", [0.3, 4.0, 9.99, 10.0, 37.5, 600.0])  # inversion below 10, PTRS from 10
def test_poisson_draws_fit_the_poisson_distribution(mean):
    rng = random.Random(21)
    draws = [js.poisson(rng, mean) for _ in range(20000)]
    stat, df = chi_square(draws, poisson_pmf(mean))
    assert stat < chi_square_limit(df), (stat, df)
    assert abs(sum(draws) / len(draws) - mean) < 4 * math.sqrt(mean / len(draws))


@pytest.mark.parametrize(
    ("n", "p"),
    [(60, 0.005), (600, 0.012), (40, 0.2), (1000, 0.012), (6000, 0.3), (300, 0.9)],  # inversion, BTRS, p > 0.5
)
def test_binomial_draws_fit_the_binomial_distribution(n, p):
    rng = random.Random(21)
    draws = [js.binomial(rng, n, p) for _ in range(20000)]
    stat, df = chi_square(draws, binomial_pmf(n, p))
    assert stat < chi_square_limit(df), (stat, df)
    assert all(0 <= k <= n for k in draws)


def test_samplers_refuse_impossible_parameters():
    rng = random.Random(1)
    assert js.poisson(rng, 0) == 0 and js.binomial(rng, 0, 0.5) == 0 and js.binomial(rng, 7, 1.0) == 7
    for bad in (lambda: js.poisson(rng, -1), lambda: js.poisson(rng, math.inf), lambda: js.binomial(rng, 5, 1.5)):
        with pytest.raises(ValueError):
            bad()


def test_lognormal_buckets_are_the_lognormal_cdf_between_istio_bounds():
    shares = js.lognormal_buckets(60, 0.6)
    assert len(shares) == len(js.BUCKETS_MS) and abs(sum(shares) - 1) < 1e-8
    cdf = lambda ms: 0.5 * math.erfc(-math.log(ms / 60) / (0.6 * math.sqrt(2)))
    assert shares[js.BUCKETS_MS.index(100)] == pytest.approx(cdf(100) - cdf(50), rel=1e-12)
    assert shares[js.BUCKETS_MS.index(50)] == pytest.approx(cdf(50) - cdf(25), rel=1e-12)
    assert shares[0] == shares[-1] == 0.0  # under 0.5 ms, over an hour: below NEGLIGIBLE


# --- Prometheus' histogram_quantile -------------------------------------------------------------------------

HISTOGRAM = ((0.1, 50), (0.2, 70), (1.0, 110), (math.inf, 120))


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.0, 0.0),  # from the natural lower bound 0
        (0.25, 0.06),  # rank 30 of 50 in (0, 0.1]
        (0.5, 0.15),  # rank 60: 10 of the 20 in (0.1, 0.2]
        (0.9, 0.96),  # rank 108: 38 of the 40 in (0.2, 1]
        (0.99, 1.0),  # rank 118.8 is in the +Inf bucket: the second-highest bound
        (1.0, 1.0),
        (-0.1, -math.inf),
        (1.1, math.inf),
    ],
)
def test_histogram_quantile_interpolates_as_prometheus(q, expected):
    assert js.histogram_quantile(q, HISTOGRAM) == pytest.approx(expected)
    assert js.histogram_quantile(q, tuple(reversed(HISTOGRAM))) == pytest.approx(expected)  # order does not matter


def test_histogram_quantile_special_cases():
    assert math.isnan(js.histogram_quantile(0.99, ((1, 0), (math.inf, 0))))  # no observations
    assert math.isnan(js.histogram_quantile(0.99, ((1, 5), (2, 10))))  # no +Inf bucket
    assert math.isnan(js.histogram_quantile(0.99, ((math.inf, 10),)))  # fewer than two buckets
    assert math.isnan(js.histogram_quantile(math.nan, HISTOGRAM))
    assert js.histogram_quantile(0.2, ((-0.2, 10), (-0.1, 20), (0.3, 20), (math.inf, 30))) == -0.2  # bound <= 0
    # Counts falling with `le` are raised to the largest below them: (1: 10), (2: 10), (+Inf: 10).
    assert js.histogram_quantile(0.5, ((1, 10), (2, 5), (math.inf, 10))) == pytest.approx(0.5)


def test_histogram_quantile_of_istio_buckets_interpolates_the_lognormal_p99():
    counts = (round(1e9 * c) for c in _cumulative(js.lognormal_buckets(60, 0.6)))
    buckets = tuple(zip(js.BUCKETS_MS, counts, strict=True))
    cdf = lambda ms: 0.5 * math.erfc(-math.log(ms / 60) / (0.6 * math.sqrt(2)))
    # The lognormal's p99 (242 ms) lies in (100, 250]; Prometheus reads it linearly between those bounds.
    expected = 100 + 150 * (0.99 - cdf(100)) / (cdf(250) - cdf(100))
    assert js.histogram_quantile(0.99, buckets) == pytest.approx(expected, rel=1e-6)


def _cumulative(shares: tuple[float, ...]) -> list[float]:
    total, out = 0.0, []
    for share in shares:
        total += share
        out.append(total)
    return out


# --- the traffic ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rps", [1, 10])  # 60 or 600 canary requests a tick: different buckets drawn as rare
def test_traffic_counts_follow_the_scenario_distributions(rps):
    scenario = js.Scenario("worse canary", canary_rps=rps, canary_error_rate=0.02, canary_latency_factor=2.0)
    ticks = 400
    traffic = js.Traffic(scenario, first_weight=10, tick_s=60, rng=random.Random(5))
    for _ in range(ticks):
        traffic.advance(10)
    per_tick = [traffic.window(js.CANARY, 60 * i, 60 * (i + 1)).requests for i in range(ticks)]
    mean = sum(per_tick) / ticks
    variance = sum((x - mean) ** 2 for x in per_tick) / (ticks - 1)
    assert abs(mean - 60 * rps) < 4 * math.sqrt(60 * rps / ticks)  # rps x 60 s
    assert 0.7 < variance / mean < 1.3  # Poisson: the variance is the mean
    for version, rate, median, requests in ((js.CANARY, 0.02, 120, 60 * rps), (js.GA, 0.005, 60, 540 * rps)):
        counts = traffic.window(version, 0, 60 * ticks)
        n = ticks * requests
        assert abs(counts.requests - n) < 4 * math.sqrt(n)
        assert abs(counts.errors - rate * counts.requests) < 4 * math.sqrt(rate * counts.requests) + 1
        shares = js.lognormal_buckets(median, 0.6)
        in_bucket = [b - a for (_, a), (_, b) in zip(((0, 0), *counts.buckets[:-1]), counts.buckets, strict=True)]
        for observed, share in zip(in_bucket, shares, strict=True):
            expected = share * counts.requests
            assert abs(observed - expected) < 4 * math.sqrt(expected) + 1, (version, observed, expected)


def test_traffic_counters_are_monotone_and_windows_are_their_differences():
    traffic = js.Traffic(js.Scenario("A/A", canary_rps=1), first_weight=10, tick_s=60, rng=random.Random(3))
    for weight in (10,) * 5 + (60,) * 5 + (100,) * 5:
        traffic.advance(weight)
    for version in (js.GA, js.CANARY):
        counters = [traffic.window(version, 0, t) for t in range(0, 901, 60)]  # each counter's value at t
        for before, after in pairwise(counters):
            assert after.requests >= before.requests and after.errors >= before.errors
            assert all(b >= a for (_, a), (_, b) in zip(before.buckets, after.buckets, strict=True))
        for counts in counters:
            assert [count for _, count in counts.buckets] == sorted(count for _, count in counts.buckets)
            assert counts.buckets[-1] == (math.inf, counts.requests) and counts.errors <= counts.requests
    whole, first, rest = (traffic.window(js.CANARY, a, b) for a, b in ((0, 900), (0, 300), (300, 900)))
    assert whole.requests == first.requests + rest.requests and whole.errors == first.errors + rest.errors
    assert traffic.window(js.CANARY, -120, 0).requests == 0  # before the first step: nothing
    assert traffic.window(js.GA, 840, 900).requests == 0  # at 100 %, GA serves nothing
    with pytest.raises(ValueError, match="ticks"):
        traffic.window(js.CANARY, 30, 90)
    with pytest.raises(ValueError, match="no traffic drawn"):
        traffic.window(js.CANARY, 0, 960)


def test_scenarios_validate_and_know_whether_the_canary_is_worse():
    assert [s.bad for s in js.scenarios()] == [False, False, False, True, True, True, True]
    assert js.scenarios()[0].at(100).canary_rps == 100
    with pytest.raises(ValueError):
        js.Scenario("broken", canary_error_rate=1.5)
    with pytest.raises(ValueError):
        js.Scenario("broken", canary_rps=0)


# --- the threshold judge --------------------------------------------------------------------------------------


def test_measurement_is_what_the_builtin_checks_queries_answer():
    below = {50.0: 100, 100.0: 190}  # 100 in (25, 50], 90 in (50, 100], 10 in (100, 250]
    counts = js.Counts(200, 3, tuple(below.get(le, 0 if le < 50 else 200) for le in js.BUCKETS_MS))
    values = js.measurement("canary", counts).values
    assert values["requests"] == 200 and values["success_rate"] == pytest.approx(98.5)
    assert values["p99_ms"] == pytest.approx(100 + 150 * (198 - 190) / 10)
    empty = js.measurement("ga", js.Counts(0, 0, (0,) * len(js.BUCKETS_MS))).values
    assert empty == {"requests": 0.0, "success_rate": None, "p99_ms": None}


# --- the walker -----------------------------------------------------------------------------------------------


@dataclass
class Scripted:
    """A judge that says what `rule(at, seconds_live, weight)` says (INCONCLUSIVE before the first step: no
    canary traffic), with the instant's time as its 'canary requests'."""

    rule: Callable[[int, int, int], Verdict]
    name: str = "scripted"
    window_s: int = 60
    asked: list[int] = field(default_factory=list)

    def verdict(self, traffic: js.Traffic, at: int, seconds_live: int, weight: int) -> js.Judged:
        self.asked.append(at)
        return js.Judged(INCONCLUSIVE if at <= 0 else self.rule(at, seconds_live, weight), at)


def walk(rule: Callable[[int, int, int], Verdict], **options: int) -> js.Release:
    return js.walk(js.Scenario("A/A", canary_rps=1), Scripted(rule), RELEASE, random.Random(1), **options)


def test_passing_canary_finishes_after_iterations_looks_per_step_and_the_apply_delays():
    done = walk(lambda at, live, weight: PASS)
    # 3 steps x 5 passes x 60 s, plus two proposals merged and applied 120 s after they were made.
    assert done == js.Release(js.FINISHED, 3 * 5 * 60 + 2 * 120, 100, 19, 60)
    assert walk(lambda at, live, weight: PASS, apply_delay_s=300).seconds == 3 * 5 * 60 + 2 * 300


def test_failing_canary_is_rolled_back_after_threshold_looks():
    done = walk(lambda at, live, weight: FAIL)
    assert (done.outcome, done.seconds, done.weight, done.looks) == (js.ROLLED_BACK, 3 * 60, 10, 3)
    assert done.fewest_pass_requests is None


def test_a_canary_failing_at_the_second_step_is_rolled_back_there():
    # 60 % goes live at 420 s (proposed at 300 s, applied 120 s later); it fails from its first own window.
    done = walk(lambda at, live, weight: FAIL if weight == 60 and live > 0 else PASS)
    assert (done.outcome, done.seconds, done.weight) == (js.ROLLED_BACK, 420 + 3 * 60, 60)
    assert done.fewest_pass_requests == 60  # the passes at 60..300 s moved 10 -> 60


def test_one_failure_restarts_the_run_of_passes():
    done = walk(lambda at, live, weight: FAIL if at == 180 else PASS)
    assert (done.outcome, done.seconds) == (js.FINISHED, 3 * 5 * 60 + 2 * 120 + 180)
    assert done.fewest_pass_requests == 240  # the first step moved on the passes at 240..480 s


def test_inconclusive_forever_is_blocked_at_the_horizon():
    done = walk(lambda at, live, weight: INCONCLUSIVE, horizon_s=3600)
    assert done == js.Release(js.BLOCKED, 3600, 10, 60, None)


def test_the_walker_asks_each_instant_once_per_step():
    judge = Scripted(lambda at, live, weight: PASS)
    done = js.walk(js.Scenario("A/A", canary_rps=1), judge, RELEASE, random.Random(1))
    # Every look asks its own instant; the history behind it, up to 5 instants, is remembered.
    assert sorted(judge.asked) == [60 * look for look in range(1, done.looks + 1)]


@dataclass
class ScriptedPrometheus:
    """A metrics provider answering the built-in checks' queries so that the analysis at each instant ends in
    `script[instant]` (unavailable and error as the agent's history records them)."""

    queries: dict[str, tuple[str, str]]
    script: dict[float, str]
    shown: str = "scripted"

    def query(self, text: str, at: float | None) -> float | None:
        version, check = self.queries[text]
        verdict = self.script[at or 0.0]
        if verdict in (Verdict.UNAVAILABLE, Verdict.ERROR):
            raise MetricsUnavailable("scripted", answered=verdict == Verdict.ERROR)
        traffic = 0.0 if version == "canary" and verdict == INCONCLUSIVE else 1000.0
        bad = version == "canary" and verdict == FAIL
        return {"requests": traffic, "success_rate": (50.0 if bad else 100.0) if traffic else None}.get(
            check, 10.0 if traffic else None
        )

    def within(self, deadline: object) -> ScriptedPrometheus:
        return self


def test_read_history_reads_as_the_agents_history_does():
    settings = parse({"gaVersion": js.GA_VERSION, "canaryVersion": js.CANARY_VERSION}, check_environment=False)
    view = StackView(settings.app, settings.release, settings.layout)
    window = history.window(view.release)
    queries = {
        check.promql(view.app.namespace, workload(view.app.name, version), window): (version, check.name)
        for check in view.release.checks
        for version in ("ga", "canary")
    }
    rng = random.Random(8)
    verdicts = list(Verdict)
    for _ in range(150):
        script = {float(600 - 60 * k): rng.choice(verdicts) for k in range(12)}
        depths = {verdict: rng.randint(1, 8) for verdict in verdicts if rng.random() < 0.8}
        source = ScriptedPrometheus(queries, script)
        agent = history.history(view, source, 600.0, 60.0, depths)
        assert js.read_history(script.__getitem__, 600.0, 60.0, depths) == agent.verdicts


# --- the report -----------------------------------------------------------------------------------------------


def test_summarize_counts_shares_and_nearest_rank_times():
    releases = [
        js.Release(js.ROLLED_BACK, 120, 10, 2, None),
        js.Release(js.ROLLED_BACK, 300, 10, 5, None),
        js.Release(js.ROLLED_BACK, 900, 60, 15, 600),
        js.Release(js.FINISHED, 1140, 100, 19, 520),
        js.Release(js.BLOCKED, 10800, 10, 180, None),
    ]
    cell = js.summarize(js.Scenario("A/A"), "threshold", releases)
    assert (cell.releases, cell.rolled_back, cell.blocked, cell.finished) == (5, 0.6, 0.2, 0.2)
    assert cell.rolled_back_in_10m == 0.4
    assert (cell.rollback_p50_s, cell.rollback_p95_s, cell.finish_p50_s) == (300, 900, 1140)
    assert cell.fewest_pass_requests == 520
    with pytest.raises(ValueError):
        js.summarize(js.Scenario("A/A"), "threshold", [])


def test_a_cell_is_reproducible_from_its_seed_and_the_judges_meet_the_same_traffic():
    scenario, judge = js.Scenario("2x errors", canary_rps=10, canary_error_rate=0.01), js.ThresholdJudge(RELEASE)
    first = js.run_cell(scenario, judge, RELEASE, 20, seed=4)
    assert js.run_cell(scenario, judge, RELEASE, 20, seed=4) == first
    a, b = (js.Traffic(scenario, 10, 60, js.release_rng(4, scenario, 3)) for _ in range(2))
    a.advance(10), b.advance(10)
    assert a.window(js.CANARY, 0, 60) == b.window(js.CANARY, 0, 60)


# --- the threshold judge reproduces issue 21 --------------------------------------------------------------------


def threshold_cell(scenario: js.Scenario, releases: int) -> js.Cell:
    return js.run_cell(scenario, js.ThresholdJudge(RELEASE), RELEASE, releases, seed=21)


def test_threshold_judge_blocks_every_identical_canary_at_1_rps():
    # ~60 canary requests per one-minute window at 10 % never reach analysisMinRequests (100): no verdict, ever.
    cell = threshold_cell(js.Scenario("A/A", canary_rps=1), 12)
    assert cell.blocked == 1.0


def test_threshold_judge_rolls_back_identical_canaries_just_above_the_request_gate():
    # At 2 rps (~120 requests a window) one 5xx too many fails the 99 % rule: far above the 1 % target.
    cell = threshold_cell(js.Scenario("A/A", canary_rps=2), 300)
    assert cell.rolled_back > 0.025


def test_threshold_judge_rolls_back_every_identical_canary_when_ga_errs_1_2_percent():
    cell = threshold_cell(js.Scenario("A/A, GA 1.2 %", canary_rps=10, ga_error_rate=0.012, canary_error_rate=0.012), 60)
    assert cell.rolled_back >= 0.95


def test_threshold_judge_never_catches_four_times_ga_errors_when_ga_errs_0_1_percent():
    cell = threshold_cell(js.Scenario("4x errors", canary_rps=10, ga_error_rate=0.001, canary_error_rate=0.004), 60)
    assert cell.finished >= 0.95


# --- the statistical judge ---------------------------------------------------------------------------


def test_statistical_judge_is_asked_about_the_step_so_far(monkeypatch: pytest.MonkeyPatch) -> None:
    release = js.release_settings("statistical")
    judge = js.StatisticalJudge(release)
    asked: list[tuple[float, float, int, int | None]] = []
    real = statistical.judge

    def recording(
        canary: statistical.Counts,
        ga: statistical.Counts,
        rules: object,
        look: int,
        weight: int | None = None,
        ga_before: statistical.Counts | None = None,
    ) -> statistical.Judgement:
        asked.append((canary.requests, ga.requests, look, weight))
        assert rules is release.statistical and canary.buckets[-1] == (math.inf, canary.requests)
        assert ga_before is None  # GA serves traffic at this weight: nothing from before the step is needed
        return real(canary, ga, release.statistical, look=look, weight=weight, ga_before=ga_before)

    monkeypatch.setattr(statistical, "judge", recording)
    traffic = js.Traffic(js.Scenario("A/A", canary_rps=10), 10, 60, random.Random(2))
    for _ in range(5):
        traffic.advance(10)
    assert judge.verdict(traffic, 60, 30, 10) == js.Judged(INCONCLUSIVE, 0)  # under one interval live: too early
    assert not asked
    judge.verdict(traffic, 300, 300, 10)  # live since t = 0: five intervals, look 5
    judge.verdict(traffic, 240, 180, 10)  # live since t = 60: (60, 240], look 3
    since_0, since_60 = traffic.window(js.CANARY, 0, 300), traffic.window(js.CANARY, 60, 240)
    assert asked == [
        (since_0.requests, traffic.window(js.GA, 0, 300).requests, 5, 10),
        (since_60.requests, traffic.window(js.GA, 60, 240).requests, 3, 10),
    ]


def test_statistical_judge_walks_whole_releases():
    release = js.release_settings("statistical")
    judge = js.make_judge("statistical", release)
    assert judge.window_s == release.interval_s  # the agent's history: one interval decides which instants are live
    for done in (js.walk(js.Scenario("A/A", canary_rps=10), judge, release, random.Random(i)) for i in range(3)):
        assert done.outcome in (js.FINISHED, js.ROLLED_BACK, js.BLOCKED) and done.looks > 0
