"""The Istio router: a DestinationRule naming the subsets by pod label, and a VirtualService (the route) whose HTTP
routes make each traffic shape.

- weights (shape ""): the split of canaryWeight, as always;
- mirror: every request (or `mirror_percent` of them) still answered by GA, and a copy sent to the canary, whose
  answer Istio discards (Istio's `mirror` + `mirrorPercentage`). The canary's sidecar reports the copies as
  requests it served, so the analysis judges them like any other;
- header: requests carrying the configured header (or cookie) go to the canary, all others to GA.

In every shape the weighted route is the last HTTP route and keeps GA 100 / canary 0, so a shape step changes
only what makes the shape, and a weight step only the weights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from istio_canary.release.jsonshape import optional_object, optional_objects, route_weight
from istio_canary.release.traffic import HEADER, MIRROR, WEIGHTS, Match
from istio_canary.routers.base import CANARY_SUBSET, RoutedService, RouteKind, read_rules

GROUP, VERSION = "networking.istio.io", "v1"
DESTINATION_RULE = RouteKind(GROUP, VERSION, "DestinationRule", "destinationrules")
VIRTUAL_SERVICE = RouteKind(GROUP, VERSION, "VirtualService", "virtualservices")
MESH_GATEWAY = "mesh"  # Istio's name for the sidecars: the routes apply inside the mesh as well as at the gateway


def headers(match: Match) -> dict[str, Any]:
    """The HTTPMatchRequest's `headers` for a match (a cookie is matched inside the Cookie header)."""
    if match.kind == "header":
        return {match.name: {"exact": match.value}}
    return {"cookie": {"regex": f"^(.*?;\\s*)?{re.escape(match.name)}={re.escape(match.value)}(;.*)?$"}}


def http_routes(
    host: str,
    port: int,
    split: Mapping[str, int],
    shape: str,
    mirror_percent: int,
    match: Match | None,
) -> list[dict[str, Any]]:
    """The VirtualService's `http` list for one shape (`split`: subset -> weight, GA first)."""

    def destination(subset: str) -> dict[str, Any]:
        return {"host": host, "subset": subset, "port": {"number": port}}

    weighted: dict[str, Any] = {
        "route": [{"destination": destination(subset), "weight": weight} for subset, weight in split.items()]
    }
    if shape == MIRROR:
        weighted["mirror"] = destination(CANARY_SUBSET)
        weighted["mirrorPercentage"] = {"value": float(mirror_percent)}
    if shape == HEADER:
        if match is None:
            raise ValueError("a header step needs a match")
        chosen = {
            "match": [{"headers": headers(match)}],
            "route": [{"destination": destination(CANARY_SUBSET), "weight": 100}],
        }
        return [chosen, weighted]
    return [weighted]


class IstioRouter:
    """Istio VirtualService + DestinationRule subsets."""

    route_kind = VIRTUAL_SERVICE
    kinds = (DESTINATION_RULE, VIRTUAL_SERVICE)

    def objects(
        self,
        service: RoutedService,
        split: Mapping[str, int],
        shape: str,
        mirror_percent: int,
        match: Match | None,
    ) -> list[dict[str, Any]]:
        destination_rule = {
            "host": service.host,
            "subsets": [{"name": subset, "labels": {service.subset_label: subset}} for subset in service.subsets],
        }
        virtual_service = {
            "hosts": [service.name, service.public_host],
            "gateways": [MESH_GATEWAY, service.gateway],
            "http": http_routes(service.host, service.port, split, shape, mirror_percent, match),
        }
        return [
            _object(DESTINATION_RULE, service, destination_rule),
            _object(VIRTUAL_SERVICE, service, virtual_service),
        ]

    def read(self, route: object) -> tuple[str, int | None]:
        spec = route.get("spec") if isinstance(route, dict) else None
        http = (spec.get("http") if isinstance(spec, dict) else None) or []
        if not isinstance(http, list) or not http or not all(isinstance(entry, dict) for entry in http):
            return WEIGHTS, None
        weighted = http[-1]
        weight = 0
        for entry in weighted.get("route") or []:
            destination = entry.get("destination") if isinstance(entry, dict) else None
            if isinstance(destination, dict) and destination.get("subset") == CANARY_SUBSET:
                written = entry.get("weight") or 0
                if isinstance(written, bool) or not isinstance(written, int | float):
                    return WEIGHTS, None
                weight = int(written)
        if len(http) > 1 and any(entry.get("match") for entry in http[:-1]):
            return HEADER, weight
        if weighted.get("mirror"):
            return MIRROR, weight
        return WEIGHTS, weight

    def check(self, route: dict[str, Any], where: str) -> None:
        spec = optional_object(route.get("spec"), f"{where}.spec")
        http = optional_objects(spec.get("http"), f"{where}.spec.http")
        for number, entry in enumerate(http):
            routes = optional_objects(entry.get("route"), f"{where}.spec.http[{number}].route")
            for route_number, weighted in enumerate(routes):
                route_where = f"{where}.spec.http[{number}].route[{route_number}]"
                optional_object(weighted.get("destination"), f"{route_where}.destination")
                route_weight(weighted.get("weight"), f"{route_where}.weight")

    def rbac_rules(self) -> list[dict[str, Any]]:
        return read_rules(VIRTUAL_SERVICE)  # the agent reads the weights; the subsets never change in a release


def _object(kind: RouteKind, service: RoutedService, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": service.metadata(), "spec": spec}
