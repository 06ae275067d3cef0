"""Read and edit a `Pulumi.<stack>.yaml` the way `pulumi config set` does, keeping comments and key order.

The release tool validates only the keys it reads or writes (see RELEASE_KEYS): the cluster and mesh keys
are the Pulumi program's business and are checked by `pulumi preview`, not by a traffic step.
"""

from __future__ import annotations

import io
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from components.names import workload
from stacks.settings import PROJECT, AppSettings, ConfigError, ReleaseSettings, parse, parse_weight

# The keys the release tool reads (app identity, versions, weight, schedule, thresholds). Everything
# else in the stack file is passed over: a bad gcp:project must not block an emergency rollback.
RELEASE_KEYS = (
    "namespace",
    "appName",
    "image",
    "gaVersion",
    "canaryVersion",
    "canaryWeight",
    "canarySteps",
    "analysisMinSuccessRate",
    "analysisMaxP99Ms",
    "analysisMinRequests",
    "analysisWindow",
    "canaryTagPolicy",
    "prometheusUrl",
)


@dataclass(frozen=True)
class ReleaseView:
    """The validated release-relevant part of a stack: app identity/versions/weight and the release rules."""

    app: AppSettings
    release: ReleaseSettings

    @property
    def ga_workload(self) -> str:
        """Name of the GA Deployment (the Istio `destination_workload` label)."""
        return workload(self.app.name, "ga")

    @property
    def canary_workload(self) -> str:
        """Name of the canary Deployment."""
        return workload(self.app.name, "canary")


_KEY_LINE = re.compile(r"( *)[^\s#-][^#]*:\s*(#.*)?$")  # a key whose value is on the following lines
_ITEM_LINE = re.compile(r"( *)- ")


def _indents(text: str) -> tuple[int, int]:
    """(mapping indent, dash offset) the file already uses; Pulumi writes 2 and 2, people also write 2 and 0."""
    mapping: int | None = None
    offset: int | None = None
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for parent, child in itertools.pairwise(lines):
        key = _KEY_LINE.match(parent)
        if not key:
            continue
        depth = len(key.group(1))
        child_depth = len(child) - len(child.lstrip(" "))
        item = _ITEM_LINE.match(child)
        if item and offset is None:
            offset = max(child_depth - depth, 0)
        elif not item and child_depth > depth and mapping is None:
            mapping = child_depth - depth
    return mapping or 2, 2 if offset is None else offset


def _yaml(text: str = "") -> YAML:
    yaml = YAML()  # round-trip mode: comments, key order and quoting survive a load/dump
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long value or comment
    mapping, offset = _indents(text)
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return yaml


def validate(values: dict[str, Any]) -> ReleaseView:
    """Validate release keys with stacks.settings.parse; raise ConfigError naming the bad keys.

    parse() validates a whole stack; the release tool forces clusterMode=existing (no GCP keys needed)
    and hands over only RELEASE_KEYS, so the other keys take their (valid) schema defaults.
    """
    raw = {key: values[key] for key in RELEASE_KEYS if key in values}
    raw["clusterMode"] = "existing"
    settings = parse(raw, {})
    return ReleaseView(app=settings.app, release=settings.release)


class StackFile:
    """One stack file, loaded for round-trip editing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.original = path.read_text()
        except FileNotFoundError:
            raise ConfigError(f"{path}: stack file not found (is --stack right? is -C the repository?)") from None
        try:
            self.doc = _yaml(self.original).load(self.original)
        except YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if self.doc is None:
            self.doc = CommentedMap()
        if not isinstance(self.doc, CommentedMap):
            raise ConfigError(f"{path}: expected a mapping with a `config:` key")
        if self.doc.get("config") is None:
            self.doc["config"] = CommentedMap()
        if not isinstance(self.doc["config"], CommentedMap):
            raise ConfigError(f"{path}: `config:` must be a mapping")

    @classmethod
    def for_stack(cls, repo: Path, stack: str) -> StackFile:
        """The file `Pulumi.<stack>.yaml` in the repository root."""
        return cls(repo / f"Pulumi.{stack}.yaml")

    @property
    def config(self) -> CommentedMap:
        """The `config:` mapping (keys with project prefix)."""
        return self.doc["config"]

    def values(self) -> dict[str, Any]:
        """Project values without the `istio-canary:` prefix; secrets ({secure: ...}) are left out."""
        prefix = f"{PROJECT}:"
        out: dict[str, Any] = {}
        for key, value in self.config.items():
            if isinstance(key, str) and key.startswith(prefix) and not isinstance(value, dict):
                out[key[len(prefix) :]] = list(value) if isinstance(value, list) else value
        return out

    def raw(self, key: str) -> Any:
        """The raw value of a project key (no prefix), or None when unset."""
        return self.config.get(f"{PROJECT}:{key}")

    def view(self) -> ReleaseView:
        """The validated release view of the file as it is in memory now."""
        try:
            return validate(self.values())
        except ConfigError as exc:
            raise ConfigError(f"{self.path.name}: {exc}") from None

    def rollback_view(self) -> tuple[ReleaseView, Any]:
        """The view for `canary rollback`: (view, None), or (view at weight 0, the invalid raw weight) when
        canaryWeight is the only bad value. Setting the weight to 0 is always safe, so a hand-edited 150
        must not block it; every other key is still validated.
        """
        try:
            return self.view(), None
        except ConfigError as error:
            values = self.values()
            bad_weight = values.get("canaryWeight")
            try:
                parse_weight(bad_weight)
                raise error from None  # the weight is fine: something else is wrong
            except ConfigError:
                pass
            values["canaryWeight"] = 0
            try:
                return validate(values), bad_weight
            except ConfigError as exc:
                raise ConfigError(f"{self.path.name}: {exc}") from None

    def set(self, key: str, value: int | str) -> None:
        """Set a project key like `pulumi config set` (ints written bare); a new key goes at the end."""
        full = f"{PROJECT}:{key}"
        old = self.config.get(full)
        if isinstance(value, str):
            value = str(value)  # drop a style picked up from another key (values read back keep theirs)
            # Keep the quoting style a human chose for this key.
            if isinstance(old, DoubleQuotedScalarString):
                value = DoubleQuotedScalarString(value)
            elif isinstance(old, SingleQuotedScalarString):
                value = SingleQuotedScalarString(value)
        self.config[full] = value

    def render(self) -> str:
        """The file text as it would be written now."""
        out = io.StringIO()
        _yaml(self.original).dump(self.doc, out)
        return out.getvalue()

    def save(self) -> bool:
        """Write the file after re-validating it; return False (and write nothing) when nothing changed."""
        self.view()  # never write a file the tool could not read back
        text = self.render()
        if text == self.original:
            return False
        self.path.write_text(text)
        self.original = text
        return True
