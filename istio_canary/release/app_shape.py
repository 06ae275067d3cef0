"""The shape of the released service's container: port, probes, command, user, writable paths, resources,
scaling. Data only; istio_canary/release/settings.py builds it from stack config (podinfo's values are Pulumi.yaml's defaults)
and components/canary_app.py renders it into both Deployments, the Service and the routes."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NOT_IN_NAME = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class AppShape:
    """How the service runs; the same for its GA and canary Deployments."""

    port: int  # the container port, and the Service port clients use
    port_name: str  # Istio selects the protocol by this name (http, http2, grpc, tcp, or <protocol>-<suffix>)
    liveness_path: str  # "" for no liveness probe
    readiness_path: str  # "" for no readiness probe
    command: tuple[str, ...]  # empty: the image's entrypoint
    args: tuple[str, ...]  # empty: the image's default arguments
    env: tuple[tuple[str, str], ...]  # (name, value) in order
    user: int  # uid and gid the container runs as (and the group that owns its volumes)
    writable_paths: tuple[str, ...]  # emptyDir mounts on an otherwise read-only root
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str
    max_replicas: int  # 0: a fixed number of replicas; above: a HorizontalPodAutoscaler per Deployment
    target_cpu_percent: int  # the autoscaler's CPU utilisation target

    @property
    def volumes(self) -> dict[str, str]:
        """Volume name -> mount path for every writable path (`/data` -> `data`, `/var/cache/app` ->
        `var-cache-app`), unique and DNS labels."""
        named: dict[str, str] = {}
        for path in self.writable_paths:
            base = _NOT_IN_NAME.sub("-", path.lower()).strip("-")[:50] or "root"
            name, n = base, 2
            while name in named:
                name, n = f"{base}-{n}", n + 1
            named[name] = path
        return named
