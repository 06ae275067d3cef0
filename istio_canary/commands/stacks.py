"""`canary stacks`: every stack in the repository, what it deploys (everything, a platform, or one app on a
platform stack) and where its release stands. Each app stack is its own release: run the other commands with
`--stack <name>`. An invalid stack file is listed with its error, and the exit code is 4."""

from __future__ import annotations

import argparse
from typing import Any

from istio_canary.commands import common
from istio_canary.exits import EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED
from istio_canary.release import steps
from istio_canary.release.settings import ConfigError
from istio_canary.stackfile import StackFile, StackView

HELP = "list the repository's stacks: platform, apps, their versions and weights"
EXITS = (EXIT_OK, EXIT_REFUSED, EXIT_INTERNAL)
USES = ("json",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own (--stack is ignored: every stack is listed)."""


def role(view: StackView) -> str:
    """`app on platform`, `platform`, or `platform + app` (one stack holding both, as the dev stack does)."""
    if view.layout.platform_stack:
        return f"app on {view.layout.platform_stack}"
    return "platform + app" if view.layout.deploy_app else "platform"


def describe(name: str, view: StackView) -> dict[str, Any]:
    app = view.app
    entry: dict[str, Any] = {"stack": name, "role": role(view), "platform": view.layout.platform_stack or None}
    if view.layout.deploy_app:
        step = steps.next_step(
            app.canary_weight,
            view.release.steps,
            app.ga_version,
            app.canary_version,
            shapes=view.release.shapes,
            shape=app.canary_shape,
        )
        entry |= {
            "app": app.name,
            "namespace": app.namespace,
            "ga": app.ga_version,
            "canary": app.canary_version,
            "weight": app.canary_weight,
            "next": step.describe(),
        }
    return entry


def run(args: argparse.Namespace) -> int:
    out = common.Output(args)
    repo = common.repository(args)
    listed: list[dict[str, Any]] = []
    invalid = 0
    for name in StackFile.names(repo):
        try:
            entry = describe(name, StackFile.for_stack(repo, name).view())
        except ConfigError as exc:
            invalid += 1
            entry = {"stack": name, "error": str(exc).splitlines()[0]}
        listed.append(entry)
    width = max((len(entry["stack"]) for entry in listed), default=5)
    for entry in listed:
        if "error" in entry:
            out.say(f"{entry['stack']:<{width}}  INVALID: {entry['error']}")
        elif "app" in entry:
            out.say(
                f"{entry['stack']:<{width}}  {entry['role']:<22} {entry['app']} in {entry['namespace']}: "
                f"GA {entry['ga']}, canary {entry['canary']} at {entry['weight']}%, next {entry['next']}"
            )
        else:
            out.say(f"{entry['stack']:<{width}}  {entry['role']}")
    out.result({"stacks": listed})
    return EXIT_REFUSED if invalid else EXIT_OK
