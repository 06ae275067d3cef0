"""`canary promote`: move the canary weight one step up after the analysis passed, or finish at 100 %."""

from __future__ import annotations

import argparse
from pathlib import Path

from istio_canary.actions.promote import PromoteRequest, promote
from istio_canary.commands import common
from istio_canary.exits import (
    EXIT_BLOCKED,
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
)

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
    request = PromoteRequest(
        Path(args.repo),
        args.stack,
        force=args.force,
        finish=args.finish,
        one_commit=args.one_commit,
        metrics=common.metrics_options(args),
        publish=common.publish_options(args),
    )
    out.result(promote(request, out).to_json())
    return EXIT_OK
