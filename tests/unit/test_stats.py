"""The statistical judge's formulas (istio_canary/release/stats.py, pure Python) against scipy/numpy as the
reference, on seeded generated cases: several hundred per function, with the edges the judge meets (no counts,
k = 0 and k = n, p at or near 0 and 1, two million requests, increase()'s fractional counts), and every
impossible input refused with a message. scipy and numpy are test-only (requirements-dev.txt)."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from scipy import special
from scipy import stats as reference

from istio_canary.release import stats

CASES = 400
HUGE_N = 2e6
# scipy's own incomplete beta loses relative accuracy near the bottom of the float range (at ~1e-294 it is off by
# 2e-10 where this module agrees with a 50-digit evaluation to 2e-13), so tiny references are compared with zero.
REFERENCE_FLOOR = 1e-280


def close(got: float, want: float, rtol: float, floor: float = REFERENCE_FLOOR) -> bool:
    return abs(got - want) <= rtol * abs(want) + floor


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    return 10 ** rng.uniform(math.log10(low), math.log10(high))


def trials(rng: random.Random) -> float:
    """A request count: mostly integers up to 2e6, sometimes fractional (increase() extrapolates), sometimes 0."""
    n = rng.choice([0.0, 1.0, HUGE_N, float(int(log_uniform(rng, 1, HUGE_N))), log_uniform(rng, 0.1, HUGE_N)])
    return n if rng.random() < 0.9 else n + 0.37


def shapes(rng: random.Random) -> tuple[float, float]:
    """Beta parameters as the binomial functions make them (k + 1, n - k), or anywhere in 1e-3 .. 2e6."""
    if rng.random() < 0.4:
        return log_uniform(rng, 1e-3, HUGE_N), log_uniform(rng, 1e-3, HUGE_N)
    n = max(trials(rng), 1.0)
    k = rng.choice([0.0, n - 1, float(rng.randint(0, int(n) - 1)), rng.uniform(0, n - 1)])
    return k + 1, n - k


def probability(rng: random.Random) -> float:
    """Uniform, or at the edges: exactly 0 or 1, down to 1e-12 from either end."""
    return rng.choice([rng.random(), 0.0, 1.0, log_uniform(rng, 1e-12, 0.1), 1 - log_uniform(rng, 1e-12, 0.1)])


def seeded(seed: int) -> Iterator[random.Random]:
    rng = random.Random(seed)
    for _ in range(CASES):
        yield rng


def test_betainc_matches_scipy_to_1e10_relative() -> None:
    for rng in seeded(1):
        a, b = shapes(rng)
        # x anywhere, in the bulk (a scipy quantile), or deep in the lower tail
        x = rng.choice([probability(rng), float(special.betaincinv(a, b, rng.random())), log_uniform(rng, 1e-15, 1)])
        want = float(special.betainc(a, b, x))
        assert close(stats.betainc(a, b, x), want, 1e-10), (a, b, x, want)


def test_betainc_edges_and_symmetry() -> None:
    assert stats.betainc(3.0, 4.0, 0.0) == 0.0
    assert stats.betainc(3.0, 4.0, 1.0) == 1.0
    assert stats.betainc(1.0, 1.0, 0.3) == pytest.approx(0.3, rel=1e-14)  # the uniform distribution
    for rng in seeded(2):
        a, b = shapes(rng)
        x = rng.random()
        assert stats.betainc(a, b, x) + stats.betainc(b, a, 1 - x) == pytest.approx(1.0, abs=1e-12), (a, b, x)


def test_binomial_tails_match_scipy_on_integer_counts() -> None:
    for rng in seeded(3):
        n = float(int(trials(rng)))
        k = float(rng.choice([0, n, rng.randint(0, int(n)), rng.randint(0, min(int(n), 10))]))
        p = probability(rng)
        assert close(stats.binom_sf(k, n, p), float(reference.binom.sf(k - 1, n, p)), 1e-9), (k, n, p)
        assert close(stats.binom_cdf(k, n, p), float(reference.binom.cdf(k, n, p)), 1e-9), (k, n, p)


def test_binomial_tails_of_fractional_counts_are_the_incomplete_beta() -> None:
    for rng in seeded(4):
        n = trials(rng)
        k, p = rng.uniform(0, n), probability(rng)
        want_sf = float(special.betainc(k, n - k + 1, p)) if k > 0 else 1.0
        want_cdf = float(special.betainc(n - k, k + 1, 1 - p)) if k < n else 1.0
        assert close(stats.binom_sf(k, n, p), want_sf, 1e-9), (k, n, p)
        assert close(stats.binom_cdf(k, n, p), want_cdf, 1e-9), (k, n, p)
        # between integer counts the tail moves monotonically: more errors are never more likely
        assert stats.binom_sf(k + 0.5, n, p) <= stats.binom_sf(k, n, p) + 1e-15


def test_binomial_tail_edges() -> None:
    assert stats.binom_sf(0, 10, 0.3) == 1.0
    assert stats.binom_sf(-2.5, 10, 0.3) == 1.0
    assert stats.binom_sf(10.5, 10, 0.3) == 0.0
    assert stats.binom_sf(3, 10, 0.0) == 0.0
    assert stats.binom_sf(3, 10, 1.0) == 1.0
    assert stats.binom_sf(10, 10, 0.5) == pytest.approx(0.5**10, rel=1e-13)
    assert stats.binom_sf(0, 0, 0.5) == 1.0  # nothing observed: at least nothing, surely
    assert stats.binom_cdf(-0.5, 10, 0.3) == 0.0
    assert stats.binom_cdf(10, 10, 0.3) == 1.0
    assert stats.binom_cdf(0, 10, 0.3) == pytest.approx(0.7**10, rel=1e-13)
    for k in range(11):  # complements on integer counts
        assert stats.binom_cdf(k, 10, 0.3) + stats.binom_sf(k + 1, 10, 0.3) == pytest.approx(1.0, abs=1e-15)


def test_beta_ppf_matches_scipy_within_what_the_cdf_can_resolve() -> None:
    for rng in seeded(5):
        a, b = shapes(rng)
        q = rng.choice([rng.random(), log_uniform(rng, 1e-12, 0.5), 1 - log_uniform(rng, 1e-12, 0.5)])
        want = float(special.betaincinv(a, b, q))
        if not 1e-290 < want < 1 - 1e-15:  # the quantile is nearer to 0 or 1 than a float can tell
            continue
        # x is known only as well as F(x) = q pins it: F's own relative error in the tail q is in, over the density
        slack = 1e-11 * min(q, 1 - q) / float(reference.beta.pdf(want, a, b))
        assert abs(stats.beta_ppf(q, a, b) - want) <= 1e-10 * want + slack, (q, a, b, want)


def test_beta_ppf_inverts_betainc() -> None:
    assert stats.beta_ppf(0.0, 2.0, 3.0) == 0.0
    assert stats.beta_ppf(1.0, 2.0, 3.0) == 1.0
    assert stats.beta_ppf(0.05, 1.0, 1.0) == pytest.approx(0.05, rel=1e-12)
    for rng in seeded(6):
        a, b = shapes(rng)
        q = rng.choice([rng.random(), log_uniform(rng, 1e-10, 0.5)])
        x = stats.beta_ppf(q, a, b)
        if 1e-290 < x < 0.999:
            assert stats.betainc(a, b, x) == pytest.approx(q, rel=1e-8), (q, a, b, x)


def bounds_cases(seed: int) -> Iterator[tuple[float, float, float]]:
    for rng in seeded(seed):
        n = trials(rng)
        k = rng.choice([0.0, n, rng.uniform(0, n), float(rng.randint(0, min(int(n), 5)))])
        yield k, n, rng.choice([0.9, 0.95, 0.99, 0.999, rng.uniform(0.5, 0.9999)])


def test_clopper_pearson_bounds_match_scipy_beta_quantiles() -> None:
    for k, n, confidence in bounds_cases(7):
        upper = float(reference.beta.ppf(confidence, k + 1, n - k)) if k < n else 1.0
        lower = float(reference.beta.ppf(1 - confidence, k, n - k + 1)) if k > 0 else 0.0
        assert close(stats.binomial_upper(k, n, confidence), upper, 1e-9), (k, n, confidence)
        assert close(stats.binomial_lower(k, n, confidence), lower, 1e-9), (k, n, confidence)


def test_clopper_pearson_bounds_agree_with_scipy_binomtest() -> None:
    """binomtest's one-sided exact intervals: the same definition (its root finder stops at ~1e-12 absolute)."""
    rng = random.Random(8)
    for _ in range(200):
        n = rng.choice([1, 10, 100, 1000, rng.randint(1, 5000)])
        k, confidence = rng.randint(0, n), rng.choice([0.9, 0.95, 0.99])
        upper = reference.binomtest(k, n, alternative="less").proportion_ci(confidence).high
        lower = reference.binomtest(k, n, alternative="greater").proportion_ci(confidence).low
        assert stats.binomial_upper(k, n, confidence) == pytest.approx(upper, rel=1e-6, abs=1e-11), (k, n)
        assert stats.binomial_lower(k, n, confidence) == pytest.approx(lower, rel=1e-6, abs=1e-11), (k, n)


