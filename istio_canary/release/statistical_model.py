"""The statistical judge's data: one version's counts, what one test found, the judgement, and how a step's
false-rollback budget is shared between the tests. Pure."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from istio_canary.release.model import StatisticalRules
from istio_canary.release.verdict import Verdict

PASS, FAIL, TOO_LITTLE, NO_DATA = "pass", "fail", "too-little", "no-data"
BLOCKED, UNCOMPARED, UNSURE, NOTE = "blocked", "uncompared", "unsure", "note"  # NOTE: says what was compared
# Of a step's false-rollback budget. The error comparison gets the most: it counts rare events (a few 5xx a
# minute), where the rank test of latency has thousands of request pairs a minute and decides on less.
SHARES = {"errors": 0.6, "latency": 0.2, "success_rate": 0.1, "p99_ms": 0.1}


@dataclass(frozen=True)
class Counts:
    """One version's traffic over the judged window, as Prometheus' increase() gives it (fractional counts are
    its extrapolation). `buckets`: the duration histogram, (upper bound in ms, cumulative count) ascending, the
    last bound infinite."""

    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        numbers = (self.requests, self.errors, *(count for _, count in self.buckets))
        if any(not math.isfinite(n) or n < 0 for n in numbers) or self.errors > self.requests * (1 + 1e-9) + 1e-9:
            raise ValueError(f"impossible counts: {self.requests!r} requests, {self.errors!r} errors")
        bounds = [bound for bound, _ in self.buckets]
        if any(math.isnan(b) for b in bounds) or any(b >= c for b, c in itertools.pairwise(bounds)):
            raise ValueError(f"a histogram's bucket bounds must increase: {bounds[:25]}")

    def per_bucket(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The bounds and each bucket's own count (a counter reset inside the window can make a cumulative
        count dip: clamped at zero)."""
        bounds, counts, below = [], [], 0.0
        for bound, cumulative in self.buckets:
            bounds.append(bound)
            counts.append(max(0.0, cumulative - below))
            below = max(below, cumulative)
        return tuple(bounds), tuple(counts)


@dataclass(frozen=True)
class Finding:
    """What one test said, in words a reviewer reads in the commit, and the numbers behind them."""

    name: str
    result: str  # pass, fail, too-little, no-data, blocked, uncompared, unsure, note
    reason: str
    estimate: str = ""  # the effect and its interval
    statistic: str = ""  # the decision rule's statistic against its boundaries
    numbers: tuple[tuple[str, float], ...] = ()

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "result": self.result,
            "reason": self.reason,
            "estimate": self.estimate,
            "statistic": self.statistic,
            **{key: round(value, 6) for key, value in self.numbers},
        }


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    findings: tuple[Finding, ...]
    reasons: tuple[str, ...]  # the findings that decided it


def pct(value: float) -> str:
    return f"{100 * value:.2f}%" if value < 0.1 else f"{100 * value:.1f}%"


def count_text(value: float) -> str:
    return f"{value:,.0f}"


FIRST_STEP_UNITS = 2  # the first weight step's part of the budget against 1 for each other step judged


def step_alpha(rules: StatisticalRules, test: str, weight: int | None = None) -> float:
    """The false-rollback budget of one test at the step at `weight` (None: a shape step). The release's budget
    is split over the steps judged, the first weight step counting twice: it is where users first meet the
    canary and where it serves least, so where a test needs the budget most; a later step serves six to ten
    times as many canary requests a minute and decides fast on less (bench/bench_judge_budget.py)."""
    first = rules.first_weight is not None and weight == rules.first_weight
    units = rules.analysed_steps + (FIRST_STEP_UNITS - 1 if rules.first_weight is not None else 0)
    mine = FIRST_STEP_UNITS if first else 1
    return rules.false_rollback_pct / 100 * mine / units * SHARES[test]
