"""Traffic shapes before real users see a canary, and the VirtualService routes of each: the one home of how a
shape is written into Istio and read back from it.

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
from dataclasses import dataclass
from typing import Any

WEIGHTS, MIRROR, HEADER = "", "mirror", "header"
SHAPES = (MIRROR, HEADER)  # in the order a release may take them: nobody sees mirrored answers, testers see header
MATCH = re.compile(r"(header|cookie):([a-z0-9][a-z0-9-]{0,62})=([A-Za-z0-9._~+/-]{1,128})")


@dataclass(frozen=True)
class Match:
    """Which requests a header step sends to the canary: a header with an exact value, or a cookie."""

    kind: str  # "header" or "cookie"
    name: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Match | None:
        """`header:x-canary=always` or `cookie:canary=always`; None when it is not one."""
        found = MATCH.fullmatch(text)
        return cls(found.group(1), found.group(2), found.group(3)) if found else None

    def istio(self) -> dict[str, Any]:
        """The HTTPMatchRequest's `headers` (a cookie is matched inside the Cookie header)."""
        if self.kind == "header":
            return {self.name: {"exact": self.value}}
        return {"cookie": {"regex": f"^(.*?;\\s*)?{re.escape(self.name)}={re.escape(self.value)}(;.*)?$"}}


def http_routes(
    host: str,
    port: int,
    split: dict[str, int],
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
        weighted["mirror"] = destination("canary")
        weighted["mirrorPercentage"] = {"value": float(mirror_percent)}
    if shape == HEADER:
        if match is None:
            raise ValueError("a header step needs a match")
        chosen = {
            "match": [{"headers": match.istio()}],
            "route": [{"destination": destination("canary"), "weight": 100}],
        }
        return [chosen, weighted]
    return [weighted]


def read(virtual_service: dict[str, Any]) -> tuple[str, int | None]:
    """(shape, canary weight) of a live VirtualService as http_routes writes it; (WEIGHTS, None) if unreadable."""
    http = (virtual_service.get("spec") or {}).get("http") or []
    if not http:
        return WEIGHTS, None
    weighted = http[-1]
    weight = 0
    for route in weighted.get("route") or []:
        if (route.get("destination") or {}).get("subset") == "canary":
            weight = int(route.get("weight") or 0)
    if len(http) > 1 and any(entry.get("match") for entry in http[:-1]):
        return HEADER, weight
    if weighted.get("mirror"):
        return MIRROR, weight
    return WEIGHTS, weight
