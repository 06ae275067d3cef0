"""The statistical judge's formulas: binomial tails and Clopper-Pearson bounds, Wald's boundaries and alpha
spending over looks, Mann-Whitney and Hodges-Lehmann on histograms. Pure Python (math, NormalDist): the agent
image stays small, and a look is a few dozen numbers, where numpy/scipy add megabytes and no speed that matters;
tests/unit/test_stats.py checks each against them. Counts are floats (increase() extrapolates: 3.7 errors in
1021.4 requests): the binomial goes through the incomplete beta function, defined for real counts."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_TINY = 1e-300  # Lentz's guard against a zero denominator
_STANDARD_NORMAL = NormalDist()
LATE_SHARE = 0.1  # of a step's alpha kept for the looks after the planned ones (spent_alpha)


def _count(name: str, value: float) -> None:
    if not 0.0 <= value < math.inf:
        raise ValueError(f"{name} is a count: a finite number >= 0, got {value!r}")


def _probability(name: str, p: float, *, strict: bool = False) -> None:
    if not (0.0 < p < 1.0 if strict else 0.0 <= p <= 1.0):
        raise ValueError(f"{name} must be in {'(0, 1)' if strict else '[0, 1]'}, got {p!r}")


def _shapes(a: float, b: float) -> None:
    if not (0.0 < a < math.inf and 0.0 < b < math.inf):
        raise ValueError(f"the beta distribution needs finite a > 0 and b > 0, got a={a!r}, b={b!r}")


def _stirling_rest(z: float) -> float:
    """lgamma(z) minus Stirling's formula: small and smooth, so no two big logarithms are subtracted."""
    if z >= 10.0:
        z2 = z * z
        return (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - 1 / (1188 * z2)) / z2) / z2) / z2) / z
    return math.lgamma(z) - (z - 0.5) * math.log(z) + z - 0.5 * math.log(2 * math.pi)


def _excess_log(c: float, share: float, s: float) -> float:
    """c * (log r - (r - 1)) with r = share / (c / s): small near r = 1, where c log r alone is large."""
    r = share * s / c
    log_r = math.log(r) if r > 1e-300 else math.log(share) + math.log(s / c)  # r may underflow (tiny x, small a)
    return c * (log_r - (r - 1.0))


def _beta_front(a: float, b: float, x: float, y: float) -> float:
    """x^a y^b / B(a, b) (y = 1 - x), expanded around x = a / (a + b) so that the large first-order terms cancel
    algebraically, not in floating point, and Stirling's big terms never meet: a + b = 4e6 still keeps ~1e-11."""
    s = a + b
    log_front = _excess_log(a, x, s) + _excess_log(b, y, s) + 0.5 * math.log(a * b / (2 * math.pi * s))
    return math.exp(log_front - _stirling_rest(a) - _stirling_rest(b) + _stirling_rest(s))


def _beta_fraction(a: float, b: float, x: float) -> float:
    """1 / (1 + d1 / (1 + d2 / ...)), which times x^a (1-x)^b / (a B(a, b)) is I_x(a, b), by the modified Lentz
    method; it converges fast for x < (a + 1) / (a + b + 2), and near the mean in ~sqrt(max(a, b)) terms."""
    value, c, d = 1.0, math.inf, 1.0  # the state after the first term
    for m in range(1000 + int(20 * math.sqrt(max(a, b)))):
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))  # d_{2m+1}
        even = (m + 1) * (b - m - 1) * x / ((a + 2 * m + 1) * (a + 2 * m + 2))  # d_{2m+2}
        for term in (odd, even):
            d = 1.0 + term * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + term / c
            c = c if abs(c) > _TINY else _TINY
            value *= c * d
        if abs(c * d - 1.0) < 1e-15:
            return value
    raise ArithmeticError(f"the incomplete beta function did not converge for a={a}, b={b}, x={x}")


