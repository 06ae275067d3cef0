"""`canary analyze`: judge the canary from Istio's metrics; the exit code is the verdict."""

from __future__ import annotations

import argparse
from pathlib import Path

from istio_canary import analysis_text
from istio_canary.actions.analyze import AnalyzeRequest, analyze
from istio_canary.commands import common
from istio_canary.exits import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE

HELP = "judge the canary from Istio metrics"
EXITS = (EXIT_OK, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_UNAVAILABLE, EXIT_REFUSED, EXIT_INTERNAL)
USES = ("metrics", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def run(args: argparse.Namespace) -> int:
    out = common.Output(args)
    result = analyze(AnalyzeRequest(Path(args.repo), args.stack, common.metrics_options(args)))
    if out.json:
        out.result(result.analysis.to_json())
    else:
        out.say(analysis_text.table(result.analysis))
    return result.exit_code
