"""Roll back: all traffic back to GA. The commit carries the analysis that justified it when one can be had;
nothing (Prometheus down or answering errors or garbage, a refused Prometheus URL, Slack down, an invalid weight)
stops it: the evidence is best-effort, gathered under one deadline, and its absence is said in the message."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from istio_canary import analysis, httpclient
from istio_canary.actions import context, metrics_source
from istio_canary.actions.commit import commit
from istio_canary.actions.context import Context, Recorded
from istio_canary.actions.errors import Refused, typed
from istio_canary.actions.gate import evidence as account
from istio_canary.actions.metrics_source import MetricsOptions
from istio_canary.actions.progress import TO_STDERR, Progress
from istio_canary.actions.publish import PublishOptions, publish
from istio_canary.analysis import Analysis
from istio_canary.exits import EXIT_OK
from istio_canary.metrics import BadQuery, MetricsProvider, MetricsUnavailable
from istio_canary.release.names import subsets
from istio_canary.release.rules import shown
from istio_canary.release.settings import ConfigError, parse, schema
from istio_canary.stackfile import StackFile, is_release_key

ROLLBACK, NONE = "rollback", "none"
CAPACITY_KEYS = ("replicas", "appMaxReplicas", "gaRollbackReplicas")


@dataclass(frozen=True)
class RollbackRequest:
    """What `canary rollback` is asked: the repository (any directory inside it) and stack, and its flags."""

    repo: Path
    stack: str
    reason: str | None = None  # why, for the commit message and Slack
    ga_min_replicas: int | None = None  # the pods GA and the canary run now (GA's autoscaler floor); None: config
    metrics: MetricsOptions = field(default_factory=MetricsOptions)
    publish: PublishOptions = field(default_factory=PublishOptions)


@dataclass(frozen=True)
class RollbackResult:
    """ROLLBACK (`start`: the weight it left, or the invalid value in words) or NONE (already at 0%)."""

    action: str
    stack: str
    start: int | str
    recorded: Recorded = field(default_factory=Recorded)
    pushed: bool = False
    analysis: Analysis | None = None
    evidence_error: str | None = None  # why the commit carries no analysis
    ga_rollback_replicas: int | None = None  # GA's autoscaler floor written, if any
    to: int = 0

    @property
    def exit_code(self) -> int:
        return EXIT_OK

    def to_json(self) -> dict[str, Any]:
        """The --json object."""
        if self.action == NONE:
            return {"action": NONE, "stack": self.stack, "from": 0, "to": 0, "commits": [], "pushed": False}
        return {
            "action": self.action,
            "stack": self.stack,
            "from": self.start,
            "to": self.to,
            **self.recorded.to_json(),
            "pushed": self.pushed,
            "analysis": self.analysis.to_json() if self.analysis else None,
            "evidence_error": self.evidence_error,
            "ga_rollback_replicas": self.ga_rollback_replicas,
        }


def ga_floor(stack: StackFile, serving: int | None) -> tuple[int | None, str]:
    """The gaRollbackReplicas this rollback writes (None: leave it), and a line for the message saying why.

    Only when GA is autoscaled: then it runs for its share of the traffic, and the whole arrives at once. The
    floor is the pods that served the release (`serving`, else each Deployment's minimum: 2 x replicas, 3 x with a
    baseline), at most appMaxReplicas. Read leniently, as the rollback reads the stack: a problem here never stops it."""
    try:
        known = schema(stack.project_file)
        if "gaRollbackReplicas" not in known:  # an older Pulumi.yaml: its program would refuse the key
            return None, ""
        values = {k: v for k, v in stack.values().items() if is_release_key(k, known) or k in CAPACITY_KEYS}
        values.update(canaryWeight=0, canaryShape="")  # the weight is being repaired or reset; not asked here
        settings = parse(values, {}, check_environment=False, project_file=stack.project_file)
        app, release = settings.app, settings.release
    except ConfigError as exc:
        return None, f"GA's autoscaler minimum is left as it is: {str(exc).splitlines()[-1].strip()}\n\n"
    if not app.app_shape.max_replicas:
        return None, ""
    runs = subsets(release.baseline)  # with a baseline, GA takes its share too
    wanted = serving if serving is not None else len(runs) * app.replicas
    source = "ran" if serving is not None else "run at least (from the config)"
    floor = min(max(wanted, app.replicas), app.app_shape.max_replicas)
    if floor <= max(app.replicas, app.ga_rollback_replicas):
        return None, ""
    who = "GA, the baseline and the canary" if release.baseline else "GA and the canary"
    note = (
        f"GA's autoscaler minimum is raised to {floor} pods (gaRollbackReplicas): {who} {source} "
        f"{wanted}, and GA takes all their traffic at once. The next release's first step sets it back to 0.\n\n"
    )
    return floor, note


def gather(options: MetricsOptions, ctx: Context) -> tuple[Analysis | None, MetricsProvider | None, str]:
    """The analysis to record and where it came from, or why there is none ("" when no Prometheus is set).
    Never raises: a rollback does not depend on its evidence."""
    try:
        source = metrics_source.prometheus(options, ctx.view, required=False)
    except Refused as exc:  # e.g. credentials over plain http: not sent, and the rollback goes on
        return None, None, str(exc)
    if source is None:
        return None, None, ""
    try:
        with httpclient.Deadline(options.timeout) as deadline:  # one deadline for all the analysis' queries
            return (
                metrics_source.analyze(ctx, source.within(deadline), metrics_source.at(options), options.step_age_s),
                source,
                "",
            )
    except Exception as exc:  # noqa: BLE001 - any failure (bad_data, garbage, a bad --at, a bug) only loses evidence
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, MetricsUnavailable | BadQuery | analysis.BadCheckQuery | Refused):
            why = f"{type(exc).__name__}: {why}"
        return None, source, why


@typed
def rollback(request: RollbackRequest, progress: Progress = TO_STDERR) -> RollbackResult:
    """Canary weight to 0, no mirror, no header route, as one commit (published as asked). Refused only when the
    commit cannot be made (another writer, a dirty tree, an unreadable release); never for want of evidence."""
    with context.load(request.repo, request.stack, write=True, for_rollback=True) as ctx:
        app = ctx.view.app
        invalid = ctx.invalid_weight
        if app.canary_weight == 0 and not app.canary_shape and invalid is None:
            progress.say(f"canary weight is already 0% in {ctx.stack.path.name}; nothing to roll back")
            return RollbackResult(NONE, ctx.stack_name, 0)
        note = ""
        if invalid is not None:
            progress.warn(f"warning: canaryWeight {shown(invalid)} is invalid; rolling back to 0 anyway")
            note = f"The previous canaryWeight {shown(invalid)} was invalid (not a whole number from 0 to 100).\n\n"
        previous = f"{app.canary_weight}%" if invalid is None else f"invalid weight {shown(invalid)}"
        if app.canary_shape:  # from a shape step: GA only, no mirror, no header route
            previous = f"the {app.canary_shape} step"
        result, source, missing = gather(request.metrics, ctx)
        if missing:
            progress.warn(f"warning: rolling back without evidence: {missing}")
            evidence = f"Evidence missing: a rollback never waits for the analysis. Analysis unavailable: {missing}"
        else:
            evidence = account(result, source)
        why = result.summary() if result else ("evidence missing" if missing else "no analysis")
        floor, capacity = (None, "")
        if app.canary_weight != 0 or invalid is not None:  # GA takes back a share of users (not a mirror's copy)
            floor, capacity = ga_floor(ctx.stack, request.ga_min_replicas)
        if floor is not None:
            try:
                ctx.stack.set("gaRollbackReplicas", floor)
            except ConfigError as exc:  # an edit the file cannot take as one value: the rollback goes on without it
                floor, capacity = None, f"GA's autoscaler minimum is left as it is: {exc}\n\n"
        if app.canary_weight != 0 or invalid is not None:
            ctx.stack.set("canaryWeight", 0)
        if app.canary_shape:
            ctx.stack.set("canaryShape", "")
        subject = f"canary: roll back {ctx.view.canary_workload} {app.canary_version} from {previous} to 0% ({why})"
        reason = f"Reason: {request.reason}\n\n" if request.reason else ""
        commit(ctx, progress, subject, f"{reason}{note}{capacity}{evidence}")
        notice = f":rewind: {subject}" + (f" Reason: {request.reason}" if request.reason else "")
        publish(ctx, request.publish, progress, notice)
        return RollbackResult(
            ROLLBACK,
            ctx.stack_name,
            app.canary_weight if invalid is None else shown(invalid),
            ctx.recorded(),
            request.publish.push,
            result,
            missing or None,
            floor,
        )