def _beta_tails(a: float, b: float, x: float, y: float) -> tuple[float, float]:
    """(I_x(a, b), 1 - I_x(a, b)): the fraction runs on the side where it converges, I_x(a,b) = 1 - I_y(b,a)."""
    if x <= 0.0 or y <= 0.0:
        return (0.0, 1.0) if x <= 0.0 else (1.0, 0.0)
    if x < (a + 1) / (a + b + 2):
        below = _beta_front(a, b, x, y) * _beta_fraction(a, b, x) / a
        return below, 1.0 - below
    above = _beta_front(b, a, y, x) * _beta_fraction(b, a, y) / b
    return 1.0 - above, above


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) for real a, b > 0 and 0 <= x <= 1; ~1e-10 relative where > 1e-300."""
    _shapes(a, b)
    _probability("x", x)
    return _beta_tails(a, b, x, 1.0 - x)[0]


def binom_sf(k: float, n: float, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p) = I_p(k, n - k + 1); k and n may be real."""
    _count("n", n)
    _probability("p", p)
    return 1.0 if k <= 0 else 0.0 if k > n else betainc(k, n - k + 1, p)


def binom_cdf(k: float, n: float, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p) = I_{1-p}(n - k, k + 1); k and n may be real."""
    _count("n", n)
    _probability("p", p)
    return 0.0 if k < 0 else 1.0 if k >= n else betainc(n - k, k + 1, 1.0 - p)


def beta_ppf(q: float, a: float, b: float) -> float:
    """The q-quantile of Beta(a, b), to 1e-12 relative: Newton's method on log P(X <= x) against log x below the
    mean, on log P(X > x) against log(1 - x) above it (tails are nearly straight lines there, so a quantile of
    1e-10 takes a few steps), bisecting the bracket around the root when a step would leave it."""
    _probability("q", q)
    _shapes(a, b)
    if q in (0.0, 1.0):
        return q
    # Start from the normal approximation, or past (0, 1) from the power law of the tail q lies in (P(X <= x) ~
    # x^a / (a B(a, b)) near 0, mirrored near 1), which also keeps off the mean, where the fraction is slowest.
    mean = a / (a + b)
    x = mean + _STANDARD_NORMAL.inv_cdf(q) * math.sqrt(mean * (1.0 - mean) / (a + b + 1.0))
    if not 0.0 < x < 1.0:
        log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
        power = (math.log(q * a) + log_beta) / a if q <= 0.5 else (math.log((1.0 - q) * b) + log_beta) / b
        x = mean if power >= 0 else math.exp(power) if q <= 0.5 else -math.expm1(power)
        if x in (0.0, 1.0):  # the quantile is nearer to 0 or 1 than a float can tell
            return x
    low, high = 0.0, 1.0
    for _ in range(100):
        y = 1.0 - x
        below, above = _beta_tails(a, b, x, y)
        # compared on q's own side: 1 - 1e-9 and 1 - 0.99999993e-9 are one float, their upper tails are not
        gap = below - q if q <= 0.5 else (1.0 - q) - above
        if gap == 0:
            return x
        low, high = (x, high) if gap < 0 else (low, x)
        if high <= _TINY:  # below 1e-300 (1e-4 extrapolated errors put a bound near 1e-3000): 0 as a float
            return 0.0
        front = _beta_front(a, b, x, y)  # x y times the density
        if x <= mean:
            step = (math.log(q) - math.log(below)) * below * y / front if min(below, front) > 0 else math.nan
            new = max(x * math.exp(min(step, 700.0)), _TINY)
        else:
            step = (math.log1p(-q) - math.log(above)) * above * x / front if min(above, front) > 0 else math.nan
            new = x - y * math.expm1(min(step, 700.0))
        if not (low < new < high or new == x):  # (a step too small to move x is convergence, not an escape)
            new = math.sqrt(low * high) if low > 0 else high / 8.0  # geometric: tails span orders of magnitude
        if abs(new - x) <= 1e-12 * x or high - low <= 1e-12 * low:
            return new
        x = new
    raise ArithmeticError(f"beta_ppf did not converge for q={q}, a={a}, b={b}")


def binomial_upper(k: float, n: float, confidence: float) -> float:
    """Clopper-Pearson one-sided upper bound of a proportion from k successes in n trials (1.0 when k >= n)."""
    _count("k", k)
    _count("n", n)
    _probability("confidence", confidence, strict=True)
    return 1.0 if k >= n else beta_ppf(confidence, k + 1, n - k)


def binomial_lower(k: float, n: float, confidence: float) -> float:
    """Clopper-Pearson one-sided lower bound (0.0 when k <= 0; a k above n counts as n)."""
    _count("k", k)
    _count("n", n)
    _probability("confidence", confidence, strict=True)
    k = min(k, n)
    return 0.0 if k <= 0 else beta_ppf(1.0 - confidence, k, n - k + 1)


def normal_sf(z: float) -> float:
    """P(Z >= z) for a standard normal Z (erfc keeps the far upper tail's relative precision)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def normal_isf(q: float) -> float:
    """The z with P(Z >= z) = q (inf at q = 0, -inf at q = 1)."""
    _probability("q", q)
    return math.inf if q == 0.0 else -math.inf if q == 1.0 else -_STANDARD_NORMAL.inv_cdf(q)


def spent_alpha(alpha: float, look: int, planned: int) -> float:
    """The share of `alpha` look number `look` (1, 2, ...) of one step may spend, over `planned` looks: 90 % of
    alpha spread evenly over the planned looks, the other 10 % as 6 / (pi^2 j^2) for the j-th look after them.
    Summed over every look it is alpha, so a step may be looked at as often as it takes (a union bound). The judge
    tests its planned looks at the higher levels of istio_canary/release/sequential.py, which spend the same
    90 % exactly; the reserve after them is spent as here."""
    _probability("alpha", alpha, strict=True)
    if look < 1:
        raise ValueError(f"looks are numbered from 1, got {look!r}")
    if planned < 1:
        raise ValueError(f"at least one look is planned, got {planned!r}")
    if look <= planned:
        return alpha * (1 - LATE_SHARE) / planned
    late = look - planned
    return alpha * LATE_SHARE * 6.0 / (math.pi**2 * late * late)


def sprt_bounds(alpha: float, beta: float) -> tuple[float, float]:
    """Wald's log-likelihood-ratio boundaries: below log(beta / (1 - alpha)) 'equal', above log((1 - beta) / alpha)
    'worse'."""
    _probability("alpha", alpha, strict=True)
    _probability("beta", beta, strict=True)
    if alpha + beta >= 1.0:
        raise ValueError(f"alpha + beta must be below 1 (else the boundaries cross), got {alpha} + {beta}")
    return math.log(beta / (1.0 - alpha)), math.log((1.0 - beta) / alpha)


def conditional_llr(canary_errors: float, other_errors: float, canary_share: float, ratio: float) -> float:
    """Log-likelihood ratio of 'the canary's error rate is `ratio` times the other's' against 'equal', given both
    versions' errors. Given their total, an error is the canary's with probability p0 = s (its share of requests)
    if the rates are equal, p1 = s*ratio / (s*ratio + 1 - s) if not, so the LLR
    e_c log(p1/p0) + e_o log((1-p1)/(1-p0)) is e_c log(ratio) - (e_c + e_o) log(1 + s (ratio - 1))."""
    _count("canary_errors", canary_errors)
    _count("other_errors", other_errors)
    _probability("canary_share", canary_share, strict=True)
    if not 1.0 < ratio < math.inf:
        raise ValueError(f"ratio is the error-rate multiple tested for and must exceed 1, got {ratio!r}")
    total = canary_errors + other_errors
    return canary_errors * math.log(ratio) - total * math.log1p(canary_share * (ratio - 1.0))


def _bucket_totals(canary: Sequence[float], other: Sequence[float]) -> tuple[float, float]:
    if len(canary) != len(other):
        raise ValueError(f"the two histograms need the same buckets, got {len(canary)} and {len(other)}")
    for name, counts in (("canary", canary), ("other", other)):
        if not all(0.0 <= c < math.inf for c in counts):
            raise ValueError(f"{name}'s bucket counts must be finite and >= 0, got {list(counts)!r}")
    return math.fsum(canary), math.fsum(other)


def _u_sd(canary: Sequence[float], other: Sequence[float], n1: float, n2: float) -> float:
    """The standard deviation of U under 'same distribution', tie-corrected (each bucket's requests tie)."""
    total = n1 + n2
    if n1 * n2 == 0 or total <= 1:
        return 0.0
    ties = math.fsum(t * (t - 1) * (t + 1) for t in map(sum, zip(canary, other, strict=True)))
    variance = n1 * n2 / 12.0 * ((total + 1) - ties / (total * (total - 1)))
    # Everything in one bucket leaves a rounding residue, not a variance: it must not become a huge z.
    return math.sqrt(variance) if variance > 1e-9 * n1 * n2 * (total + 1) / 12.0 else 0.0


@dataclass(frozen=True)
class MannWhitney:
    u: float  # pairs (canary, other) in which the canary's observation is larger, ties counted half
    n_canary: float
    n_other: float
    auc: float  # u / (n_canary * n_other): the chance a canary request is slower (ties half); 0.5 if no pairs
    se: float  # the standard error of auc under "same distribution", tie-corrected
    z: float  # (auc - 0.5) / se; 0.0 when se == 0


def mann_whitney(canary: Sequence[float], other: Sequence[float]) -> MannWhitney:
    """Mann-Whitney U of canary over other from per-bucket counts (not cumulative; the same ordered buckets for
    both): each request is one observation at bucket resolution, and the requests in one bucket tie."""
    n1, n2 = _bucket_totals(canary, other)
    u, other_below = 0.0, 0.0
    for c, o in zip(canary, other, strict=True):
        u += c * (other_below + o / 2.0)
        other_below += o
    pairs, sd = n1 * n2, _u_sd(canary, other, n1, n2)
    if pairs == 0:
        return MannWhitney(u, n1, n2, 0.5, 0.0, 0.0)
    auc, se = u / pairs, sd / pairs
    return MannWhitney(u, n1, n2, auc, se, (auc - 0.5) / se if se > 0 else 0.0)


def hodges_lehmann(
    canary: Sequence[float], other: Sequence[float], values: Sequence[float], confidence: float
) -> tuple[float, float, float]:
    """(estimate, lower, upper): the Hodges-Lehmann shift of canary over other, `values[i]` being the value of
    every observation in bucket i (log bucket bounds give a log ratio): the median of the pairwise differences,
    and the two-sided `confidence` interval from inverting the Mann-Whitney test (normal approximation,
    tie-corrected sd_U): with W = n_canary * n_other pairs and K = floor(W/2 - z_{(1+conf)/2} sd_U), the K-th
    smallest and K-th largest difference (the extremes when K < 1). Works on the distinct bucket-pair
    differences weighted canary[i] * other[j]; the samples are never expanded."""
    n1, n2 = _bucket_totals(canary, other)
    if len(values) != len(canary) or not all(map(math.isfinite, values)):
        raise ValueError(f"values needs one finite number per bucket ({len(canary)}), got {values!r}")
    if any(low >= high for low, high in itertools.pairwise(values)):  # each bucket is one tie, in order
        raise ValueError(f"values must increase from bucket to bucket, got {values!r}")
    _probability("confidence", confidence, strict=True)
    if n1 * n2 == 0:
        raise ValueError("a shift needs observations in both histograms")
    weights: dict[float, float] = {}
    for vc, c in zip(values, canary, strict=True):
        for vo, o in zip(values, other, strict=True):
            if c * o > 0:
                weights[vc - vo] = weights.get(vc - vo, 0.0) + c * o
    differences = sorted(weights)
    at_or_below = list(itertools.accumulate(weights[d] for d in differences))
    total, last = at_or_below[-1], len(differences) - 1  # total: n1 * n2, summed as the ranks are
    middle = bisect.bisect_left(at_or_below, total / 2.0)
    estimate = differences[middle]
    if at_or_below[middle] == total / 2.0 and middle < last:  # an even count: the two middle differences' mean
        estimate = (estimate + differences[middle + 1]) / 2.0
    rank = math.floor(total / 2.0 - normal_isf((1.0 - confidence) / 2.0) * _u_sd(canary, other, n1, n2))
    if rank < 1:
        return estimate, differences[0], differences[-1]
    kth_smallest = differences[min(bisect.bisect_left(at_or_below, rank), last)]
    kth_largest = differences[min(bisect.bisect_right(at_or_below, total - rank), last)]
    return estimate, kth_smallest, kth_largest
