"""The analysis that must pass before traffic moves, and the account of it a decision's commit carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from istio_canary import analysis_text
from istio_canary.actions import metrics_source
from istio_canary.actions.context import Context
from istio_canary.actions.errors import Refused
from istio_canary.actions.metrics_source import MetricsOptions
from istio_canary.actions.progress import Progress
from istio_canary.analysis import Analysis, Verdict
from istio_canary.exits import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_OK
from istio_canary.metrics import MetricsProvider, MetricsUnavailable

VERDICT_EXIT = {Verdict.PASS: EXIT_OK, Verdict.FAIL: EXIT_FAIL, Verdict.INCONCLUSIVE: EXIT_INCONCLUSIVE}


def evidence(result: Analysis | None, source: MetricsProvider | None, unavailable: str = "") -> str:
    """The commit body's account of the analysis a decision was taken on."""
    if unavailable:
        return f"Analysis unavailable: {unavailable}"
    if result is None:
        return "No analysis recorded."
    where = f" from {source.shown}" if source else ""
    return f"Analysis{where}:\n\n{analysis_text.table(result)}"


@dataclass
class Gate:
    """What the analysis before a traffic step said: a result, or why there is none."""

    result: Analysis | None = None
    source: MetricsProvider | None = None
    unavailable: str = ""  # the metrics error when --force went ahead without an analysis

    def evidence(self) -> str:
        return evidence(self.result, self.source, self.unavailable)

    def to_json(self) -> dict[str, Any] | None:
        if self.result:
            return self.result.to_json()
        return {"error": self.unavailable} if self.unavailable else None


class NotPassing(Refused):
    """The gate's analysis did not pass (exit 1 or 2, the verdict's code): nothing moves."""

    def __init__(self, message: str, result: Analysis) -> None:
        super().__init__(message, VERDICT_EXIT[result.verdict])
        self.result = result


def gate(options: MetricsOptions, force: bool, ctx: Context, progress: Progress) -> Gate:
    """Run the analysis that must pass before traffic moves; --force records it but does not obey it."""
    source = metrics_source.prometheus(options, ctx.view, required=not force)
    if source is None:
        return Gate()
    try:
        result = metrics_source.analyze(ctx, source, metrics_source.at(options), options.step_age_s)
    except MetricsUnavailable as exc:
        if not force:
            raise
        progress.warn(f"warning: --force: no analysis ({exc})")
        return Gate(source=source, unavailable=str(exc))
    progress.say(analysis_text.table(result))
    if result.verdict is not Verdict.PASS and not force:
        raise NotPassing(f"analysis is {result.verdict.value}; not promoting (use --force to override)", result)
    return Gate(result=result, source=source)
