"""The statistical judge's formulas (istio_canary/release/stats.py, pure Python): microseconds per call on the
inputs one look of the agent sees: 20 latency buckets with up to 1e6 requests each, error counts from
increase() (fractional), and the worst case of the incomplete beta function (two million requests, evaluated at
the mean, where its continued fraction is longest). Prints `<case>_us <median>` lines, the median of 5 batches
of ~0.2 s each; exits 1 when a result is not a finite number."""

from __future__ import annotations

import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from istio_canary.release import stats  # after the sys.path set-up above

BATCHES = 5
BATCH_S = 0.2
BUCKETS = 20

rng = random.Random(21)
# A GA with up to a million requests per bucket and a canary with a tenth of its traffic, shifted one bucket up.
OTHER = [rng.uniform(0, 1e6) for _ in range(BUCKETS)]
CANARY = [0.0] + [count / 10 * rng.uniform(0.8, 1.2) for count in OTHER[:-1]]
LOG_BOUNDS = [math.log(0.005 * 1.6**i) for i in range(BUCKETS)]
REQUESTS, ERRORS = 120_345.6, 37.4  # one interval's canary traffic at 100 requests/s, with extrapolated counts

CASES: list[tuple[str, Callable[[], object]]] = [
    ("betainc_tail", lambda: stats.betainc(ERRORS, REQUESTS - ERRORS + 1, 2e-4)),
    ("betainc_2e6_at_mean", lambda: stats.betainc(1e6, 1e6, 0.5)),
    ("binom_sf", lambda: stats.binom_sf(ERRORS, REQUESTS, 2e-4)),
    ("binom_cdf", lambda: stats.binom_cdf(ERRORS, REQUESTS, 2e-4)),
    ("beta_ppf", lambda: stats.beta_ppf(0.99, ERRORS + 1, REQUESTS - ERRORS)),
    ("binomial_upper", lambda: stats.binomial_upper(ERRORS, REQUESTS, 0.99)),
    ("binomial_lower", lambda: stats.binomial_lower(ERRORS, REQUESTS, 0.99)),
    ("binomial_upper_2e6", lambda: stats.binomial_upper(5_000.0, 2e6, 0.999)),
    ("normal_sf", lambda: stats.normal_sf(2.7)),
    ("normal_isf", lambda: stats.normal_isf(1e-4)),
    ("spent_alpha", lambda: stats.spent_alpha(0.01, 37)),
    ("sprt_bounds", lambda: stats.sprt_bounds(0.01, 0.05)),
    ("conditional_llr", lambda: stats.conditional_llr(ERRORS, 310.2, 0.1, 2.0)),
    ("mann_whitney_20_buckets", lambda: stats.mann_whitney(CANARY, OTHER)),
    ("hodges_lehmann_20_buckets", lambda: stats.hodges_lehmann(CANARY, OTHER, LOG_BOUNDS, 0.95)),
]


def finite(result: object) -> bool:
    if isinstance(result, stats.MannWhitney):
        return all(map(math.isfinite, (result.u, result.auc, result.se, result.z)))
    if isinstance(result, tuple):
        return all(math.isfinite(value) for value in result)
    return isinstance(result, float) and math.isfinite(result)


def per_call_us(call: Callable[[], object]) -> float:
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < 0.02:  # size the batch from a short warm-up
        call()
        calls += 1
    per_batch = max(1, int(calls * BATCH_S / (time.perf_counter() - start)))
    batches = []
    for _ in range(BATCHES):
        began = time.perf_counter()
        for _ in range(per_batch):
            call()
        batches.append((time.perf_counter() - began) / per_batch)
    return statistics.median(batches) * 1e6


def main() -> int:
    broken = [name for name, call in CASES if not finite(call())]
    for name, call in CASES:
        print(f"stats_{name}_us {per_call_us(call):.1f}")
    for name in broken:
        print(f"FAILED: {name} returned a value that is not a finite number")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
