"""The analysis judge's keys: `analysisJudge` and the statistical judge's error budgets and effects
(istio_canary/release/statistical.py says what each one does to a verdict)."""

from __future__ import annotations

import math
import re

from istio_canary.release.checks import Check
from istio_canary.release.config_reader import PROJECT, Reader
from istio_canary.release.model import JUDGES, STATISTICAL_JUDGE, StatisticalRules

_DECIMAL = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?", re.ASCII)


def _decimal(reader: Reader, key: str, low: float, high: float, allowed: str, *, closed: str = "") -> float:
    """A plain decimal (`pulumi config set` writes it as text) between `low` and `high`, excluded unless `closed`
    names the end ("low", "high")."""
    value = reader.text(key)
    number = float(value) if _DECIMAL.fullmatch(value) else math.nan
    above = number >= low if "low" in closed else number > low
    below = number <= high if "high" in closed else number < high
    if not (above and below):
        reader.fail(key, value, allowed)
        return low
    return number


PLANNED_LOOKS_PER_ITERATION = 4  # a step's tests spend most of their budget over 4 x analysisIterations looks


def read_judge(
    reader: Reader, checks: tuple[Check, ...], weights: tuple[int, ...], shapes: tuple[str, ...], iterations: int
) -> tuple[str, StatisticalRules]:
    """`analysisJudge` and the StatisticalRules (read and checked whichever judge is chosen, so switching judges
    is one line that was already valid). The guardrails are the built-in checks' thresholds."""
    judge = reader.choice("analysisJudge", JUDGES)
    by_name = {check.name: check for check in checks}
    rules = StatisticalRules(
        false_rollback_pct=_decimal(
            reader,
            "analysisFalseRollbackPct",
            0,
            20,
            "a percentage above 0 and at most 20, e.g. 1 or 0.5",
            closed="high",
        ),
        missed_detection_pct=_decimal(
            reader, "analysisMissedDetectionPct", 0, 50, "a percentage above 0 and below 50, e.g. 5"
        ),
        error_ratio=_decimal(reader, "analysisErrorRatio", 1, 1000, "a ratio above 1, e.g. 2 (twice GA's errors)"),
        error_tolerance_pct=_decimal(
            reader, "analysisErrorTolerancePct", 0, 100, "a percentage from 0 to below 100, e.g. 0.5", closed="low"
        ),
        slower_pairs_pct=_decimal(
            reader, "analysisSlowerPairsPct", 50, 100, "a percentage above 50 and below 100, e.g. 56"
        ),
        share_tolerance_pct=_decimal(
            reader, "analysisShareTolerancePct", 0, 100, "percentage points above 0 and below 100, e.g. 5"
        ),
        # Every step the canary serves in is judged against GA (at 100 %, GA's traffic before the step).
        analysed_steps=max(1, len(shapes) + len(weights)),
        planned_looks=PLANNED_LOOKS_PER_ITERATION * iterations,
        first_weight=weights[0] if weights else None,
        min_requests=int(by_name["requests"].threshold),
        min_success_rate=by_name["success_rate"].threshold,
        max_p99_ms=by_name["p99_ms"].threshold,
    )
    return judge, rules


def read_baseline(reader: Reader, judge: str) -> bool:
    """`analysisBaseline`: only the statistical judge compares with a baseline; the threshold judge would run
    and route to one it never reads, so the pair is refused."""
    baseline = reader.boolean("analysisBaseline")
    if baseline and judge != STATISTICAL_JUDGE:
        reader.errors.append(
            f"{PROJECT}:analysisBaseline: true needs {PROJECT}:analysisJudge: {STATISTICAL_JUDGE} "
            f"(it is {judge}): only the statistical judge compares the canary with a baseline"
        )
    return baseline
