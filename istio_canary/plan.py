"""What merging a stack commit does to traffic, read from `pulumi preview --json`: a pure reading, no I/O.

`read(preview, app, baseline)` finds the stack's own route (its router's object a traffic step changes) and
Deployment steps (by URN, namespace and name: a same-name object elsewhere is just another change), reconstructs
the traffic before and after (shape, weights, the version each subset runs), names the kind of step (a weight or
shape step, a new canary version, finish 1/2, a rollback ...) and lists every change that is not the one expected
for that kind, replacements first. With analysisBaseline (`baseline`) <app>-baseline runs gaVersion: it changes
with GA at finish 1/2, restarts with a new canary version, and takes a share of a weight step's traffic
(names.traffic_split). A preview of the wrong shape raises MalformedPreview naming where. `canary plan`
(istio_canary/commands/plan.py) writes it as Markdown (istio_canary/plan_markdown.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from istio_canary.release.jsonshape import WrongShape, optional_object, optional_objects, optional_string, what
from istio_canary.release.model import AppSettings
from istio_canary.release.names import BASELINE, traffic_split, workload
from istio_canary.routers import router

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
# The stack's own objects a step may change (Change.own): its route (the router's object a traffic step changes)
# and its two Deployments.
OWN_ROUTE, OWN_GA, OWN_CANARY = "route", "ga", "canary"
OWN_BASELINE = BASELINE  # analysisBaseline's Deployment, which runs gaVersion
# GA's autoscaler: its minimum is raised by a rollback (gaRollbackReplicas) and returned by the next first step.
OWN_GA_AUTOSCALER = "ga-autoscaler"
HPA_TYPE = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


class MalformedPreview(WrongShape):
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
    baseline: bool = False  # the stack runs <app>-baseline (analysisBaseline)

    def split(self, traffic: Traffic) -> dict[str, int]:
        """Percent of user traffic per subset in `traffic` (a shape step's weight is 0: GA's)."""
        return traffic_split(traffic.canary_weight, self.baseline)


# --- the shape of a preview: each value the reading uses is checked where it is read (release/jsonshape.py)


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
        raise WrongShape(f"{where} is {what(value)}, not an object")
    step: dict[str, Any] = value
    op = optional_string(step.get("op"), f"{where}.op", required=True)
    if not OP.fullmatch(op):
        raise WrongShape(f"{where}.op is not a Pulumi step op (same, create, update, replace, delete ...)")
    urn = optional_string(step.get("urn"), f"{where}.urn", required=True)
    parts = urn.split("::")
    if len(parts) < 4 or not parts[0].startswith("urn:pulumi:") or not parts[2]:
        raise WrongShape(f"{where}.urn is not a Pulumi URN (urn:pulumi:<stack>::<project>::<type>::<name>)")
    states = {key: optional_object(step.get(key), f"{where}.{key}") for key in ("oldState", "newState")}
    inputs = {key: optional_object(state.get("inputs"), f"{where}.{key}.inputs") for key, state in states.items()}
    typ = name = namespace = ""
    for key in ("newState", "oldState"):  # the state after wins, as it is what the step makes
        metadata = optional_object(inputs[key].get("metadata"), f"{where}.{key}.inputs.metadata")
        typ = typ or optional_string(states[key].get("type"), f"{where}.{key}.type")
        name = name or optional_string(metadata.get("name"), f"{where}.{key}.inputs.metadata.name")
        namespace = namespace or optional_string(metadata.get("namespace"), f"{where}.{key}.inputs.metadata.namespace")
    typ = typ or parts[2].rsplit("$", 1)[-1]
    name = name or parts[-1]
    return _Step(where, op, urn, typ, name, namespace, inputs["oldState"], inputs["newState"])


def _tag(inputs: dict[str, Any], where: str) -> str | None:
    """The image tag of a Deployment's first container, if it has one."""
    spec = optional_object(inputs.get("spec"), f"{where}.spec")
    template = optional_object(spec.get("template"), f"{where}.spec.template")
    pod = optional_object(template.get("spec"), f"{where}.spec.template.spec")
    containers = optional_objects(pod.get("containers"), f"{where}.spec.template.spec.containers")
    if not containers:
        return None
    image = optional_string(containers[0].get("image"), f"{where}.spec.template.spec.containers[0].image")
    last = image.rsplit("/", 1)[-1]
    return image.rsplit(":", 1)[1] if ":" in last else None


# --- the stack's own objects ----------------------------------------------------------------------------------


