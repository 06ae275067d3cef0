"""What merging a stack commit does to traffic, read from `pulumi preview --json`: a pure reading, no I/O.

`read(preview, app)` finds the VirtualService and Deployment steps of the app, reconstructs the traffic before
and after (shape, weights, the version each subset runs), names the kind of step (a weight or shape step, a
new canary version, finish 1/2, a rollback ...) and lists every change that is not the one expected for that
kind, replacements first. `canary plan` (rollout/commands/plan.py) writes it as Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components import shapes
from components.names import workload
from stacks.model import AppSettings

VS_TYPE = "kubernetes:networking.istio.io/v1:VirtualService"
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
NO_CHANGE = ("same", "read", "refresh")
REPLACING = ("replace", "create-replacement", "delete-replaced", "discard-replaced")
# Kinds of step, in words for the headline.
MOVE, ROLLBACK, NEW_VERSION, FINISH_GA, FINISH_TRAFFIC, NOTHING, OTHER = (
    "move",
    "rollback",
    "new-version",
    "finish-ga",
    "finish-traffic",
    "nothing",
    "other",
)


@dataclass(frozen=True)
class Traffic:
    """Where requests go: the shape, the canary's weight, and the version each subset runs."""

    shape: str
    canary_weight: int
    ga_version: str
    canary_version: str

    @property
    def ga_weight(self) -> int:
        return 100 - self.canary_weight


@dataclass(frozen=True)
class Change:
    """One resource the preview would change."""

    op: str
    type: str
    name: str  # metadata.name, else the Pulumi name

    @property
    def kind(self) -> str:
        return self.type.rsplit(":", 1)[-1]

    def words(self) -> str:
        return f"{self.op} {self.kind} {self.name}"


@dataclass(frozen=True)
class Plan:
    """The reading of one preview."""

    kind: str
    before: Traffic
    after: Traffic
    changes: tuple[Change, ...]
    unexpected: tuple[Change, ...] = field(default=())


def _name(step: dict[str, Any]) -> str:
    state = step.get("newState") or step.get("oldState") or {}
    metadata = (state.get("inputs") or {}).get("metadata") or {}
    return str(metadata.get("name") or str(step.get("urn", "")).rsplit("::", 1)[-1])


def _type(step: dict[str, Any]) -> str:
    state = step.get("newState") or step.get("oldState") or {}
    return str(state.get("type") or str(step.get("urn", "")).split("::")[-2].rsplit("$", 1)[-1])


def _tag(deployment_inputs: dict[str, Any]) -> str | None:
    containers = (
        (((deployment_inputs.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    ) or []
    image = str(containers[0].get("image", "")) if containers else ""
    last = image.rsplit("/", 1)[-1]
    return image.rsplit(":", 1)[1] if ":" in last else None


def read(preview: dict[str, Any], app: AppSettings) -> Plan:
    """The plan of `preview` for `app` (the stack file as it is after the commit)."""
    steps = [step for step in preview.get("steps") or [] if isinstance(step, dict)]
    changes = tuple(
        Change(str(step.get("op")), _type(step), _name(step)) for step in steps if step.get("op") not in NO_CHANGE
    )
    after = Traffic(app.canary_shape, app.canary_weight, app.ga_version, app.canary_version)
    before = after
    for step in steps:
        if step.get("op") in NO_CHANGE:
            continue
        typ, name = _type(step), _name(step)
        old = (step.get("oldState") or {}).get("inputs") or {}
        new = (step.get("newState") or {}).get("inputs") or {}
        if typ == VS_TYPE and name == app.name and old and new:
            old_shape, old_weight = shapes.read(old)
            new_shape, new_weight = shapes.read(new)
            before = Traffic(old_shape, old_weight or 0, before.ga_version, before.canary_version)
            after = Traffic(new_shape, new_weight or 0, after.ga_version, after.canary_version)
        for subset in ("ga", "canary"):
            if typ == DEPLOYMENT_TYPE and name == workload(app.name, subset) and old:
                tag = _tag(old)
                if tag:
                    key = "ga_version" if subset == "ga" else "canary_version"
                    before = Traffic(**{**before.__dict__, key: tag})
    kind = _kind(before, after)
    expected = _expected(kind, app)
    unexpected = tuple(
        sorted(
            (change for change in changes if (change.op, change.type, change.name) not in expected),
            key=lambda change: (change.op not in REPLACING, change.op != "delete", change.words()),
        )
    )
    return Plan(kind, before, after, changes, unexpected)


def _kind(before: Traffic, after: Traffic) -> str:
    if before == after:
        return NOTHING
    traffic_moved = (before.shape, before.canary_weight) != (after.shape, after.canary_weight)
    versions_moved = (before.ga_version, before.canary_version) != (after.ga_version, after.canary_version)
    if traffic_moved and versions_moved:
        return OTHER
    if versions_moved:
        if before.canary_version != after.canary_version and before.ga_version == after.ga_version:
            return NEW_VERSION
        if before.ga_version != after.ga_version and after.ga_version == after.canary_version:
            return FINISH_GA
        return OTHER
    exposed = (after.shape != "") or after.canary_weight > 0
    if not exposed and (before.shape or before.canary_weight) and before.canary_weight == 100:
        return FINISH_TRAFFIC if after.ga_version == after.canary_version else ROLLBACK
    if not exposed:
        return ROLLBACK
    return MOVE


def _expected(kind: str, app: AppSettings) -> set[tuple[str, str, str]]:
    """The one change each kind of step may make."""
    if kind in (MOVE, ROLLBACK, FINISH_TRAFFIC):
        return {("update", VS_TYPE, app.name)}
    if kind == NEW_VERSION:
        return {("update", DEPLOYMENT_TYPE, workload(app.name, "canary"))}
    if kind == FINISH_GA:
        return {("update", DEPLOYMENT_TYPE, workload(app.name, "ga"))}
    return set()