def test_clopper_pearson_edges() -> None:
    assert stats.binomial_upper(0, 0, 0.95) == 1.0  # no requests: no knowledge
    assert stats.binomial_lower(0, 0, 0.95) == 0.0
    assert stats.binomial_upper(5, 5, 0.95) == 1.0
    assert stats.binomial_upper(5.2, 5, 0.95) == 1.0  # errors extrapolated past requests
    assert stats.binomial_lower(5.2, 5, 0.95) == stats.binomial_lower(5, 5, 0.95) == pytest.approx(0.05 ** (1 / 5))
    assert stats.binomial_lower(0, 100, 0.95) == 0.0
    assert stats.binomial_upper(0, 100, 0.95) == pytest.approx(1 - 0.05 ** (1 / 100), rel=1e-12)  # rule of three
    assert stats.binomial_upper(0, HUGE_N, 0.99) == pytest.approx(-math.expm1(math.log(0.01) / HUGE_N), rel=1e-10)
    assert stats.binomial_lower(1, 917_331, 0.999) == pytest.approx(-math.expm1(math.log1p(-0.001) / 917_331), 1e-10)
    # a bound whose tail is near 1: judged on 1 - confidence, which 1 - 1e-9 holds to 7 digits only as itself
    upper = float(special.betaincinv(1.0454465700194743, 48.954553429980526, 0.999999999))
    assert stats.binomial_upper(0.0454465700194743, 49.0, 0.999999999) == pytest.approx(upper, rel=1e-10)
    # 1e-4 extrapolated errors: the bound is ~1e-3000, zero as a float (not an endless search)
    assert stats.binomial_lower(1e-4, HUGE_N, 0.5) == 0.0
    assert float(special.betaincinv(1e-4, HUGE_N + 1 - 1e-4, 0.5)) < 1e-300  # scipy stops at the smallest normal
    assert stats.binomial_upper(HUGE_N - 1e-4, HUGE_N, 0.5) == pytest.approx(1.0, rel=1e-12)  # 1 - 1e-3000


