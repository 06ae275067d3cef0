"""The agent's fault soak as a table: for each fault class of tests/integration/test_agent_soak.py (the same cases,
the same compressed settings: 2 s interval, threshold 2, a live exporter scraped every second by a real
Prometheus), the rollback's reaction over several runs (median, max) against the promise (threshold x interval +
one interval + the soak's fixed allowance), the foreign commits lost (must be 0), and the agent's peak RSS
(VmHWM) against its pod limit (512Mi). BENCH_SOAK_RUNS (default 3) runs per case; BENCH_SOAK_CASES a
comma-separated list of case ids. Prints the table; exits 1 when a case broke its promise."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.test_agent_soak import (  # after the sys.path set-up above
    CASES,
    POD_LIMIT_KIB,
    Outcome,
    Pool,
    namespaces,
    run_case,
)

RUNS = int(os.environ.get("BENCH_SOAK_RUNS", "3"))
WANTED = [name for name in os.environ.get("BENCH_SOAK_CASES", "").split(",") if name]


def main() -> int:
    cases = tuple(case for case in CASES if not WANTED or case.id in WANTED)
    began = time.monotonic()
    rows = []
    failed: list[str] = []
    logs: list[str] = []  # printed after the table, so a broken promise can be read without a re-run
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        for case in cases:
            # A Prometheus of its own per case (its runs' namespaces only): no case's history grows with the
            # bench, and no case pays for another's exporters.
            pool = Pool(tmp / f"{case.id}-prometheus", namespaces((case,), RUNS))
            outcomes: list[Outcome] = []
            try:
                for run in range(RUNS):
                    outcome = run_case(case, pool, tmp / f"{case.id}-{run}", run)
                    outcomes.append(outcome)
                    if outcome.failures():
                        failed.append(f"{case.id} run {run}: {'; '.join(outcome.failures())}")
                        logs.append(f"--- agent log of {case.id} run {run} (its end):\n{outcome.log[-1500:]}")
            finally:
                pool.close()
            rows.append((case, outcomes))
    header = f"{'fault':<58} {'promise':>8} {'median':>8} {'max':>8} {'held':>5} {'lost':>5} {'peak RSS':>9}"
    print(header)
    print("-" * len(header))
    peak = 0
    for case, outcomes in rows:
        limit = outcomes[0].limit_s
        times = [o.reaction_s for o in outcomes if o.reaction_s is not None]
        held = sum(1 for o in outcomes if not o.failures())
        lost = sum(len(o.lost) for o in outcomes)
        rss = max(o.peak_kib for o in outcomes)
        peak = max(peak, rss)
        promise = "none" if limit is None else f"{limit:g}s"
        median = f"{statistics.median(times):.1f}s" if times else "-"
        worst = f"{max(times):.1f}s" if len(times) == len(outcomes) else "never"
        if limit is None:
            median = worst = "-"  # no rollback may happen: held says whether none did
        print(
            f"{case.fault:<58} {promise:>8} {median:>8} {worst:>8} {held:>2}/{len(outcomes):<2} {lost:>5} "
            f"{rss / 1024:>6.0f}MiB"
        )
    print(f"agent peak RSS over the soak: {peak / 1024:.0f} MiB of the pod's {POD_LIMIT_KIB // 1024} MiB limit")
    print(f"soak runs per case: {RUNS}; wall time: {time.monotonic() - began:.0f}s")
    for failure in failed:
        print(f"FAILED {failure}")
    for text in logs:
        print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
