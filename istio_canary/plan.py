"""What merging a stack commit does to traffic, read from `pulumi preview --json`: a pure reading, no I/O.

`read(preview, app)` finds the stack's own VirtualService and Deployment steps (by URN, namespace and name: a
same-name object elsewhere is just another change), reconstructs the traffic before and after (shape, weights,
the version each subset runs), names the kind of step (a weight or shape step, a new canary version, finish 1/2,
a rollback ...) and lists every change that is not the one expected for that kind, replacements first. A preview
of the wrong shape raises MalformedPreview naming where. `canary plan` (istio_canary/commands/plan.py) writes it as
Markdown (istio_canary/plan_markdown.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from istio_canary.release import traffic
from istio_canary.release.model import AppSettings
from istio_canary.release.names import workload

VS_TYPE = "kubernetes:networking.istio.io/v1:VirtualService"
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
STACK_TYPE = "pulumi:pulumi:Stack"
# The parent of every object of the app (components/canary_app.py's type token): part of their URNs.
APP_COMPONENT = "istio-canary:app:CanaryApp"
NO_CHANGE = ("same", "read", "refresh")
OP = re.compile(r"[a-z]+(-[a-z]+)*")  # how Pulumi names every step op (create-replacement, discard-replaced ...)
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
# The stack's own objects a step may change (Change.own): its VirtualService and its two Deployments.
OWN_VS, OWN_GA, OWN_CANARY = "virtualservice", "ga", "canary"
# GA's autoscaler: its minimum is raised by a rollback (gaRollbackReplicas) and returned by the next first step.
OWN_GA_AUTOSCALER = "ga-autoscaler"
HPA_TYPE = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


class MalformedPreview(ValueError):
    """Valid JSON, but not of the shape `pulumi preview --json` writes. The message names where and what is wrong,
    never the value itself (it ends up in a pull request comment)."""


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
    own: str = ""  # which of the stack's own objects this is (OWN_*), "" for any other
    away: str = ""  # its namespace, when that is not the app's
    urn: str = ""  # set only when it looks like one of the stack's own objects but is not: the URN says which

    @property
    def kind(self) -> str:
        return self.type.rsplit(":", 1)[-1]

    def words(self) -> str:
        where = f" in namespace {self.away}" if self.away else ""
        return f"{self.op} {self.kind} {self.name}{where}" + (f" ({self.urn})" if self.urn else "")


@dataclass(frozen=True)
class Plan:
    """The reading of one preview."""

    kind: str
    before: Traffic
    after: Traffic
    changes: tuple[Change, ...]
    unexpected: tuple[Change, ...] = field(default=())


# --- the shape of a preview: every value the reading uses is checked where it is read -----------------------------


def _what(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else "null"


def _object(value: object, where: str) -> dict[str, Any]:
    """An optional object: null or absent is empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedPreview(f"{where} is {_what(value)}, not an object")
    return value


def _objects(value: object, where: str) -> list[dict[str, Any]]:
    """An optional list of objects."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPreview(f"{where} is {_what(value)}, not a list")
    for index, item in enumerate(value):
        if not isinstance(item, dict):  # null too: Pulumi writes no holes in a list
            raise MalformedPreview(f"{where}[{index}] is {_what(item)}, not an object")
    return value


def _string(value: object, where: str, *, required: bool = False) -> str:
    if value is None and required:
        raise MalformedPreview(f"{where} is missing")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedPreview(f"{where} is {_what(value)}, not a string")
    return value


def _weight(value: object, where: str) -> int:
    """A route weight: a whole number from 0 to 100 (JSON may write it as 10.0); absent is 0, as Istio reads it."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedPreview(f"{where} is {_what(value)}, not a whole number from 0 to 100")
    if 0 <= value <= 100 and float(value).is_integer():
        return int(value)
    shown = repr(value) if -1e6 < value < 1e6 else "a number out of range"  # a number is safe to show; a short one
    raise MalformedPreview(f"{where} is {shown}, not a whole number from 0 to 100")