def test_normal_tail_and_its_inverse_match_scipy() -> None:
    rng = random.Random(9)
    for _ in range(CASES):
        z = rng.choice([rng.uniform(-8, 8), rng.uniform(-40, 38), rng.gauss(0, 2)])
        # relative error grows as z^2 times z's last bit, for any implementation: erfc's tail is exp(-z^2 / 2)
        assert close(stats.normal_sf(z), float(reference.norm.sf(z)), 1e-14 * (1 + z * z), floor=1e-300), z
        q = rng.choice([rng.random(), log_uniform(rng, 1e-300, 0.5), 1 - log_uniform(rng, 1e-15, 0.5)])
        assert close(stats.normal_isf(q), float(reference.norm.isf(q)), 1e-12, floor=1e-15), q
    assert stats.normal_isf(0.0) == math.inf
    assert stats.normal_isf(1.0) == -math.inf
    assert stats.normal_isf(0.5) == 0.0


def test_spent_alpha_shares_sum_to_alpha() -> None:
    looks = np.arange(1, 1_000_001, dtype=float)
    for alpha in (0.001, 0.01, 0.05, 0.2):
        shares = np.array([stats.spent_alpha(alpha, look) for look in range(1, 101)])
        assert np.allclose(shares, alpha / (special.zeta(2) * looks[:100] ** 2), rtol=1e-14)
        assert np.all(np.diff(shares) < 0)  # later looks get less
        tail = alpha / special.zeta(2) * np.sum(1 / looks**2)  # a million looks spend almost all, never more
        assert alpha * (1 - 1e-6) < tail <= alpha


