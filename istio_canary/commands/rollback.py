"""`canary rollback`: all traffic back to GA. The commit carries the analysis that justified it when one can be
had; nothing (Prometheus down or answering errors or garbage, a refused Prometheus URL, Slack down, an invalid
weight) stops it: the evidence is best-effort, gathered under one deadline, and its absence is said in the
message."""

from __future__ import annotations

import argparse
import sys

from istio_canary import analysis, httpclient
from istio_canary.analysis import Analysis
from istio_canary.commands import common
from istio_canary.exits import EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED
from istio_canary.metrics import BadQuery, MetricsProvider, MetricsUnavailable
from istio_canary.release.rules import shown
from istio_canary.release.settings import ConfigError, parse, schema
from istio_canary.stackfile import StackFile, is_release_key

HELP = "canary weight to 0, no mirror, no header route"
EXITS = (EXIT_OK, EXIT_REFUSED, EXIT_INTERNAL)
USES = ("metrics", "git", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", help="why, for the commit message and Slack")
    parser.add_argument(
        "--ga-min-replicas",
        type=_count,
        metavar="N",
        help="the pods GA and the canary run now (the agent reads them from the cluster); when GA is autoscaled "
        "(appMaxReplicas), the rollback commit raises GA's autoscaler minimum to this (gaRollbackReplicas), so GA "
        "can take all traffic at once (default: twice replicas, both Deployments' minimum)",
    )


CAPACITY_KEYS = ("replicas", "appMaxReplicas", "gaRollbackReplicas")


def _count(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        raise argparse.ArgumentTypeError(f"{value[:20]!r}: a number of pods from 1 to 1000")
    return int(value)


def ga_floor(stack: StackFile, serving: int | None) -> tuple[int | None, str]:
    """The gaRollbackReplicas this rollback writes (None: leave it), and a line for the message saying why.

    Only when GA is autoscaled: then it runs for its share of the traffic, and the whole arrives at once. The
    floor is the pods that served the release (`serving`, else both Deployments' minimum, 2 x replicas), at
    most appMaxReplicas. Read leniently, as the rollback reads the stack: a problem here never stops it."""
    try:
        known = schema(stack.project_file)
        if "gaRollbackReplicas" not in known:  # an older Pulumi.yaml: its program would refuse the key
            return None, ""
        values = {k: v for k, v in stack.values().items() if is_release_key(k, known) or k in CAPACITY_KEYS}
        values.update(canaryWeight=0, canaryShape="")  # the weight is being repaired or reset; not asked here
        app = parse(values, {}, check_environment=False, project_file=stack.project_file).app
    except ConfigError as exc:
        return None, f"GA's autoscaler minimum is left as it is: {str(exc).splitlines()[-1].strip()}\n\n"
    if not app.shape.max_replicas:
        return None, ""
    wanted = serving if serving is not None else 2 * app.replicas
    source = "ran" if serving is not None else "run at least (from the config)"
    floor = min(max(wanted, app.replicas), app.shape.max_replicas)
    if floor <= max(app.replicas, app.ga_rollback_replicas):
        return None, ""
    note = (
        f"GA's autoscaler minimum is raised to {floor} pods (gaRollbackReplicas): GA and the canary {source} "
        f"{wanted}, and GA takes all their traffic at once. The next release's first step sets it back to 0.\n\n"
    )
    return floor, note


def gather(args: argparse.Namespace, ctx: common.Context) -> tuple[Analysis | None, MetricsProvider | None, str]:
    """The analysis to record and where it came from, or why there is none ("" when no Prometheus is set).
    Never raises: a rollback does not depend on its evidence."""
    try:
        source = common.prometheus(args, ctx.view, required=False)
    except common.Refused as exc:  # e.g. credentials over plain http: not sent, and the rollback goes on
        return None, None, str(exc)
    if source is None:
        return None, None, ""
    try:
        with httpclient.Deadline(args.timeout) as deadline:  # one deadline for all the analysis' queries
            return analysis.analyze(ctx.view, source.within(deadline), common.at(args)), source, ""
    except Exception as exc:  # noqa: BLE001 - any failure (bad_data, garbage, a bad --at, a bug) only loses evidence
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, MetricsUnavailable | BadQuery | analysis.BadCheckQuery | common.Refused):
            why = f"{type(exc).__name__}: {why}"
        return None, source, why


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
        result, source, missing = gather(args, ctx)
        if missing:
            print(f"warning: rolling back without evidence: {missing}", file=sys.stderr)
            evidence = f"Evidence missing: a rollback never waits for the analysis. Analysis unavailable: {missing}"
        else:
            evidence = common.evidence(result, source)
        why = result.summary() if result else ("evidence missing" if missing else "no analysis")
        floor, capacity = (None, "")
        if app.canary_weight != 0 or invalid is not None:  # GA takes back a share of users (not a mirror's copy)
            floor, capacity = ga_floor(ctx.stack, args.ga_min_replicas)
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
        reason = f"Reason: {args.reason}\n\n" if args.reason else ""
        common.commit(ctx, out, subject, f"{reason}{note}{capacity}{evidence}")
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
                "evidence_error": missing or None,
                "ga_rollback_replicas": floor,
            }
        )
    return EXIT_OK
