"""Traffic routers behind one port (istio_canary/routers/base.py), registered here by name: the one place a new
router is added. Callers take theirs from router(); there is no setting choosing one yet, so it is Istio's."""

from __future__ import annotations

from istio_canary.routers.base import Router
from istio_canary.routers.istio import IstioRouter

DEFAULT = "istio"
ROUTERS: dict[str, Router] = {"istio": IstioRouter()}


def router(name: str | None = None) -> Router:
    """The registered router called `name` (DEFAULT when None); KeyError naming the known ones otherwise."""
    name = name or DEFAULT
    try:
        return ROUTERS[name]
    except KeyError:
        raise KeyError(f"no router {name!r}; known: {', '.join(sorted(ROUTERS))}") from None
