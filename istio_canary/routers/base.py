"""The router port: what a traffic router must do for a release, whatever objects it writes.

A router turns the split (subset -> weight), the traffic shape (istio_canary/release/traffic.py: weights, mirror,
header), the mirror percent and the header step's match into the routing objects the app component declares; reads
the one object a traffic step changes (the route) back to (shape, canary weight), from the live cluster or from a
preview; names the Kubernetes kinds it owns (the plan's expected-change rules and the agent's live reader find the
route by them); and says which RBAC rules let the agent read the route. Every routing object is named after the
app's Service and lives in its namespace. A router is registered by name in istio_canary/routers/__init__.py and
proven by tests/unit/test_router_contract.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from istio_canary.release.traffic import Match

CANARY_SUBSET = "canary"  # the subset whose weight a router reads back (istio_canary/release/names.py's SUBSETS)
READ_VERBS = ("get", "list", "watch")  # all the agent may do to a routing object: it never writes the cluster


@dataclass(frozen=True)
class RouteKind:
    """One kind of Kubernetes object a router declares: where the API server serves it and how Pulumi types it."""

    group: str  # e.g. "networking.istio.io"
    version: str  # e.g. "v1"
    kind: str  # e.g. "HTTPRoute"
    plural: str  # the resource name in URLs and RBAC rules, e.g. "httproutes"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def type_token(self) -> str:
        """The Pulumi type of the object (in a preview's steps and URNs)."""
        return f"kubernetes:{self.api_version}:{self.kind}"

    def pulumi_name(self, app: str) -> str:
        """The Pulumi resource name the app component gives this kind's object of `app`."""
        return pulumi_name(app, self.kind)


def pulumi_name(app: str, kind: str) -> str:
    """`podinfo-httproute`: one object of each kind per app, so the kind in lowercase tells them apart."""
    return f"{app}-{kind.lower()}"


@dataclass(frozen=True)
class RoutedService:
    """What the app component knows of the service a router routes, in no router's terms."""

    name: str  # the Service; every routing object has this name
    namespace: str
    port: int  # the Service port requests are routed to
    public_host: str  # the host name users reach it by, through the ingress gateway
    gateway: str  # the name of the ingress Gateway object that serves public_host
    subset_label: str  # the pod label whose value names the subset (ga, canary)
    subsets: tuple[str, ...]  # GA first

    @property
    def host(self) -> str:
        """The Service's name inside the cluster."""
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    def metadata(self) -> dict[str, str]:
        return {"name": self.name, "namespace": self.namespace}


class Router(Protocol):
    """One way to split a release's traffic (registered in istio_canary/routers/__init__.py)."""

    @property
    def route_kind(self) -> RouteKind:
        """The kind of the one object a traffic step changes (the route): read back live, expected in a plan."""
        ...

    @property
    def kinds(self) -> tuple[RouteKind, ...]:
        """Every kind the router declares, route_kind among them, in the order objects() returns them."""
        ...

    def objects(
        self,
        service: RoutedService,
        split: Mapping[str, int],
        shape: str,
        mirror_percent: int,
        match: Match | None,
    ) -> list[dict[str, Any]]:
        """The desired routing objects (apiVersion, kind, metadata, spec) for `split` (subset -> weight, GA first)
        in `shape`, one per kind in the order of `kinds`. Only the route depends on the split, shape, percent and
        match: a traffic step changes exactly one object. ValueError for a header shape without a match."""
        ...

    def read(self, route: object) -> tuple[str, int | None]:
        """(shape, canary weight) of a route object as objects() writes it; ("", None) when it is empty or not
        readable as one. Never raises: a live object someone edited by hand only makes the agent wait."""
        ...

    def check(self, route: dict[str, Any], where: str) -> None:
        """Raise istio_canary.release.jsonshape.WrongShape, naming the path under `where` (never the value), if a route
        object from a preview has a value read() uses of the wrong type or range. Nothing else."""
        ...

    def rbac_rules(self) -> list[dict[str, Any]]:
        """The Role rules (apiGroups, resources, verbs) the agent needs to read the live route: READ_VERBS only."""
        ...


def read_rules(*kinds: RouteKind) -> list[dict[str, Any]]:
    """One Role rule per kind allowing READ_VERBS and nothing else."""
    return [{"apiGroups": [kind.group], "resources": [kind.plural], "verbs": list(READ_VERBS)} for kind in kinds]


def route_of(router: Router, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The route among `objects` (the router's output): the one of its route_kind."""
    kind = router.route_kind
    (route,) = [obj for obj in objects if (obj.get("apiVersion"), obj.get("kind")) == (kind.api_version, kind.kind)]
    return route