def test_sprt_bounds_are_walds() -> None:
    rng = random.Random(10)
    for _ in range(CASES):
        alpha, beta = rng.uniform(1e-6, 0.5), rng.uniform(1e-6, 0.49)
        lower, upper = stats.sprt_bounds(alpha, beta)
        assert lower == pytest.approx(np.log(beta / (1 - alpha)), rel=1e-14)
        assert upper == pytest.approx(np.log((1 - beta) / alpha), rel=1e-14)
        assert lower < 0 < upper


def test_conditional_llr_is_the_binomial_likelihood_ratio() -> None:
    rng = random.Random(11)
    for _ in range(CASES):
        canary, other = rng.randint(0, 2000), rng.randint(0, 20000)
        share, ratio = rng.uniform(0.001, 0.999), rng.choice([1.5, 2.0, 4.0, rng.uniform(1.01, 10)])
        p1 = share * ratio / (share * ratio + 1 - share)
        binomial = reference.binom(canary + other, p1).logpmf(canary) - reference.binom(canary + other, share).logpmf(
            canary
        )
        assert stats.conditional_llr(canary, other, share, ratio) == pytest.approx(binomial, rel=1e-9, abs=1e-9)
        # fractional counts: the same formula, written with scipy's xlogy
        c, o = canary + rng.random(), other + rng.random()
        formula = special.xlogy(c, p1 / share) + special.xlogy(o, (1 - p1) / (1 - share))
        assert stats.conditional_llr(c, o, share, ratio) == pytest.approx(formula, rel=1e-10, abs=1e-10)
    assert stats.conditional_llr(0, 0, 0.1, 2.0) == 0.0  # no errors: no evidence either way


def histograms(rng: random.Random, buckets: int, most: int) -> tuple[list[int], list[int]]:
    """Two per-bucket count lists with empty buckets, a shifted canary now and then, and at least one request each."""
    shift = rng.choice([0, 0, 1, 2])
    canary = [rng.choice([0, rng.randint(0, most)]) for _ in range(buckets)]
    other = [rng.choice([0, rng.randint(0, most)]) for _ in range(buckets)]
    canary = ([0] * shift + canary)[:buckets]
    canary[rng.randrange(buckets)] += 1
    other[rng.randrange(buckets)] += 1
    return canary, other