@dataclass(frozen=True)
class _Step:
    """One step of the preview, its shape checked."""

    where: str
    op: str
    urn: str
    type: str
    name: str
    namespace: str
    old: dict[str, Any]  # the inputs before and after ({} when there is no such state)
    new: dict[str, Any]


def _step(value: object, index: int) -> _Step:
    where = f"steps[{index}]"
    if not isinstance(value, dict):
        raise MalformedPreview(f"{where} is {_what(value)}, not an object")
    step: dict[str, Any] = value
    op = _string(step.get("op"), f"{where}.op", required=True)
    if not OP.fullmatch(op):
        raise MalformedPreview(f"{where}.op is not a Pulumi step op (same, create, update, replace, delete ...)")
    urn = _string(step.get("urn"), f"{where}.urn", required=True)
    parts = urn.split("::")
    if len(parts) < 4 or not parts[0].startswith("urn:pulumi:") or not parts[2]:
        raise MalformedPreview(f"{where}.urn is not a Pulumi URN (urn:pulumi:<stack>::<project>::<type>::<name>)")
    states = {key: _object(step.get(key), f"{where}.{key}") for key in ("oldState", "newState")}
    inputs = {key: _object(state.get("inputs"), f"{where}.{key}.inputs") for key, state in states.items()}
    typ = name = namespace = ""
    for key in ("newState", "oldState"):  # the state after wins, as it is what the step makes
        metadata = _object(inputs[key].get("metadata"), f"{where}.{key}.inputs.metadata")
        typ = typ or _string(states[key].get("type"), f"{where}.{key}.type")
        name = name or _string(metadata.get("name"), f"{where}.{key}.inputs.metadata.name")
        namespace = namespace or _string(metadata.get("namespace"), f"{where}.{key}.inputs.metadata.namespace")
    typ = typ or parts[2].rsplit("$", 1)[-1]
    name = name or parts[-1]
    return _Step(where, op, urn, typ, name, namespace, inputs["oldState"], inputs["newState"])


def _routes(inputs: dict[str, Any], where: str) -> tuple[str, int]:
    """(shape, canary weight) of a VirtualService's inputs; the routes' shape checked first, then read as
    istio_canary/release/traffic.py writes them."""
    spec = _object(inputs.get("spec"), f"{where}.spec")
    http = _objects(spec.get("http"), f"{where}.spec.http")
    for number, entry in enumerate(http):
        for route_number, route in enumerate(_objects(entry.get("route"), f"{where}.spec.http[{number}].route")):
            route_where = f"{where}.spec.http[{number}].route[{route_number}]"
            _object(route.get("destination"), f"{route_where}.destination")
            _weight(route.get("weight"), f"{route_where}.weight")
    shape, weight = traffic.read({"spec": {"http": http}})
    return shape, weight or 0


def _tag(inputs: dict[str, Any], where: str) -> str | None:
    """The image tag of a Deployment's first container, if it has one."""
    spec = _object(inputs.get("spec"), f"{where}.spec")
    template = _object(spec.get("template"), f"{where}.spec.template")
    pod = _object(template.get("spec"), f"{where}.spec.template.spec")
    containers = _objects(pod.get("containers"), f"{where}.spec.template.spec.containers")
    if not containers:
        return None
    image = _string(containers[0].get("image"), f"{where}.spec.template.spec.containers[0].image")
    last = image.rsplit("/", 1)[-1]
    return image.rsplit(":", 1)[1] if ":" in last else None


# --- the stack's own objects ----------------------------------------------------------------------------------


def _own_objects(app: AppSettings) -> dict[str, tuple[str, str, str]]:
    """OWN_* -> (type, metadata.name, Pulumi name) of the objects a release step changes."""
    return {
        OWN_VS: (VS_TYPE, app.name, f"{app.name}-virtualservice"),
        OWN_GA: (DEPLOYMENT_TYPE, workload(app.name, "ga"), workload(app.name, "ga")),
        OWN_CANARY: (DEPLOYMENT_TYPE, workload(app.name, "canary"), workload(app.name, "canary")),
        OWN_GA_AUTOSCALER: (HPA_TYPE, workload(app.name, "ga"), f"{workload(app.name, 'ga')}-autoscaler"),
    }


