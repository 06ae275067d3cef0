"""Analyze: judge the canary from Istio's metrics; the verdict is the exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from istio_canary.actions import context, metrics_source
from istio_canary.actions.errors import typed
from istio_canary.actions.gate import VERDICT_EXIT
from istio_canary.actions.metrics_source import MetricsOptions
from istio_canary.analysis import Analysis
from istio_canary.metrics import MetricsProvider


@dataclass(frozen=True)
class AnalyzeRequest:
    """What `canary analyze` is asked: the repository (any directory inside it), the stack, which Prometheus."""

    repo: Path
    stack: str
    metrics: MetricsOptions = field(default_factory=MetricsOptions)


@dataclass(frozen=True)
class AnalyzeResult:
    analysis: Analysis
    source: MetricsProvider

    @property
    def exit_code(self) -> int:
        """0 pass, 1 fail, 2 inconclusive."""
        return VERDICT_EXIT[self.analysis.verdict]


@typed
def analyze(request: AnalyzeRequest) -> AnalyzeResult:
    """The analysis now (or at --at); Refused without a Prometheus URL, Unavailable when it cannot answer."""
    ctx = context.load(request.repo, request.stack, write=False)
    source = metrics_source.prometheus(request.metrics, ctx.view, required=True)
    assert source is not None  # required=True
    return AnalyzeResult(
        metrics_source.analyze(ctx, source, metrics_source.at(request.metrics), request.metrics.step_age_s), source
    )