def expanded(counts: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


def test_mann_whitney_matches_scipy_on_expanded_samples() -> None:
    rng = random.Random(12)
    for _ in range(CASES):
        canary, other = histograms(rng, rng.randint(1, 12), rng.choice([3, 30, 200]))
        result = stats.mann_whitney(canary, other)
        scipy_result = reference.mannwhitneyu(
            expanded(canary), expanded(other), method="asymptotic", use_continuity=False, alternative="greater"
        )
        assert result.u == scipy_result.statistic
        assert (result.n_canary, result.n_other) == (sum(canary), sum(other))
        assert result.auc == pytest.approx(result.u / (sum(canary) * sum(other)), rel=1e-15)
        if result.se > 0:
            assert stats.normal_sf(result.z) == pytest.approx(scipy_result.pvalue, rel=1e-9, abs=1e-300)
        else:  # every request in one bucket: scipy's z is 0/0
            assert sum(1 for c, o in zip(canary, other, strict=True) if c + o) == 1
            assert result.z == 0.0 and math.isnan(scipy_result.pvalue)


def numpy_mann_whitney(canary: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """U and its tie-corrected sd from weighted counts, written with numpy for counts too big to expand."""
    n1, n2 = canary.sum(), other.sum()
    u = float(np.sum(canary * (np.cumsum(other) - other / 2)))
    ties = canary + other
    total = n1 + n2
    sd = math.sqrt(n1 * n2 / 12 * ((total + 1) - np.sum(ties**3 - ties) / (total * (total - 1))))
    return u, sd


def test_mann_whitney_on_a_million_fractional_requests() -> None:
    rng = random.Random(13)
    for _ in range(CASES):
        canary = np.array([rng.choice([0.0, rng.uniform(0, 1e5)]) for _ in range(20)])
        other = np.array([rng.choice([0.0, rng.uniform(0, 1e6)]) for _ in range(20)])
        canary[rng.randrange(20)] += 1.5
        other[rng.randrange(20)] += 1.5
        u, sd = numpy_mann_whitney(canary, other)
        result = stats.mann_whitney(list(canary), list(other))
        pairs = canary.sum() * other.sum()
        assert result.u == pytest.approx(u, rel=1e-12)
        assert result.se == pytest.approx(sd / pairs, rel=1e-9)
        assert result.z == pytest.approx((u - pairs / 2) / sd, rel=1e-8, abs=1e-9)


def test_mann_whitney_edges() -> None:
    nothing = stats.mann_whitney([0, 0, 0], [5, 1, 0])
    assert (nothing.u, nothing.auc, nothing.se, nothing.z) == (0.0, 0.5, 0.0, 0.0)
    assert stats.mann_whitney([], []).auc == 0.5
    slower = stats.mann_whitney([0, 0, 10], [10, 0, 0])  # every canary request slower than every other
    assert (slower.u, slower.auc) == (100.0, 1.0) and slower.z > 3
    tied = stats.mann_whitney([0, 7, 0], [0, 9, 0])
    assert (tied.auc, tied.se, tied.z) == (0.5, 0.0, 0.0)
    scaled, base = stats.mann_whitney([2.5, 5.0, 7.5], [5.0, 5.0, 2.5]), stats.mann_whitney([1, 2, 3], [2, 2, 1])
    assert scaled.auc == pytest.approx(base.auc) and scaled.u == pytest.approx(base.u * 2.5**2)


def numpy_hodges_lehmann(
    canary: list[int], other: list[int], values: list[float], confidence: float
) -> tuple[float, float, float]:
    """The textbook computation on the expanded samples: every pairwise difference, sorted."""
    x, y = np.asarray(values)[expanded(canary)], np.asarray(values)[expanded(other)]
    differences = np.sort(np.subtract.outer(x, y).ravel())
    _, ties = np.unique(np.concatenate([x, y]), return_counts=True)
    total = len(x) + len(y)
    sd = math.sqrt(len(x) * len(y) / 12 * ((total + 1) - np.sum(ties**3 - ties) / (total * (total - 1))))
    rank = math.floor(len(differences) / 2 - reference.norm.ppf((1 + confidence) / 2) * sd)
    if rank < 1:
        return float(np.median(differences)), float(differences[0]), float(differences[-1])
    return float(np.median(differences)), float(differences[rank - 1]), float(differences[-rank])


def test_hodges_lehmann_matches_numpy_on_expanded_pairwise_differences() -> None:
    rng = random.Random(14)
    for _ in range(CASES):
        buckets = rng.randint(1, 10)
        canary, other = histograms(rng, buckets, rng.choice([2, 10, 40]))
        # log bucket bounds, as the judge passes them, or any increasing values
        bounds = [math.log(0.005 * 2**i) for i in range(buckets + 3)]
        values = sorted(rng.sample(bounds, buckets) if rng.random() < 0.5 else rng.sample(range(-50, 50), buckets))
        confidence = rng.choice([0.5, 0.8, 0.9, 0.95, 0.99])
        want = numpy_hodges_lehmann(canary, other, values, confidence)
        got = stats.hodges_lehmann(canary, other, values, confidence)
        assert got == pytest.approx(want, abs=1e-12), (canary, other, values, confidence)
        assert got[1] <= got[0] <= got[2]


def test_hodges_lehmann_edges() -> None:
    values = [math.log(b) for b in (0.005, 0.01, 0.025, 0.05, 0.1)]
    twice = stats.hodges_lehmann([0, 0, 0, 500, 0], [0, 500, 0, 0, 0], values, 0.95)
    assert twice == pytest.approx((math.log(5), math.log(5), math.log(5)))  # every pair differs by the same
    one_each = stats.hodges_lehmann([0, 1, 0, 0, 0], [0, 0, 0, 1, 0], values, 0.95)
    assert one_each == pytest.approx((math.log(0.2),) * 3)  # K < 1: the extremes, which are the one pair
    wide = stats.hodges_lehmann([1, 2, 1, 0, 0], [0, 1, 2, 1, 0], values, 0.99)
    assert wide[1:] == pytest.approx((values[0] - values[3], values[2] - values[1]))  # K < 1 on a few pairs
    # fractional counts behave as the integer counts they scale
    assert stats.hodges_lehmann([0.5, 1.5, 2.5, 0, 0], [1, 1, 0.5, 0, 0], values, 0.9)[0] == pytest.approx(
        stats.hodges_lehmann([2, 6, 10, 0, 0], [4, 4, 2, 0, 0], values, 0.9)[0]
    )


IMPOSSIBLE: list[tuple[Callable[..., object], tuple[object, ...], str]] = [
    (stats.betainc, (0.0, 1.0, 0.5), "a > 0"),
    (stats.betainc, (1.0, -1.0, 0.5), "a > 0"),
    (stats.betainc, (1.0, 1.0, 1.5), "x must be in"),
    (stats.betainc, (1.0, 1.0, math.nan), "x must be in"),
    (stats.binom_sf, (1, -3, 0.5), "n is a count"),
    (stats.binom_sf, (1, 3, -0.1), "p must be in"),
    (stats.binom_cdf, (1, 3, 1.1), "p must be in"),
    (stats.binom_cdf, (1, math.inf, 0.5), "n is a count"),
    (stats.beta_ppf, (1.2, 1.0, 1.0), "q must be in"),
    (stats.beta_ppf, (0.5, 1.0, 0.0), "a > 0"),
    (stats.binomial_upper, (-1, 10, 0.95), "k is a count"),
    (stats.binomial_upper, (1, 10, 1.0), "confidence must be in (0, 1)"),
    (stats.binomial_lower, (1, -10, 0.95), "n is a count"),
    (stats.binomial_lower, (1, 10, 0.0), "confidence must be in (0, 1)"),
    (stats.normal_isf, (-0.1,), "q must be in"),
    (stats.spent_alpha, (0.05, 0), "numbered from 1"),
    (stats.spent_alpha, (1.5, 1), "alpha must be in"),
    (stats.sprt_bounds, (0.6, 0.5), "boundaries cross"),
    (stats.sprt_bounds, (0.0, 0.2), "alpha must be in"),
    (stats.conditional_llr, (1, 2, 0.0, 2.0), "canary_share must be in"),
    (stats.conditional_llr, (1, 2, 0.5, 1.0), "must exceed 1"),
    (stats.conditional_llr, (-1, 2, 0.5, 2.0), "canary_errors is a count"),
    (stats.mann_whitney, ([1, 2], [1, 2, 3]), "same buckets"),
    (stats.mann_whitney, ([1, -2], [1, 2]), "canary's bucket counts"),
    (stats.mann_whitney, ([1, 2], [1, math.nan]), "other's bucket counts"),
    (stats.hodges_lehmann, ([1, 2], [1, 2], [0.0], 0.9), "one finite number per bucket"),
    (stats.hodges_lehmann, ([1, 2], [1, 2], [0.0, math.inf], 0.9), "one finite number per bucket"),
    (stats.hodges_lehmann, ([1, 2], [1, 2], [1.0, 1.0], 0.9), "must increase"),
    (stats.hodges_lehmann, ([0, 0], [1, 2], [0.0, 1.0], 0.9), "observations in both"),
    (stats.hodges_lehmann, ([1, 2], [1, 2], [0.0, 1.0], 1.0), "confidence must be in"),
]


@pytest.mark.parametrize(("function", "args", "message"), IMPOSSIBLE)
def test_impossible_inputs_are_refused_with_a_message(
    function: Callable[..., object], args: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        function(*args)
