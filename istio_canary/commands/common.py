"""What the commands share: the output channel (human lines, or one JSON object), the --timeout option, and
the commands' options as the actions library (istio_canary/actions/) takes them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from istio_canary.actions import context, metrics_source
from istio_canary.actions.context import Context
from istio_canary.actions.metrics_source import MetricsOptions
from istio_canary.actions.publish import PublishOptions
from istio_canary.metrics import MetricsProvider
from istio_canary.stackfile import StackView


class Output:
    """Where a command writes: human lines on stdout, or with --json one JSON object on stdout and the human
    lines on stderr (so a script can parse stdout and a person still sees what happened). Warnings: stderr."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = bool(getattr(args, "json", False))

    def say(self, text: str) -> None:
        print(text, file=sys.stderr if self.json else sys.stdout)

    def warn(self, text: str) -> None:
        print(text, file=sys.stderr)

    def result(self, data: dict[str, Any]) -> None:
        if self.json:
            print(json.dumps(data, indent=2))


def seconds(value: str) -> float:
    """A --timeout: a number of seconds above 0 (0 would make every request fail at once)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r}: must be a number of seconds above 0")
    return number


def metrics_options(args: argparse.Namespace) -> MetricsOptions:
    """--prometheus, --at, --timeout."""
    return MetricsOptions(args.prometheus, args.at, args.timeout)


def publish_options(args: argparse.Namespace) -> PublishOptions:
    """--push, --remote, --no-notify."""
    return PublishOptions(args.push, args.remote, not args.no_notify)


def repository(args: argparse.Namespace) -> Path:
    """The work tree holding -C (the directory itself when it is in none: reading needs no git)."""
    return context.repository(Path(args.repo))


def load(args: argparse.Namespace, *, write: bool, for_rollback: bool = False) -> Context:
    """The stack of -C and --stack (istio_canary/actions/context.py)."""
    return context.load(Path(args.repo), args.stack, write=write, for_rollback=for_rollback)


def prometheus(args: argparse.Namespace, view: StackView, *, required: bool) -> MetricsProvider | None:
    """The Prometheus to ask (istio_canary/actions/metrics_source.py)."""
    return metrics_source.prometheus(metrics_options(args), view, required=required)


def at(args: argparse.Namespace) -> float:
    """--at as unix seconds (now by default)."""
    return metrics_source.at(metrics_options(args))
