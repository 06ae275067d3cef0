"""A router with its own object format, kept in memory by tests: a real implementation of the router port
(istio_canary/routers/base.py) that proves the port asks nothing Istio-shaped. One object, a `Split`, whose spec
is {"canary": weight, "mirror": percent, "match": "header:x-canary=always"} (mirror and match only in their shape;
"baseline": its weight only when the split has one, analysisBaseline).
Registered through the same seam as Istio's (istio_canary/routers/__init__.py's ROUTERS) by the tests that use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from istio_canary.release.jsonshape import optional_object, optional_string, route_weight
from istio_canary.release.names import BASELINE
from istio_canary.release.traffic import HEADER, MIRROR, WEIGHTS, Match
from istio_canary.routers.base import CANARY_SUBSET, RoutedService, RouteKind, read_rules

NAME = "in-memory"
SPLIT = RouteKind("canary.example.test", "v1alpha1", "Split", "splits")


class InMemoryRouter:
    """Routes by a `Split` object: the canary's weight, and the mirror percent or the match of a shape."""

    route_kind = SPLIT
    kinds = (SPLIT,)

    def objects(
        self,
        service: RoutedService,
        split: Mapping[str, int],
        shape: str,
        mirror_percent: int,
        match: Match | None,
    ) -> list[dict[str, Any]]:
        spec: dict[str, Any] = {"canary": split.get(CANARY_SUBSET, 0)}
        if BASELINE in split:
            spec[BASELINE] = split[BASELINE]
        if shape == MIRROR:
            spec["mirror"] = mirror_percent
        if shape == HEADER:
            if match is None:
                raise ValueError("a header step needs a match")
            spec["match"] = f"{match.kind}:{match.name}={match.value}"
        metadata = {"name": service.name, "namespace": service.namespace}
        return [{"apiVersion": SPLIT.api_version, "kind": SPLIT.kind, "metadata": metadata, "spec": spec}]

    def read(self, route: object) -> tuple[str, int | None]:
        spec = route.get("spec") if isinstance(route, dict) else None
        canary = spec.get("canary") if isinstance(spec, dict) else None
        if isinstance(canary, bool) or not isinstance(canary, int | float) or not isinstance(spec, dict):
            return WEIGHTS, None
        if spec.get("match"):
            return HEADER, int(canary)
        return (MIRROR if spec.get("mirror") else WEIGHTS), int(canary)

    def check(self, route: dict[str, Any], where: str) -> None:
        spec = optional_object(route.get("spec"), f"{where}.spec")
        route_weight(spec.get("canary"), f"{where}.spec.canary")
        route_weight(spec.get("mirror"), f"{where}.spec.mirror")
        route_weight(spec.get(BASELINE), f"{where}.spec.{BASELINE}")
        optional_string(spec.get("match"), f"{where}.spec.match")

    def rbac_rules(self) -> list[dict[str, Any]]:
        return read_rules(SPLIT)
