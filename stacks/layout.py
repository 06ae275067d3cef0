"""Reads the layout keys (`clusterMode: stack`, `platformStack`, `deployApp`) and makes the other settings agree
with them: an app stack builds no mesh, monitoring or agent (its platform does), a platform stack no app or load
generator. A key that is on by default there is switched off quietly; `releaseAgent: true` (off by default, so
the stack set it) in an app stack is refused.

Split from stacks/settings.py, which calls `apply(reader, settings)` last, with its collecting reader.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Protocol

from stacks.model import LayoutSettings, Settings

# `platform` (this project and organization) or `organization/project/stack`, as `pulumi stack ls -a` shows them.
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}(/[A-Za-z0-9_.-]{1,100}){0,2}")
PLATFORM_KEYS = ("installMesh", "monitoring", "releaseAgent")  # what only the platform installs


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


def apply(reader: Reader, settings: Settings) -> Settings:
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
        if _set_true(reader, "loadGenerator"):
            reader.fail("loadGenerator", True, "false or unset with deployApp false: it needs an app in this stack")
        # The release agent stays: a platform's agent serves every app stack on it.
        settings = replace(settings, load=replace(settings.load, enabled=False))
    return replace(settings, layout=LayoutSettings(platform_stack=platform, deploy_app=deploy_app))
