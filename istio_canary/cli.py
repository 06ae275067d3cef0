"""`canary`: status, analyze, promote, rollback, watch-images, notify. Every traffic step is a Git commit.

This module is the argument parser and the mapping from outcomes to exit codes; each command lives in
istio_canary/commands/, the exit codes in istio_canary/exits.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from types import ModuleType
from typing import TextIO

from istio_canary import exits
from istio_canary.actions.errors import outcome
from istio_canary.commands import agent, analyze, common, notify, plan, promote, rollback, stacks, status, watch_images
from istio_canary.exits import (  # noqa: F401 - re-exported: the tests and scripts import the codes from here
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
)
from istio_canary.metrics.prometheus import DEFAULT_TIMEOUT_S, TOKEN_ENV

COMMANDS: dict[str, ModuleType] = {
    "status": status,
    "stacks": stacks,
    "plan": plan,
    "analyze": analyze,
    "promote": promote,
    "rollback": rollback,
    "watch-images": watch_images,
    "notify": notify,
    "agent": agent,
}


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage; 2 means inconclusive here, so bad usage exits 4 like other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_REFUSED, f"{self.prog}: error: {message}\n")


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions and the exit-code epilog as written, and every option's default shown."""


def _version() -> str:
    try:
        return metadata.version("istio-canary")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _parents() -> dict[str, _Parser]:
    common_options = _Parser(add_help=False)
    common_options.add_argument(
        "--stack", default=os.environ.get("CANARY_STACK", "dev"), help="stack name (env: CANARY_STACK)"
    )
    common_options.add_argument("-C", "--repo", default=".", help="directory inside the repository")

    metrics = _Parser(add_help=False)
    metrics.add_argument(
        "--prometheus",
        help=f"Prometheus base URL, may hold user:password@ (default: env PROMETHEUS_URL, then prometheusUrl; "
        f"a bearer token comes from env {TOKEN_ENV})",
    )
    metrics.add_argument("--at", help="evaluate queries at this time: RFC 3339 or unix seconds (default: now)")
    metrics.add_argument("--timeout", type=common.seconds, default=DEFAULT_TIMEOUT_S, help="seconds per whole request")

    git = _Parser(add_help=False)
    git.add_argument("--push", action="store_true", help="push the commit(s) to --remote")
    git.add_argument("--remote", default="origin", help="remote to push to")
    git.add_argument("--no-notify", action="store_true", help="do not post to Slack (env SLACK_WEBHOOK_URL)")

    output = _Parser(add_help=False)
    output.add_argument("--json", action="store_true", help="one JSON object on stdout; human lines go to stderr")
    return {"common": common_options, "metrics": metrics, "git": git, "json": output}


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of `canary`."""
    parents = _parents()
    parser = _Parser(prog="canary", description=__doc__, epilog=exits.help_text(), formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"canary {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, module in COMMANDS.items():
        command = sub.add_parser(
            name,
            parents=[parents["common"], *(parents[use] for use in module.USES)],
            help=module.HELP,
            description=(module.__doc__ or module.HELP).strip(),
            epilog=exits.help_text(module.EXITS),
            formatter_class=_Formatter,
        )
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


class _PipeSafeStdout:
    """stdout that survives its reader going away (`canary status --json | head -c 10`): the rest of the
    output goes nowhere, and the command still finishes and exits with the code that means what happened."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())  # later writes and the final flush go to /dev/null
            os.close(devnull)
        return len(text)

    def flush(self) -> None:
        self.write("")

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `canary` console script; returns the exit code."""
    if not isinstance(sys.stdout, _PipeSafeStdout):
        try:
            sys.stdout.fileno()
            sys.stdout = _PipeSafeStdout(sys.stdout)
        except (OSError, ValueError, AttributeError):  # not a real file (pytest's capture): nothing to protect
            pass
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an exit code and one message
        code, message = outcome(exc)
        if code == EXIT_INTERNAL:
            print(message, file=sys.stderr)
        else:
            print(f"error: {message}", file=sys.stderr)
        if getattr(args, "json", False):
            name = exits.BY_CODE[code].name
            report = {"error": message, "exit_code": code, "exit": name}
            if args.command == "analyze":
                report["verdict"] = name
            print(json.dumps(report))
        return code


if __name__ == "__main__":
    sys.exit(main())
