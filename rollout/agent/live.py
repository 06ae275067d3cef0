"""What the cluster runs, read-only: the VirtualService's shape and canary weight (read as components/shapes.py
writes them) and the GA/canary Deployments.

Needs get on `virtualservices.networking.istio.io` and `deployments.apps` in the app namespace; nothing else.
Any error reading an object (gone, forbidden, unreachable) reads as None/False: the agent then waits.
"""

from __future__ import annotations

from typing import Any

from components import shapes
from components.names import workload
from rollout.agent.decide import Live


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


def read(api_client: Any, namespace: str, app: str) -> Live:
    """The live state of one app (kubernetes.client.ApiClient in, Live out)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    def guarded(call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except (ApiException, OSError, ValueError):
            return None

    custom, apps = client.CustomObjectsApi(api_client), client.AppsV1Api(api_client)
    service = guarded(
        custom.get_namespaced_custom_object, "networking.istio.io", "v1", namespace, "virtualservices", app
    )
    ga = guarded(apps.read_namespaced_deployment, workload(app, "ga"), namespace)
    canary = guarded(apps.read_namespaced_deployment, workload(app, "canary"), namespace)
    shape, weight = shapes.read(service) if service else ("", None)
    return Live(
        canary_weight=weight,
        ga_version=_tag(ga) if ga else None,
        ga_rolled_out=_rolled_out(ga) if ga else False,
        canary_version=_tag(canary) if canary else None,
        shape=shape,
    )
