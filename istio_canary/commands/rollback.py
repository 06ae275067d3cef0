"""`canary rollback`: all traffic back to GA. The commit carries the analysis that justified it when one can be
had; nothing (Prometheus down or answering errors or garbage, a refused Prometheus URL, Slack down, an invalid
weight) stops it: the evidence is best-effort, gathered under one deadline, and its absence is said in the
message."""

from __future__ import annotations

import argparse
from pathlib import Path

from istio_canary.actions.rollback import RollbackRequest, rollback
from istio_canary.commands import common
from istio_canary.exits import EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED

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


def _count(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        raise argparse.ArgumentTypeError(f"{value[:20]!r}: a number of pods from 1 to 1000")
    return int(value)


def run(args: argparse.Namespace) -> int:
    out = common.Output(args)
    request = RollbackRequest(
        Path(args.repo),
        args.stack,
        reason=args.reason,
        ga_min_replicas=args.ga_min_replicas,
        metrics=common.metrics_options(args),
        publish=common.publish_options(args),
    )
    out.result(rollback(request, out).to_json())
    return EXIT_OK
