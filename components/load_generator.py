"""A Deployment running hey against the app, so that GA and canary both produce metrics to compare."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.k8s_common import (
    child_options,
    restricted_container_security_context,
    restricted_pod_security_context,
)

# Flagger's load tester image ships hey; pinned, never latest.
HEY_IMAGE = "ghcr.io/fluxcd/flagger-loadtester:0.34.0"
# As in the seed: effectively endless; the Deployment restarts hey if it ever finishes.
TOTAL_REQUESTS = 1_000_000


@dataclass(frozen=True)
class LoadGeneratorArgs:
    """Typed inputs of the LoadGenerator component."""

    provider: k8s.Provider
    namespace: str
    target_url: str
    rate: int
    concurrency: int
    image: str = HEY_IMAGE
    depends_on: tuple[pulumi.Resource, ...] = ()


class LoadGenerator(pulumi.ComponentResource):
    """A one-replica Deployment running `hey -c <concurrency> -q <rate>` against the service."""

    deployment_name: str
    command: list[str]

    def __init__(self, name: str, args: LoadGeneratorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("istio-canary:load:LoadGenerator", name, None, opts)
        self.deployment_name = name
        self.command = [
            "hey",
            "-n", str(TOTAL_REQUESTS),
            "-c", str(args.concurrency),
            "-q", str(args.rate),
            args.target_url,
        ]  # fmt: skip
        labels = {"app": name}
        k8s.apps.v1.Deployment(
            name,
            metadata={"name": name, "namespace": args.namespace, "labels": labels},
            spec={
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {
                        "labels": labels,
                        # hey starts sending at once; without this its first requests race Envoy's startup and fail.
                        "annotations": {"proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}'},
                    },
                    "spec": {
                        "automountServiceAccountToken": False,
                        # hey writes nothing, so the pod has no volumes for a group to own.
                        "securityContext": restricted_pod_security_context(fs_group=None),
                        "containers": [
                            {
                                "name": "hey",
                                "image": args.image,
                                "imagePullPolicy": "Always",
                                "command": self.command,
                                "resources": {
                                    "requests": {"cpu": "10m", "memory": "32Mi"},
                                    "limits": {"cpu": "500m", "memory": "128Mi"},
                                },
                                "securityContext": restricted_container_security_context(),
                                # hey has no health endpoint; "is the process alive" is all there is to probe.
                                "livenessProbe": {"exec": {"command": ["pgrep", "hey"]}, "periodSeconds": 30},
                                "readinessProbe": {"exec": {"command": ["pgrep", "hey"]}, "periodSeconds": 30},
                            }
                        ],
                    },
                },
            },
            opts=child_options(self, args.provider, args.depends_on),
        )
        self.register_outputs({"command": self.command})
