"""Metrics: the port (base.py), its providers (which backend runs a query), and the mesh's observer
(istio_observer.py: which metrics a check reads). This module is the one place providers are registered.

Adding a provider: one module implementing base.MetricsProvider, one entry in PROVIDERS (or `register()` from
outside the package, as testkit/memory_metrics.py does), and a leg in tests/unit/test_metrics_contract.py.
"""

from __future__ import annotations

from collections.abc import Callable

from istio_canary.metrics.base import BadQuery, MetricsProvider, MetricsUnavailable

__all__ = ["PROMETHEUS", "PROVIDERS", "BadQuery", "Factory", "MetricsProvider", "MetricsUnavailable", "provider"]

# A provider from its address, the seconds one query may take, and an optional bearer token.
Factory = Callable[[str, float, str | None], MetricsProvider]


def _prometheus(url: str, timeout: float, token: str | None) -> MetricsProvider:
    # Imported when chosen: the Pulumi program imports this package for the observer (its dashboard) and
    # should not load an HTTP client it never uses.
    from istio_canary.metrics.prometheus import Prometheus

    return Prometheus(url, timeout=timeout, token=token)


PROMETHEUS = "prometheus"
# name -> factory. Today's configuration (--prometheus, $PROMETHEUS_URL, prometheusUrl, the agent's
# options) always chooses PROMETHEUS.
PROVIDERS: dict[str, Factory] = {PROMETHEUS: _prometheus}


def register(name: str, factory: Factory) -> None:
    """Add a provider from outside this package; a name is never silently taken over by another factory."""
    if PROVIDERS.get(name, factory) is not factory:
        raise ValueError(f"metrics provider {name!r} is already registered")
    PROVIDERS[name] = factory


def provider(name: str, url: str, timeout: float, token: str | None = None) -> MetricsProvider:
    """The provider registered as `name`, for the backend at `url`."""
    try:
        factory = PROVIDERS[name]
    except KeyError:
        raise ValueError(f"no metrics provider {name!r}; known: {', '.join(sorted(PROVIDERS))}") from None
    return factory(url, timeout, token)
