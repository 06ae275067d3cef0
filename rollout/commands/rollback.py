"""`canary rollback`: all traffic back to GA. The commit carries the analysis that justified it when one can be
had; nothing (Prometheus down, Slack down, an invalid weight) stops it."""

from __future__ import annotations

import argparse
import sys

from rollout import analysis
from rollout.commands import common
from rollout.exits import EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED
from rollout.prometheus import PrometheusError
from stacks.rules import shown

HELP = "canary weight to 0, no mirror, no header route"
EXITS = (EXIT_OK, EXIT_REFUSED, EXIT_INTERNAL)
USES = ("metrics", "git", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", help="why, for the commit message and Slack")


def run(args: argparse.Namespace) -> int:
    out = common.Output(args)
    with common.load(args, write=True, for_rollback=True) as ctx:
        app = ctx.view.app
        invalid = ctx.invalid_weight
        if app.canary_weight == 0 and not app.canary_shape and invalid is None:
            out.say(f"canary weight is already 0% in {ctx.stack.path.name}; nothing to roll back")
            out.result({"action": "none", "stack": ctx.stack_name, "from": 0, "to": 0, "commits": [], "pushed": False})
            return EXIT_OK
        note = ""
        if invalid is not None:
            print(f"warning: canaryWeight {shown(invalid)} is invalid; rolling back to 0 anyway", file=sys.stderr)
            note = f"The previous canaryWeight {shown(invalid)} was invalid (not a whole number from 0 to 100).\n\n"
        previous = f"{app.canary_weight}%" if invalid is None else f"invalid weight {shown(invalid)}"
        if app.canary_shape:  # from a shape step: GA only, no mirror, no header route
            previous = f"the {app.canary_shape} step"
        source = common.prometheus(args, ctx.view, required=False)
        result = None
        if source:
            try:
                result = analysis.analyze(ctx.view, source, common.at(args))
            except PrometheusError as exc:  # evidence is nice to have; a rollback never waits for it
                note += f"Analysis unavailable: {exc}\n\n"
                print(f"warning: {exc}", file=sys.stderr)
        why = result.summary() if result else "no analysis"
        if app.canary_weight != 0 or invalid is not None:
            ctx.stack.set("canaryWeight", 0)
        if app.canary_shape:
            ctx.stack.set("canaryShape", "")
        subject = f"canary: roll back {ctx.view.canary_workload} {app.canary_version} from {previous} to 0% ({why})"
        reason = f"Reason: {args.reason}\n\n" if args.reason else ""
        common.commit(ctx, out, subject, f"{reason}{note}{common.evidence(result, source)}")
        common.publish(ctx, args, out, f":rewind: {subject}" + (f" Reason: {args.reason}" if args.reason else ""))
        out.result(
            {
                "action": "rollback",
                "stack": ctx.stack_name,
                "from": app.canary_weight if invalid is None else shown(invalid),
                "to": 0,
                **ctx.recorded(),
                "pushed": bool(args.push),
                "analysis": result.to_json() if result else None,
            }
        )
    return EXIT_OK
