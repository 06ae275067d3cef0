"""The group-sequential levels (istio_canary/release/sequential.py) against references: scipy's multivariate normal
for the first looks (the exact joint law of S_k / sqrt(k)), and simulated paths for a whole step's looks; numpy and
scipy are dev-only."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from istio_canary.release import sequential, stats


def boundaries(levels: tuple[float, ...]) -> np.ndarray:
    return np.array([norm.isf(level) for level in levels])


def correlation(looks: int) -> np.ndarray:
    """corr(S_i / sqrt(i), S_j / sqrt(j)) = sqrt(i / j) for i <= j: equal information per look."""
    k = np.arange(1, looks + 1)
    return np.sqrt(np.minimum.outer(k, k) / np.maximum.outer(k, k))


@pytest.mark.parametrize(("alpha", "looks"), [(0.05, 5), (0.01, 10), (0.0015, 20), (0.0009, 4)])
def test_the_first_looks_spend_their_even_share_exactly(alpha, looks):
    """P(crossing one of the first m boundaries) = m * alpha / looks, for m = 1..3, from the exact joint law."""
    z = boundaries(sequential.even_spending_levels(alpha, looks))
    for m in range(1, min(3, looks) + 1):
        none = multivariate_normal.cdf(z[:m], mean=np.zeros(m), cov=correlation(m), abseps=1e-10, releps=1e-8)
        assert 1 - none == pytest.approx(m * alpha / looks, rel=2e-3)


@pytest.mark.parametrize(("alpha", "looks", "paths"), [(0.05, 10, 2_000_000), (0.0015, 20, 4_000_000)])
def test_over_all_looks_simulated_paths_cross_at_alpha(alpha, looks, paths):
    z = boundaries(sequential.even_spending_levels(alpha, looks))
    rng = np.random.default_rng(7)
    running = np.zeros(paths)
    alive = np.ones(paths, dtype=bool)
    crossed = 0
    for k in range(looks):
        running += rng.standard_normal(paths)
        now = alive & (running / math.sqrt(k + 1) > z[k])
        crossed += int(now.sum())
        alive &= ~now
    expected = alpha * paths
    assert abs(crossed - expected) < 4 * math.sqrt(expected)  # four standard errors of a binomial count


def test_the_levels_credit_alike_looks_and_never_fall_below_the_union_bound():
    levels = sequential.even_spending_levels(0.0015, 20)
    assert levels[0] == pytest.approx(0.0015 / 20)
    assert all(later > earlier for earlier, later in itertools.pairwise(levels))
    assert levels[9] > 2 * 0.0015 / 20  # look 10 tests at more than twice the union bound's level
    assert sequential.even_spending_levels(0.01, 1) == (0.01,)


def test_a_look_after_the_planned_ones_spends_the_union_bound_reserve():
    assert sequential.look_level(0.003, 21, 20) == stats.spent_alpha(0.003, 21, 20)
    assert sequential.look_level(0.003, 20, 20) == sequential.even_spending_levels(0.9 * 0.003, 20)[19]


@pytest.mark.parametrize(("alpha", "look", "planned"), [(0.0, 1, 5), (1.0, 1, 5), (0.01, 0, 5), (0.01, 1, 0)])
def test_impossible_arguments_are_refused(alpha, look, planned):
    with pytest.raises(ValueError):
        sequential.look_level(alpha, look, planned)