def _stack_prefix(steps: list[_Step]) -> str:
    """`urn:pulumi:<stack>::<project>` of the previewed stack, from its root resource ("" if the preview has none)."""
    for step in steps:
        if step.type == STACK_TYPE:
            return "::".join(step.urn.split("::")[:2])
    return ""


def _identify(step: _Step, app: AppSettings, prefix: str) -> tuple[str, bool]:
    """(which own object the step is, or ""; whether it only looks like one): same type, namespace and name is
    not enough, the URN must be the one the app component gives that object in this stack and project."""
    for own, (typ, name, pulumi_name) in _own_objects(app).items():
        if (step.type, step.namespace, step.name) != (typ, app.namespace, name):
            continue
        tail = f"::{APP_COMPONENT}${typ}::{pulumi_name}"
        if prefix:
            return (own, False) if step.urn == prefix + tail else ("", True)
        # No root resource to say which stack: any stack and project, but still the app component's object.
        return (own, False) if step.urn.endswith(tail) and step.urn.count("::") == 3 else ("", True)
    return "", False


def read(preview: dict[str, Any], app: AppSettings) -> Plan:
    """The plan of `preview` for `app` (the stack file as it is after the commit); MalformedPreview if the preview
    is not of the shape `pulumi preview --json` writes."""
    if not isinstance(preview, dict):
        raise MalformedPreview(f"the preview is {_what(preview)}, not an object")
    if preview.get("steps") is not None and not isinstance(preview.get("steps"), list):
        raise MalformedPreview(f"steps is {_what(preview.get('steps'))}, not a list")
    steps = [_step(step, index) for index, step in enumerate(preview.get("steps") or [])]
    prefix = _stack_prefix(steps)
    after = Traffic(app.canary_shape, app.canary_weight, app.ga_version, app.canary_version)
    before = after
    changes = []
    for step in steps:
        if step.op in NO_CHANGE:
            continue
        own, lookalike = _identify(step, app, prefix)
        away = step.namespace if step.namespace and step.namespace != app.namespace else ""
        changes.append(Change(step.op, step.type, step.name, own, away, step.urn if lookalike and not away else ""))
        if own == OWN_VS and step.old and step.new:
            old_shape, old_weight = _routes(step.old, f"{step.where}.oldState.inputs")
            new_shape, new_weight = _routes(step.new, f"{step.where}.newState.inputs")
            before = Traffic(old_shape, old_weight, before.ga_version, before.canary_version)
            after = Traffic(new_shape, new_weight, after.ga_version, after.canary_version)
        if own in (OWN_GA, OWN_CANARY) and step.old:
            tag = _tag(step.old, f"{step.where}.oldState.inputs")
            if tag:
                key = "ga_version" if own == OWN_GA else "canary_version"
                before = Traffic(**{**before.__dict__, key: tag})
    kind = _kind(before, after)
    expected = _expected(kind)
    if kind == ROLLBACK or (kind == MOVE and not before.shape and before.canary_weight == 0):
        expected.add(("update", OWN_GA_AUTOSCALER))  # GA's minimum, raised by a rollback, returned at the start
    unexpected = tuple(
        sorted(
            (change for change in changes if (change.op, change.own) not in expected),
            key=lambda change: (change.op not in REPLACING, change.op != "delete", change.words()),
        )
    )
    return Plan(kind, before, after, tuple(changes), unexpected)


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


def _expected(kind: str) -> set[tuple[str, str]]:
    """The one change each kind of step may make: (op, which own object)."""
    if kind in (MOVE, ROLLBACK, FINISH_TRAFFIC):
        return {("update", OWN_VS)}
    if kind == NEW_VERSION:
        return {("update", OWN_CANARY)}
    if kind == FINISH_GA:
        return {("update", OWN_GA)}
    return set()
