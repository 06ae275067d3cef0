"""What the 10-minute target of issue 21 costs: the statistical judge's error comparison alone, on the first step
(10 %, the canary at 10 rps, GA erring on 0.5 % of requests), over its first ten looks (one a minute), for a 2x
canary and an identical one, under several ways of spending a false-rollback budget on those looks.

    python bench/bench_judge_budget.py [--bad N] [--same N] [--seed S]

Each row: the share of 2x canaries the comparison fails within 10 minutes, and the share of identical canaries it
fails (its own false-rollback rate, before the other tests, looks and steps add theirs). The judge's own row
spends what the defaults give it (istio_canary/release/stats.py `spent_alpha`); the others are the frontier a
different split of the same 1 % per release would reach. Counts come from testkit/judgesim.py, the comparison
is the real one (istio_canary/release/statistical.py `errors`), the "halfway to the effect" rule included.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from istio_canary.release import looks, statistical
from testkit import judgesim as js

LOOKS = 10  # one a minute: the last that can roll back within 10 minutes
WEIGHT = 10  # the first step


def first_step_looks(scenario: js.Scenario, release: js.ReleaseSettings, n: int, seed: int) -> list[list[tuple]]:
    """Per release, per look: (p, its alpha under the defaults, the ratio) of the error comparison."""
    found = []
    for index in range(n):
        traffic = js.Traffic(scenario, WEIGHT, 60, js.release_rng(seed, scenario, index))
        seen = []
        for at in range(60, 60 * LOOKS + 1, 60):
            traffic.advance(WEIGHT)
            window = looks.judged_window(release, at)
            assert window is not None, at
            canary = traffic.window(js.CANARY, at - window.seconds, at)
            ga = traffic.window(js.GA, at - window.seconds, at)
            finding = statistical.errors(
                statistical.Counts(canary.requests, canary.errors, canary.buckets),
                statistical.Counts(ga.requests, ga.errors, ga.buckets),
                release.statistical,
                window.look,
                weight=WEIGHT,
            )
            numbers = dict(finding.numbers)
            seen.append((numbers["p"], numbers["alpha"], numbers["ratio"]))
        found.append(seen)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bad", type=int, default=4000, help="2x canaries (default 4000)")
    parser.add_argument("--same", type=int, default=8000, help="identical canaries (default 8000)")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    began = time.monotonic()
    release = js.release_settings("statistical")
    halfway = (1 + release.statistical.error_ratio) / 2
    by_name = {s.name: s for s in js.scenarios()}
    bad = first_step_looks(by_name["2x errors"].at(10), release, args.bad, args.seed)
    same = first_step_looks(by_name["A/A"].at(10), release, args.same, args.seed + 1)

    def share(releases: list[list[tuple]], alpha: float | None, last_only: bool) -> float:
        """Releases whose comparison failed at some look: at `alpha` (None: each look's own under the defaults),
        at the tenth look only when `last_only`."""
        return sum(
            any(
                p <= (own if alpha is None else alpha) and ratio >= halfway
                for k, (p, own, ratio) in enumerate(looked)
                if not last_only or k == LOOKS - 1
            )
            for looked in releases
        ) / len(releases)

    rows: list[tuple[str, float | None, bool]] = [
        (f"the judge's defaults (each look: {bad[0][0][1]:.2g})", None, False)
    ]
    rows += [(f"one test at minute 10 at {alpha:g}", alpha, True) for alpha in (0.005, 0.01)]
    rows.append(("every look at 7.5e-05 (the first version's union bound)", 7.5e-5, False))
    rows += [(f"every look at {alpha:g}", alpha, False) for alpha in (3e-4, 1e-3, 2e-3)]
    print(f"{'how the first step spends on its error comparison':<56} {'2x within 10 min':>16} {'A/A failed':>11}")
    for name, alpha, last_only in rows:
        print(f"{name:<56} {share(bad, alpha, last_only):>15.1%} {share(same, alpha, last_only):>11.2%}")
    print(f"{args.bad} 2x and {args.same} identical canaries, seed {args.seed}; {time.monotonic() - began:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
