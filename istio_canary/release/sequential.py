"""Nominal levels for a test looked at again and again as its counts grow, crediting how alike the looks are.

A test of everything a step has served, looked at every interval, sees mostly the same requests each time: look k
and look k+1 share k/(k+1) of their information. A union bound (each look its own alpha / planned share) pays as
if the looks were independent; ten such looks at 2e-3 each fire on about 0.6 % of identical canaries, not 2 %
(bench/bench_judge_budget.py). Group-sequential boundaries keep the spent budget exact and give the later looks
the difference: under "no difference" the standardized statistic at look k is S_k / sqrt(k), S_k a sum of k
independent N(0, 1) steps (equal information per look), and boundary k is set so that the chance of crossing it
first there is that look's share of the budget. The chance is computed by recursive numerical integration
(Armitage, McPherson and Rowe, 1969): the density of S_k on the paths not yet stopped, carried from look to look.

Pure Python, a few ten-thousand multiply-adds per look, cached per (alpha, looks): the agent image gains nothing.
tests/unit/test_sequential.py checks the levels against simulated paths.
"""

from __future__ import annotations

import functools
import math

from istio_canary.release import stats

STEP = 0.1  # the grid's spacing for S_k: levels within 0.05 % of the exact ones (tests/unit/test_sequential.py)
REACH = 8.0  # standard deviations kept on either side: the mass beyond is below 1e-15


def _gaussian_kernel() -> list[float]:
    span = int(REACH / STEP)
    return [STEP * math.exp(-0.5 * (j * STEP) ** 2) / math.sqrt(2 * math.pi) for j in range(-span, span + 1)]


def _tail(density: list[float], low: float, boundary: float) -> float:
    """P(S_k > boundary, not stopped before) from the previous look's density on the grid starting at `low`: each
    path continues with one N(0, 1) step."""
    return STEP * sum(f * stats.normal_sf(boundary - (low + i * STEP)) for i, f in enumerate(density) if f > 0.0)


def _solve(density: list[float], low: float, spend: float, hint: float) -> float:
    """The boundary on S_k whose tail (from the previous density) is `spend`: bisection, the tail is monotone."""
    below, above = hint - 4.0, hint + 4.0
    while _tail(density, low, below) < spend:
        below -= 4.0
    while _tail(density, low, above) > spend:
        above += 4.0
    for _ in range(60):
        middle = 0.5 * (below + above)
        if _tail(density, low, middle) > spend:
            below = middle
        else:
            above = middle
    return 0.5 * (below + above)


@functools.lru_cache(maxsize=128)
def even_spending_levels(alpha: float, looks: int) -> tuple[float, ...]:
    """One-sided nominal levels for looks 1..`looks` such that, under "no difference", the statistic crosses look
    k's boundary first with probability alpha / looks (so at any look at most alpha in all). Each level is at least
    alpha / looks (the union bound's) and grows with k as the looks become more alike."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if looks < 1:
        raise ValueError(f"at least one look, got {looks!r}")
    spend = alpha / looks
    kernel = _gaussian_kernel()
    span = len(kernel) // 2
    first = stats.normal_isf(spend)
    levels = [spend]
    # S_1 ~ N(0, 1), kept below the first boundary: the density on a grid from `low` up to the boundary.
    low = -REACH * math.sqrt(looks) - REACH
    boundary = first
    count = int((boundary - low) / STEP) + 1
    density = [math.exp(-0.5 * (low + i * STEP) ** 2) / math.sqrt(2 * math.pi) for i in range(count)]
    _cut(density, low, boundary)
    for k in range(2, looks + 1):
        boundary = _solve(density, low, spend, boundary)
        levels.append(max(spend, stats.normal_sf(boundary / math.sqrt(k))))
        if k == looks:
            break
        # The density of S_k on paths still running: the previous one convolved with a N(0, 1) step, cut at the
        # boundary just found.
        count = int((boundary - low) / STEP) + 1
        previous = density
        density = []
        for i in range(count):
            first_j = max(0, i - span)
            last_j = min(len(previous) - 1, i + span)
            density.append(sum(previous[j] * kernel[i - j + span] for j in range(first_j, last_j + 1)))
        _cut(density, low, boundary)
    return tuple(levels)


def _cut(density: list[float], low: float, boundary: float) -> None:
    """Weigh the last grid point for the stretch it stands for below the boundary: each point stands for STEP
    around it, the last one from STEP/2 below it up to the boundary (else the cut sits up to STEP/2 off, an error
    of about 1 % of a level at STEP 0.1)."""
    last = low + (len(density) - 1) * STEP
    density[-1] *= (boundary - last + STEP / 2) / STEP


def look_level(alpha: float, look: int, planned: int) -> float:
    """The level look `look` (1, 2, ...) of a step tests at, out of the step's budget `alpha` for that test: the
    planned looks share (1 - LATE_SHARE) alpha through even_spending_levels(); a look after them spends its part
    of the reserve as stats.spent_alpha() gives it (a union bound: a step that long is rare, and any count of
    looks stays within alpha)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if look < 1:
        raise ValueError(f"looks are numbered from 1, got {look!r}")
    if planned < 1:
        raise ValueError(f"at least one look is planned, got {planned!r}")
    if look <= planned:
        return even_spending_levels((1 - stats.LATE_SHARE) * alpha, planned)[look - 1]
    return stats.spent_alpha(alpha, look, planned)
