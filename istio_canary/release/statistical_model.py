"""The statistical judge's data: one version's counts, what one test found, the judgement, and how a step's
false-rollback budget is shared between the tests. Pure."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from istio_canary.release.model import StatisticalRules
from istio_canary.release.verdict import Verdict

PASS, FAIL, TOO_LITTLE, NO_DATA = "pass", "fail", "too-little", "no-data"
BLOCKED, UNCOMPARED, UNSURE = "blocked", "uncompared", "unsure"
SHARES = {"errors": 0.5, "latency": 0.3, "success_rate": 0.1, "p99_ms": 0.1}  # of a step's false-rollback budget


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
    result: str  # pass, fail, too-little, no-data, blocked, uncompared, unsure
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


def step_alpha(rules: StatisticalRules, test: str) -> float:
    return rules.false_rollback_pct / 100 / rules.analysed_steps * SHARES[test]