def _own_objects(app: AppSettings, baseline: bool) -> dict[str, tuple[str, str, str]]:
    """OWN_* -> (type, metadata.name, Pulumi name) of the objects a release step changes."""
    route = router().route_kind
    own = {
        OWN_ROUTE: (route.type_token, app.name, route.pulumi_name(app.name)),
        OWN_GA: (DEPLOYMENT_TYPE, workload(app.name, "ga"), workload(app.name, "ga")),
        OWN_CANARY: (DEPLOYMENT_TYPE, workload(app.name, "canary"), workload(app.name, "canary")),
        OWN_GA_AUTOSCALER: (HPA_TYPE, workload(app.name, "ga"), f"{workload(app.name, 'ga')}-autoscaler"),
    }
    if baseline:
        own[OWN_BASELINE] = (DEPLOYMENT_TYPE, workload(app.name, BASELINE), workload(app.name, BASELINE))
    return own


def _stack_prefix(steps: list[_Step]) -> str:
    """`urn:pulumi:<stack>::<project>` of the previewed stack, from its root resource ("" if the preview has none)."""
    for step in steps:
        if step.type == STACK_TYPE:
            return "::".join(step.urn.split("::")[:2])
    return ""


def _identify(step: _Step, app: AppSettings, prefix: str, baseline: bool) -> tuple[str, bool]:
    """(which own object the step is, or ""; whether it only looks like one): same type, namespace and name is
    not enough, the URN must be the one the app component gives that object in this stack and project."""
    for own, (typ, name, pulumi_name) in _own_objects(app, baseline).items():
        if (step.type, step.namespace, step.name) != (typ, app.namespace, name):
            continue
        tail = f"::{APP_COMPONENT}${typ}::{pulumi_name}"
        if prefix:
            return (own, False) if step.urn == prefix + tail else ("", True)
        # No root resource to say which stack: any stack and project, but still the app component's object.
        return (own, False) if step.urn.endswith(tail) and step.urn.count("::") == 3 else ("", True)
    return "", False


def read(preview: dict[str, Any], app: AppSettings, baseline: bool = False) -> Plan:
    """The plan of `preview` for `app` (the stack file as it is after the commit; `baseline`: its analysisBaseline);
    MalformedPreview if the preview is not of the shape `pulumi preview --json` writes."""
    try:
        return _read(preview, app, baseline)
    except WrongShape as error:
        raise MalformedPreview(str(error)) from None  # the message says it all: where and what


def _routes(inputs: dict[str, Any], where: str) -> tuple[str, int]:
    """(shape, canary weight) of the route's inputs, read as its router writes them once their shape is checked."""
    traffic_router = router()
    traffic_router.check(inputs, where)
    shape, weight = traffic_router.read(inputs)
    return shape, weight or 0


def _read(preview: dict[str, Any], app: AppSettings, baseline: bool) -> Plan:
    if not isinstance(preview, dict):
        raise WrongShape(f"the preview is {what(preview)}, not an object")
    if preview.get("steps") is not None and not isinstance(preview.get("steps"), list):
        raise WrongShape(f"steps is {what(preview.get('steps'))}, not a list")
    steps = [_step(step, index) for index, step in enumerate(preview.get("steps") or [])]
    prefix = _stack_prefix(steps)
    after = Traffic(app.canary_shape, app.canary_weight, app.ga_version, app.canary_version)
    before = after
    changes = []
    for step in steps:
        if step.op in NO_CHANGE:
            continue
        own, lookalike = _identify(step, app, prefix, baseline)
        away = step.namespace if step.namespace and step.namespace != app.namespace else ""
        changes.append(Change(step.op, step.type, step.name, own, away, step.urn if lookalike and not away else ""))
        if own == OWN_ROUTE and step.old and step.new:
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
    if kind in (FINISH_GA, NEW_VERSION) and baseline:
        expected.add(("update", OWN_BASELINE))  # it runs gaVersion, and restarts with each canary version
    if kind == ROLLBACK or (kind == MOVE and not before.shape and before.canary_weight == 0):
        expected.add(("update", OWN_GA_AUTOSCALER))  # GA's minimum, raised by a rollback, returned at the start
    unexpected = tuple(
        sorted(
            (change for change in changes if (change.op, change.own) not in expected),
            key=lambda change: (change.op not in REPLACING, change.op != "delete", change.words()),
        )
    )
    return Plan(kind, before, after, tuple(changes), unexpected, baseline)


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
        return {("update", OWN_ROUTE)}
    if kind == NEW_VERSION:
        return {("update", OWN_CANARY)}
    if kind == FINISH_GA:
        return {("update", OWN_GA)}
    return set()
