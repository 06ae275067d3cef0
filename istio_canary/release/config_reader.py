"""Reading stack config: the schema Pulumi.yaml declares, and a reader that takes each key's value with its
default, checks its type and collects every error, so one run reports every bad key at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from istio_canary import safeload
from istio_canary.release.rules import (
    INT,
    shown,
)

PROJECT = "istio-canary"
PROJECT_FILE = Path(__file__).resolve().parents[2] / "Pulumi.yaml"


# Stack keys the engine must not require in every stack, so they are not in Pulumi.yaml: secrets that only some
# stacks have (the Slack webhook: `canary notify` and the agent; the agent's Git token). load() reads them.
UNDECLARED_KEYS = ("slackWebhookUrl", "agentGitToken")


class ConfigError(ValueError):
    """One or more stack config values are invalid; the message lists each key, value and rule."""


@cache
def schema(project_file: Path = PROJECT_FILE) -> dict[str, dict[str, Any]]:
    """The `config:` schema of a Pulumi.yaml: key -> {type, default, description}.

    The program reads the one beside its source. The `canary` tool passes the one in the repository it works
    on: an installed tool (a wheel, pipx, a container) has no source tree, and the repository's project file
    is the one `pulumi preview` will apply.
    """
    try:
        # Bounded (size, nesting, aliases): a pull request can change Pulumi.yaml, and every command reads it.
        text = safeload.read_bytes(project_file, safeload.MAX_PROJECT_BYTES).decode("utf-8")
        project = safeload.safe_yaml(text)
    except FileNotFoundError:
        raise ConfigError(f"{project_file}: no Pulumi.yaml here (is -C the repository?)") from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8, or over a safeload limit
        raise ConfigError(f"{project_file}: cannot read the project file: {str(exc)[:200]}") from None
    config = project.get("config") if isinstance(project, dict) else None
    if not isinstance(config, dict) or project.get("name") != PROJECT:
        raise ConfigError(f"{project_file}: not the {PROJECT} project file (name: {PROJECT} with a config: schema)")
    return config


class Reader:
    """Reads raw values with schema defaults and collects every error instead of stopping at the first."""

    def __init__(self, raw: Mapping[str, Any], known: dict[str, dict[str, Any]]) -> None:
        self.schema = known
        unknown = sorted(set(raw) - set(known) - set(UNDECLARED_KEYS))
        self.errors = [f"{PROJECT}:{k}: unknown config key (known keys are in Pulumi.yaml)" for k in unknown]
        self.raw = raw

    def fail(self, key: str, value: Any, allowed: str) -> None:
        self.errors.append(f"{PROJECT}:{key}: {shown(value)} is not allowed; expected {allowed}")

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        if value is None:
            value = self.schema[key].get("default", "")
        if isinstance(value, dict | list):
            # `pulumi config set --secret` writes {secure: ...}; a value the tool cannot read must not be
            # taken for the default (a secret canaryWeight 60 would read as 0).
            kind = "a secret" if isinstance(value, dict) and "secure" in value else "a structured value"
            self.errors.append(f"{PROJECT}:{key}: is {kind}; it must be a plain value (pulumi config set {key} ...)")
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value).strip() if not isinstance(value, str) else value

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.text(key)
        if not INT.fullmatch(value) or not low <= int(value) <= high:
            self.fail(key, value, f"a whole number from {low} to {high}")
            return low
        return int(value)

    def boolean(self, key: str) -> bool:
        value = self.text(key)
        if value not in ("true", "false"):
            self.fail(key, value, "true or false")
            return False
        return value == "true"

    def array(self, key: str) -> Any:
        """A list from YAML (the stack file) or JSON text (pulumi.Config); anything else is returned as is."""
        value = self.raw.get(key, self.schema[key]["default"])
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:  # not JSON, or a number Python will not convert (over 4300 digits)
                return value
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.text(key)
        if value not in allowed:
            self.fail(key, value, "one of " + ", ".join(allowed))
        return value

    def matching(self, key: str, pattern: re.Pattern[str], allowed: str, *, optional: bool = False) -> str:
        value = self.text(key)
        if (value or not optional) and not pattern.fullmatch(value):
            self.fail(key, value, allowed)
        return value


def parse_weight(value: Any) -> int:
    """A canary weight: an integer 0..100 written in plain decimal digits."""
    reader = Reader({"canaryWeight": value}, {"canaryWeight": {}})  # no default: a value is always given
    weight = reader.integer("canaryWeight", 0, 100)
    if reader.errors:
        raise ConfigError(reader.errors[0])
    return weight
