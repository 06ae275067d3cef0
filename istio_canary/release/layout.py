"""Reads the layout keys (`clusterMode: stack`, `platformStack`, `deployApp`) and makes the other settings agree
with them: an app stack builds no mesh, monitoring or agent (its platform does), a platform stack no app or load
generator. A key that is on by default there is switched off quietly; `releaseAgent: true` (off by default, so
the stack set it) in an app stack is refused.

Split from istio_canary/release/settings.py, which calls `apply(reader, settings)` last, with its collecting reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import yaml

from istio_canary import safeload
from istio_canary.release.model import LayoutSettings, Settings

# `platform` (this project and organization) or `organization/project/stack`, as `pulumi stack ls -a` shows them.
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}(/[A-Za-z0-9_.-]{1,100}){0,2}")
PLATFORM_KEYS = ("installMesh", "monitoring", "releaseAgent")  # what only the platform installs
# What only a stack with an app uses: its release (versions, weight, steps, shapes, tag policies) and its shape.
# A platform stack (deployApp false) that sets one has been handed a step meant for an app stack.
APP_KEYS = (
    "image",
    "gaVersion",
    "canaryVersion",
    "canaryWeight",
    "replicas",
    "canarySteps",
    "canaryPreSteps",
    "canaryAcceptance",
    "canaryShape",
    "canaryMatch",
    "canaryTagPolicy",
    "gaTagPolicy",
    "imageTagFilter",
    "imageTagExtract",
    "imagePrereleases",
    "loadRate",
    "loadConcurrency",
    "loadPath",
)


class Reader(Protocol):
    errors: list[str]
    raw: Any
    schema: dict[str, dict[str, Any]]

    def text(self, key: str) -> str: ...
    def boolean(self, key: str) -> bool: ...
    def fail(self, key: str, value: Any, allowed: str) -> None: ...


def _set_true(reader: Reader, key: str) -> bool:
    """True, and not Pulumi.yaml's default: the engine hands the program every default as a value, so a key whose
    default is true (installMesh, monitoring, loadGenerator) cannot be told apart from one the stack set."""
    default = reader.schema[key].get("default") in (True, "true")
    return reader.raw.get(key) in (True, "true") and not default


def _set(reader: Reader, key: str) -> bool:
    """Set to something other than Pulumi.yaml's default (which the engine hands over as if set)."""
    if key not in reader.raw:
        return False
    default = reader.schema[key].get("default")
    value = reader.raw[key]
    if isinstance(value, str) and isinstance(default, list | dict):
        try:
            value = json.loads(value)  # pulumi.Config hands structured values over as JSON text
        except ValueError:
            return True
    if isinstance(value, bool) or isinstance(default, bool):
        return str(value).lower() != str(default).lower()
    return value != default and str(value) != str(default)


def app_stacks_on(directory: Path, platform: str) -> list[str]:
    """The app stacks (clusterMode stack) in `directory` whose platformStack names `platform`, for messages."""
    found = []
    for path in sorted(directory.glob("Pulumi.?*.yaml")):
        try:
            if path.stat().st_size > 1 << 20:
                continue
            # Bounded (istio_canary/safeload.py): one hostile app stack file must not stop its platform's agent.
            text = safeload.read_bytes(path, safeload.MAX_STACK_BYTES).decode("utf-8")
            config = (safeload.safe_yaml(text) or {}).get("config") or {}
        except (OSError, ValueError, yaml.YAMLError, AttributeError):  # ValueError: not UTF-8, or over a limit
            continue  # a file that cannot be read only leaves its name out of a message
        if not isinstance(config, dict):
            continue
        named = str(config.get("istio-canary:platformStack") or "")
        if str(config.get("istio-canary:clusterMode")) == "stack" and named.split("/")[-1] == platform:
            found.append(path.name[len("Pulumi.") : -len(".yaml")])
    return found


def apply(reader: Reader, settings: Settings, stack: str = "", app_stacks: Sequence[str] = ()) -> Settings:
    """`settings` with the layout recorded and the parts this stack does not build switched off."""
    platform = reader.text("platformStack")
    deploy_app = reader.boolean("deployApp")
    if settings.cluster.mode == "stack":
        if not STACK_NAME.fullmatch(platform):
            reader.fail(
                "platformStack", platform, "the platform stack's name, e.g. platform or acme/istio-canary/platform"
            )
        if not deploy_app:
            reader.fail("deployApp", False, "true: an app stack (clusterMode stack) exists to deploy its app")
        for key in PLATFORM_KEYS:
            if _set_true(reader, key):
                reader.fail(key, True, "false or unset: the platform stack installs it; an app stack deploys its app")
        settings = replace(
            settings,
            mesh=replace(settings.mesh, install=False),
            monitoring=replace(settings.monitoring, enabled=False),
            agent=replace(settings.agent, enabled=False),
        )
    elif platform:
        reader.fail("platformStack", platform, "empty unless clusterMode is stack")
    if not deploy_app:
        where = (
            f"set it in an app stack on this platform instead ({', '.join(app_stacks)}: "
            f"`pulumi config set -s {app_stacks[0]} ...`)"
            if app_stacks
            else "set it in an app stack on this platform instead (clusterMode stack, platformStack "
            + (stack or "<this stack>")
            + ")"
        )
        for key in APP_KEYS:
            if _set(reader, key):
                reader.fail(key, reader.raw[key], f"unset: a platform stack (deployApp false) has no app; {where}")
        if _set_true(reader, "loadGenerator"):
            reader.fail("loadGenerator", True, "false or unset with deployApp false: it needs an app in this stack")
        # The release agent stays: a platform's agent serves every app stack on it.
        settings = replace(settings, load=replace(settings.load, enabled=False))
    return replace(settings, layout=LayoutSettings(platform_stack=platform, deploy_app=deploy_app))
