"""How an analysis reads to people: the table `canary analyze`, `canary status`, the plan comment and every
commit's evidence print, for either judge."""

from __future__ import annotations

from datetime import UTC, datetime

from istio_canary.analysis import Analysis
from istio_canary.release.model import STATISTICAL_JUDGE


def table(result: Analysis) -> str:
    """The human table of `canary analyze`: one row per check."""
    if result.judge == STATISTICAL_JUDGE:
        return _statistical_table(result)
    rows = [("check", "canary", "ga", "rule", "result")]
    for o in result.outcomes:
        rows.append((o.check.name, o.check.show(o.canary), o.check.show(o.ga), o.check.rule(), o.result))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    when = datetime.fromtimestamp(result.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines.append(f"{result.canary.workload} vs {result.ga.workload}, window {result.window} ending {when}")
    lines.append(f"verdict: {result.verdict.value.upper()}")
    lines.extend(f"  - {reason}" for reason in result.reasons)
    return "\n".join(lines)


def _statistical_table(result: Analysis) -> str:
    """The statistical judge's account: per test its result and reason, the effect with its interval, and the
    decision rule's statistic; then the stack's own checks."""
    lines = []
    for finding in result.findings:
        lines.append(f"{finding.name:<14} {finding.result:<11} {finding.reason}")
        for detail in (finding.estimate, finding.statistic):
            if detail:
                lines.append(f"{'':<27}{detail}")
    for o in result.outcomes:
        lines.append(f"{o.check.name:<14} {o.result:<11} {o.reason}")
    when = datetime.fromtimestamp(result.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines.append(
        f"{result.canary.workload} vs {result.ga.workload}, statistical judge, the step's {result.window} ending "
        f"{when} (look {result.look})"
    )
    lines.append(f"verdict: {result.verdict.value.upper()}")
    lines.extend(f"  - {reason}" for reason in result.reasons)
    return "\n".join(lines)
