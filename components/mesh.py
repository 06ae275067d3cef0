"""Istio from its official Helm charts, base -> istiod -> ingress gateway, all one pinned version; or nothing,
for a cluster that already runs a mesh."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_kubernetes as k8s

from components.k8s_common import child_options, helm_release
from istio_canary.release.names import ISTIO_NAMESPACE

ISTIO_CHART_REPO = "https://istio-release.storage.googleapis.com/charts"
GATEWAY_RELEASE = "istio-ingressgateway"
# The label every Gateway object selects; the gateway chart is told to put it on its pods.
GATEWAY_SELECTOR = {"istio": "ingressgateway"}


@dataclass(frozen=True)
class MeshArgs:
    """Typed inputs of the Mesh component."""

    provider: k8s.Provider
    install: bool
    version: str
    gateway_service_type: str


class Mesh(pulumi.ComponentResource):
    """Istio control plane and ingress gateway, pinned to one version; or nothing for an existing mesh."""

    gateway_selector: dict[str, str]
    ingress_address: pulumi.Output[str]
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: MeshArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("istio-canary:mesh:Mesh", name, None, opts)
        self.gateway_selector = dict(GATEWAY_SELECTOR)
        self.ready = []
        self.ingress_address = pulumi.Output.from_input("")
        if args.install:
            self._install(name, args)
        self.register_outputs({"ingressAddress": self.ingress_address})

    def _install(self, name: str, args: MeshArgs) -> None:
        # helm.v3.Release, not helm.v4.Chart: the preview diff shows chart version and values (what a reviewer
        # changes), Helm owns the CRD lifecycle, and istiod's runtime patch of its webhook failurePolicy does
        # not show up as permanent drift.
        namespace = k8s.core.v1.Namespace(
            f"{name}-istio-system",
            metadata={"name": ISTIO_NAMESPACE},
            opts=child_options(self, args.provider),
        )
        istio_chart = partial(helm_release, repo=ISTIO_CHART_REPO, version=args.version, namespace=ISTIO_NAMESPACE)
        # Explicit depends_on: istiod's webhooks need base's CRDs, the gateway's proxy needs istiod.
        base = istio_chart(
            f"{name}-base",
            chart="base",
            release_name="istio-base",
            values={"defaultRevision": "default"},
            opts=child_options(self, args.provider, [namespace]),
        )
        istiod = istio_chart(
            f"{name}-istiod",
            chart="istiod",
            release_name="istiod",
            values={"global": {"istioNamespace": ISTIO_NAMESPACE}},
            opts=child_options(self, args.provider, [base]),
        )
        gateway = istio_chart(
            f"{name}-gateway",
            chart="gateway",
            release_name=GATEWAY_RELEASE,
            values={"labels": dict(GATEWAY_SELECTOR), "service": {"type": args.gateway_service_type}},
            opts=child_options(self, args.provider, [istiod]),
        )
        self.ready = [base, istiod, gateway]
        service = k8s.core.v1.Service.get(
            f"{name}-ingress-service",
            f"{ISTIO_NAMESPACE}/{GATEWAY_RELEASE}",
            opts=child_options(self, args.provider, [gateway]),
        )
        self.ingress_address = service.status.apply(_address)


def _address(status: object) -> str:
    """The first load balancer IP or hostname, or "" while it is pending (or for ClusterIP/NodePort)."""
    ingress = getattr(getattr(status, "load_balancer", None), "ingress", None) or []
    for entry in ingress:
        address = getattr(entry, "ip", None) or getattr(entry, "hostname", None)
        if address:
            return address
    return ""
