"""`canary promote`: move the canary weight one step up after the analysis passed, or finish at 100 %."""

from __future__ import annotations

import argparse

from istio_canary import acceptance
from istio_canary.commands import common, status
from istio_canary.exits import (
    EXIT_BLOCKED,
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
)
from istio_canary.release import steps

HELP = "next traffic step after a passing analysis"
EXITS = (EXIT_OK, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_UNAVAILABLE, EXIT_REFUSED, EXIT_INTERNAL, EXIT_BLOCKED)
USES = ("metrics", "git", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="promote whatever the analysis says")
    parser.add_argument("--finish", action="store_true", help="at 100%%: make the canary version GA, weight back to 0")
    parser.add_argument(
        "--one-commit",
        action="store_true",
        help="with --finish: make only the next of the two commits (one pull request per commit)",
    )


def run(args: argparse.Namespace) -> int:
    out = common.Output(args)
    with common.load(args, write=True) as ctx:
        app, schedule = ctx.view.app, ctx.view.release.steps
        weight = app.canary_weight
        step, rolled_back = status.next_step(ctx, required=True)
        if step.action == steps.UNKNOWN_STEP:
            raise common.Refused(
                f"canaryWeight {weight} is not 0 or a step of canarySteps {list(schedule)}; set it by hand or roll back"
            )
        if app.canary_version == app.ga_version and weight in (0, 100) and not (weight == 100 and args.finish):
            raise common.Refused(f"canaryVersion equals gaVersion ({app.ga_version}): nothing to release")
        if step.action == steps.FINISH:
            if not args.finish:
                raise common.Refused("the canary already has 100%; run `canary promote --finish` to make it GA")
            return _finish(args, ctx, out)
        if args.finish:
            raise common.Refused(f"--finish needs the canary at 100%, it is at {weight}%")
        if step.action == steps.ROLLED_BACK and not args.force:
            # At 0% the first step needs no analysis, so without this a rolled-back version would go straight
            # back to live traffic. A newer tag from watch-images (a new canaryVersion) clears it.
            raise common.Refused(
                f"{app.canary_version} was rolled back ({rolled_back!r}); not promoting it again. "
                "Wait for a newer tag (canary watch-images) or use --force"
            )
        assert step.to is not None
        if step.needs_analysis or args.force:
            gate = common.gate(args, ctx, out)
            why = gate.result.summary() if gate.result else "no analysis"
            if args.force:
                why = f"FORCED, analysis {gate.result.verdict.value if gate.result else 'unavailable'}: {why}"
        else:
            gate, why = common.Gate(), "first step; no analysis possible at 0%"
        accepted = _accept(args, ctx, out, step.describe())
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
            f"{forced if rolled_back else ''}{gate.evidence()}{accepted}{returned}\n\nRevert this commit to return "
            f"to {now}."
        )
        common.commit(ctx, out, subject, body)
        common.publish(ctx, args, out, f":arrow_up: {subject}")
        out.result(_result(ctx, args, "promote", weight, step.to, gate))
    return EXIT_OK


def _return_ga_floor(ctx: common.Context, weight: int) -> str:
    """At a release's first step, GA's autoscaler minimum that the last rollback raised (gaRollbackReplicas) goes
    back to 0 in the same commit: GA serves all users until then, and scales on CPU again from here."""
    raised = ctx.stack.raw("gaRollbackReplicas")
    if weight != 0 or ctx.view.app.canary_shape or raised in (None, 0, "0"):
        return ""
    ctx.stack.set("gaRollbackReplicas", 0)
    return f"\n\nGA's autoscaler minimum returns to replicas (gaRollbackReplicas {raised} -> 0, set by a rollback)."


def _finish(args: argparse.Namespace, ctx: common.Context, out: common.Output) -> int:
    """Two commits: GA takes the canary's version while the canary holds 100%, then the weight goes to 0."""
    app = ctx.view.app
    gate = common.gate(args, ctx, out)
    evidence = gate.evidence() + _accept(args, ctx, out, "finish")
    if app.ga_version != app.canary_version:
        ctx.stack.set("gaVersion", app.canary_version)
        common.commit(
            ctx,
            out,
            f"canary: finish {app.name} {app.canary_version} (1/2): {ctx.view.ga_workload} runs {app.canary_version}",
            "No traffic change: the canary serves 100% while the GA Deployment rolls to the new version.\n\n"
            + evidence,
        )
        if args.one_commit:
            common.publish(ctx, args, out, None)  # the release is not finished yet: the notice comes with step 2
            out.say("--one-commit: step 2/2 is left for the next run")
            out.result(_result(ctx, args, "finish", 100, 100, gate))
            return EXIT_OK
    ctx.stack.set("canaryWeight", 0)
    common.commit(
        ctx,
        out,
        f"canary: finish {app.name} {app.canary_version} (2/2): traffic back to {ctx.view.ga_workload}, canary 0%",
        f"{ctx.view.ga_workload} runs {app.canary_version} now; {ctx.view.canary_workload} is idle until the next "
        f"tag.\n\n{evidence}",
    )
    common.publish(ctx, args, out, f":white_check_mark: {app.name} {app.canary_version} is GA")
    out.result(_result(ctx, args, "finish", 100, 0, gate))
    return EXIT_OK


def _accept(args: argparse.Namespace, ctx: common.Context, out: common.Output, step: str) -> str:
    """Run the acceptance checks that gate `step`; a failure blocks it (exit 6) unless --force. The evidence."""
    results = acceptance.run(ctx.view.release.acceptance, step)
    for result in results:
        out.say(f"acceptance: {result.line()}")
    if acceptance.blocked(results) and not args.force:
        failed = sum(not result.passed for result in results)
        raise common.Refused(
            f"{failed} of {len(results)} acceptance check(s) failed: the step to {step} waits (no rollback); "
            "fix what they check, or promote with --force",
            EXIT_BLOCKED,
        )
    text = acceptance.evidence(results)
    return f"\n\n{text}" if text else ""


def _result(ctx: common.Context, args: argparse.Namespace, action: str, start: int, to: int, gate: common.Gate) -> dict:
    return {
        "action": action,
        "stack": ctx.stack_name,
        "from": start,
        "to": to,
        **ctx.recorded(),
        "pushed": bool(args.push),
        "analysis": gate.to_json(),
    }
