"""Promote: move the canary weight one step up after the analysis passed, or finish at 100 %."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from istio_canary import acceptance
from istio_canary.actions import context
from istio_canary.actions.commit import commit
from istio_canary.actions.context import Context, Recorded
from istio_canary.actions.errors import Blocked, Refused, typed
from istio_canary.actions.gate import Gate, gate
from istio_canary.actions.metrics_source import MetricsOptions
from istio_canary.actions.next_step import next_step
from istio_canary.actions.progress import TO_STDERR, Progress
from istio_canary.actions.publish import PublishOptions, publish
from istio_canary.exits import EXIT_OK
from istio_canary.release import steps

PROMOTE, FINISH = "promote", "finish"


@dataclass(frozen=True)
class PromoteRequest:
    """What `canary promote` is asked: the repository (any directory inside it) and stack, and its flags."""

    repo: Path
    stack: str
    force: bool = False  # promote whatever the analysis says
    finish: bool = False  # at 100%: make the canary version GA, weight back to 0
    one_commit: bool = False  # with finish: only the next of its two commits (one pull request per commit)
    metrics: MetricsOptions = field(default_factory=MetricsOptions)
    publish: PublishOptions = field(default_factory=PublishOptions)


@dataclass(frozen=True)
class PromoteResult:
    """A step made: PROMOTE (`start` -> `to`: a weight; a shape step keeps `to` as the step's weight) or FINISH."""

    action: str
    stack: str
    start: int
    to: int
    recorded: Recorded
    pushed: bool
    gate: Gate  # the analysis the step was taken on, or why there was none

    @property
    def exit_code(self) -> int:
        return EXIT_OK

    def to_json(self) -> dict[str, Any]:
        """The --json object."""
        return {
            "action": self.action,
            "stack": self.stack,
            "from": self.start,
            "to": self.to,
            **self.recorded.to_json(),
            "pushed": self.pushed,
            "analysis": self.gate.to_json(),
        }


@typed
def promote(request: PromoteRequest, progress: Progress = TO_STDERR) -> PromoteResult:
    """The next traffic step as one commit (published as asked); Refused (nothing committed) when there is none,
    Blocked when an acceptance check fails, NotPassing when the analysis does not pass."""
    with context.load(request.repo, request.stack, write=True) as ctx:
        app, schedule = ctx.view.app, ctx.view.release.steps
        weight = app.canary_weight
        step, rolled_back = next_step(ctx, required=True)
        if step.action == steps.UNKNOWN_STEP:
            raise Refused(
                f"canaryWeight {weight} is not 0 or a step of canarySteps {list(schedule)}; set it by hand or roll back"
            )
        if app.canary_version == app.ga_version and weight in (0, 100) and not (weight == 100 and request.finish):
            raise Refused(f"canaryVersion equals gaVersion ({app.ga_version}): nothing to release")
        if step.action == steps.FINISH:
            if not request.finish:
                raise Refused("the canary already has 100%; run `canary promote --finish` to make it GA")
            return _finish(request, ctx, progress)
        if request.finish:
            raise Refused(f"--finish needs the canary at 100%, it is at {weight}%")
        if step.action == steps.ROLLED_BACK and not request.force:
            # At 0% the first step needs no analysis, so without this a rolled-back version would go straight
            # back to live traffic. A newer tag from watch-images (a new canaryVersion) clears it.
            raise Refused(
                f"{app.canary_version} was rolled back ({rolled_back!r}); not promoting it again. "
                "Wait for a newer tag (canary watch-images) or use --force"
            )
        assert step.to is not None
        if step.needs_analysis or request.force:
            passed = gate(request.metrics, request.force, ctx, progress)
            why = passed.result.summary() if passed.result else "no analysis"
            if request.force:
                why = f"FORCED, analysis {passed.result.verdict.value if passed.result else 'unavailable'}: {why}"
        else:
            passed, why = Gate(), "first step; no analysis possible at 0%"
        accepted = _accept(request, ctx, progress, step.describe())
        returned = _return_ga_floor(ctx, weight)
        if step.shape:  # a shape step: still 0 % of users by weight
            ctx.stack.set("canaryShape", step.shape)
            target = step.shape
        else:
            ctx.stack.set("canaryWeight", step.to)
            if app.canary_shape:  # the last shape step gives way to the weights
                ctx.stack.set("canaryShape", "")
            target = f"{step.to}%"
        subject = f"canary: promote {ctx.view.canary_workload} {app.canary_version} to {target} ({why})"
        forced = f"Promoted with --force although {app.canary_version} was rolled back: {rolled_back}\n\n"
        now = app.canary_shape or f"{weight}%"
        body = (
            f"{forced if rolled_back else ''}{passed.evidence()}{accepted}{returned}\n\nRevert this commit to return "
            f"to {now}."
        )
        commit(ctx, progress, subject, body)
        publish(ctx, request.publish, progress, f":arrow_up: {subject}")
        return _result(ctx, request, PROMOTE, weight, step.to, passed)


def _return_ga_floor(ctx: Context, weight: int) -> str:
    """At a release's first step, GA's autoscaler minimum that the last rollback raised (gaRollbackReplicas) goes
    back to 0 in the same commit: GA serves all users until then, and scales on CPU again from here."""
    raised = ctx.stack.raw("gaRollbackReplicas")
    if weight != 0 or ctx.view.app.canary_shape or raised in (None, 0, "0"):
        return ""
    ctx.stack.set("gaRollbackReplicas", 0)
    return f"\n\nGA's autoscaler minimum returns to replicas (gaRollbackReplicas {raised} -> 0, set by a rollback)."


def _finish(request: PromoteRequest, ctx: Context, progress: Progress) -> PromoteResult:
    """Two commits: GA takes the canary's version while the canary holds 100%, then the weight goes to 0."""
    app = ctx.view.app
    passed = gate(request.metrics, request.force, ctx, progress)
    evidence = passed.evidence() + _accept(request, ctx, progress, "finish")
    if app.ga_version != app.canary_version:
        ctx.stack.set("gaVersion", app.canary_version)
        commit(
            ctx,
            progress,
            f"canary: finish {app.name} {app.canary_version} (1/2): {ctx.view.ga_workload} runs {app.canary_version}",
            "No traffic change: the canary serves 100% while the GA Deployment rolls to the new version.\n\n"
            + evidence,
        )
        if request.one_commit:
            publish(
                ctx, request.publish, progress, None
            )  # the release is not finished yet: the notice comes with step 2
            progress.say("--one-commit: step 2/2 is left for the next run")
            return _result(ctx, request, FINISH, 100, 100, passed)
    ctx.stack.set("canaryWeight", 0)
    commit(
        ctx,
        progress,
        f"canary: finish {app.name} {app.canary_version} (2/2): traffic back to {ctx.view.ga_workload}, canary 0%",
        f"{ctx.view.ga_workload} runs {app.canary_version} now; {ctx.view.canary_workload} is idle until the next "
        f"tag.\n\n{evidence}",
    )
    publish(ctx, request.publish, progress, f":white_check_mark: {app.name} {app.canary_version} is GA")
    return _result(ctx, request, FINISH, 100, 0, passed)


def _accept(request: PromoteRequest, ctx: Context, progress: Progress, step: str) -> str:
    """Run the acceptance checks that gate `step`; a failure blocks it (exit 6) unless --force. The evidence."""
    results = acceptance.run(ctx.view.release.acceptance, step)
    for result in results:
        progress.say(f"acceptance: {result.line()}")
    if acceptance.blocked(results) and not request.force:
        failed = sum(not result.passed for result in results)
        raise Blocked(
            f"{failed} of {len(results)} acceptance check(s) failed: the step to {step} waits (no rollback); "
            "fix what they check, or promote with --force"
        )
    text = acceptance.evidence(results)
    return f"\n\n{text}" if text else ""


def _result(ctx: Context, request: PromoteRequest, action: str, start: int, to: int, passed: Gate) -> PromoteResult:
    return PromoteResult(action, ctx.stack_name, start, to, ctx.recorded(), request.publish.push, passed)
