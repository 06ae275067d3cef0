"""What the cluster runs, read-only: the route's shape and canary weight (the router's object a traffic step
changes, read as its router writes it: istio_canary/routers/) and the GA/canary Deployments.

Needs get on the route (the router's rbac_rules) and `deployments.apps` in the app namespace; nothing else.
Any error reading an object (gone, forbidden, unreachable) reads as None/False: the agent then waits.

When the routing went live is the route's last write as the API server stamped it (the newest
metadata.managedFields[].time of its spec, whoever wrote it: `pulumi up` or a person), not the commit's time:
an `up` that lands minutes after the merge must not let passes that judged the previous step count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from istio_canary.release.decide import Live
from istio_canary.release.names import subsets, workload
from istio_canary.routers import router

REQUEST_TIMEOUT_S = (5.0, 10.0)  # connect, read: each read of the live state (the kubernetes client has none)


def _tag(deployment: Any) -> str | None:
    containers = deployment.spec.template.spec.containers or []
    image = containers[0].image if containers else ""
    return image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else None


def _rolled_out(deployment: Any) -> bool:
    """The Deployment controller reports the current spec fully rolled out and available."""
    status, wanted = deployment.status, deployment.spec.replicas or 0
    if status is None or status.observed_generation is None:
        return False
    return (
        status.observed_generation >= (deployment.metadata.generation or 0)
        and (status.updated_replicas or 0) >= wanted
        and (status.available_replicas or 0) >= wanted
    )


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def applied_at(obj: Any) -> float | None:
    """Unix seconds by which the object's current spec had been written: the newest managedFields time outside
    the status subresource (istiod writing a status changes no routing), else its creationTimestamp; None when
    neither is readable. The API server stamps whole seconds, so this is the end of that second."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(metadata, dict):
        return None
    entries = metadata.get("managedFields")
    writes = [
        _timestamp(entry.get("time"))
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict) and not entry.get("subresource")
    ]
    known = [t for t in writes if t is not None]
    last = max(known) if known else _timestamp(metadata.get("creationTimestamp"))
    return None if last is None else last + 1


def read(api_client: Any, namespace: str, app: str) -> Live:
    """The live state of one app (kubernetes.client.ApiClient in, Live out)."""
    import urllib3
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    def guarded(call: Any, *args: Any) -> Any:
        try:
            return call(*args, _request_timeout=REQUEST_TIMEOUT_S)
        except (ApiException, OSError, ValueError, urllib3.exceptions.HTTPError):
            return None  # an API server that is down or slow only makes the agent wait; it never stops a rollback

    custom, apps = client.CustomObjectsApi(api_client), client.AppsV1Api(api_client)
    traffic_router = router()
    kind = traffic_router.route_kind  # named after the app, like every routing object
    route = guarded(custom.get_namespaced_custom_object, kind.group, kind.version, namespace, kind.plural, app)
    ga = guarded(apps.read_namespaced_deployment, workload(app, "ga"), namespace)
    canary = guarded(apps.read_namespaced_deployment, workload(app, "canary"), namespace)
    shape, weight = traffic_router.read(route) if route else ("", None)
    return Live(
        canary_weight=weight,
        ga_version=_tag(ga) if ga else None,
        ga_rolled_out=_rolled_out(ga) if ga else False,
        canary_version=_tag(canary) if canary else None,
        shape=shape,
        since=applied_at(route) if route else None,
    )


def serving_replicas(api_client: Any, namespace: str, app: str, *, baseline: bool = False) -> int | None:
    """The pods GA and the canary (and the baseline, when the stack runs one: GA takes its share too) run now,
    each Deployment's status.replicas as their autoscalers left them: what a rollback must leave GA able to run
    alone. A Deployment that cannot be read counts nothing; None when none can be read."""
    import urllib3
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    apps = client.AppsV1Api(api_client)
    counts = []
    for subset in subsets(baseline):
        try:
            deployment = apps.read_namespaced_deployment(
                workload(app, subset), namespace, _request_timeout=REQUEST_TIMEOUT_S
            )
        except (ApiException, OSError, ValueError, urllib3.exceptions.HTTPError):
            continue
        current = deployment.status.replicas if deployment.status else 0
        counts.append(max(current or 0, deployment.spec.replicas or 0))  # scaling up: the pods it asked for
    return sum(counts) if counts else None
