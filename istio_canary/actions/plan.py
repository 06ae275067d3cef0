"""Plan: what merging a stack commit does to traffic, from `pulumi preview --json` and the stack file as the commit
leaves it: the kind of step, the traffic before and after, the changes that are not the one expected for it, and
the Markdown for the pull request (with the latest analysis when Prometheus answers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from istio_canary import plan, plan_markdown
from istio_canary.actions import context, metrics_source
from istio_canary.actions.errors import Refused, typed
from istio_canary.actions.metrics_source import MetricsOptions
from istio_canary.exits import EXIT_OK, EXIT_UNEXPECTED
from istio_canary.metrics import MetricsUnavailable


@dataclass(frozen=True)
class PlanRequest:
    """What `canary plan` is asked: the repository (any directory inside it) and stack, the preview's JSON (read
    within istio_canary/safeload.py's limits by the caller) and where it came from, for messages."""

    repo: Path
    stack: str
    preview: dict[str, Any]
    preview_source: str = "-"  # --preview: a file, or - for stdin
    strict: bool = False  # an unexpected change is exit 7
    dashboard_url: str = ""  # linked under the analysis
    metrics: MetricsOptions = field(default_factory=MetricsOptions)


@dataclass(frozen=True)
class PlanResult:
    stack: str
    reading: plan.Plan
    headline: str
    markdown: str
    strict: bool = False

    @property
    def exit_code(self) -> int:
        return EXIT_UNEXPECTED if self.reading.unexpected and self.strict else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        """The --json object."""
        return {
            "stack": self.stack,
            "kind": self.reading.kind,
            "headline": self.headline,
            "before": self.reading.before.__dict__,
            "after": self.reading.after.__dict__,
            "unexpected": [change.words() for change in self.reading.unexpected],
            "markdown": self.markdown,
        }


@typed
def plan_merge(request: PlanRequest) -> PlanResult:
    """Read the preview against the stack; Refused when it is not a preview's JSON of the expected shape."""
    with context.load(request.repo, request.stack, write=False) as ctx:
        app = ctx.view.app
        try:
            reading = plan.read(request.preview, app)
        except plan.MalformedPreview as exc:  # JSON of the wrong shape: bad input (exit 4), never a bug (exit 5)
            raise Refused(f"--preview {request.preview_source}: {exc}") from None
        result, note = None, ""
        source = metrics_source.prometheus(request.metrics, ctx.view, required=False)
        if source is None:
            note = "no Prometheus URL given (--prometheus, $PROMETHEUS_URL or prometheusUrl)"
        else:
            try:
                result = metrics_source.analyze(
                    ctx, source, metrics_source.at(request.metrics), request.metrics.step_age_s
                )
            except MetricsUnavailable as exc:
                note = f"unavailable ({exc})"
        policy = ctx.view.release.canary_tags  # a new canary tag is ordered by the stack's own policy
        text = plan_markdown.markdown(reading, app, ctx.stack_name, result, note, request.dashboard_url, policy)
        headline = plan_markdown.headline(reading, app, policy)
        return PlanResult(ctx.stack_name, reading, headline, text, request.strict)
