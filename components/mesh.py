"""The mesh room: Istio from its official Helm charts, base -> istiod -> ingress gateway."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.names import ISTIO_NAMESPACE

ISTIO_CHART_REPO = "https://istio-release.storage.googleapis.com/charts"
GATEWAY_RELEASE = "istio-ingressgateway"
# The label every Gateway object selects; the gateway chart is told to put it on its pods.
GATEWAY_SELECTOR = {"istio": "ingressgateway"}


@dataclass(frozen=True)
class MeshArgs:
    """Typed inputs of the Mesh component."""

    provider: k8s.Provider
    version: str
    install: bool = True
    gateway_service_type: str = "LoadBalancer"


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
        opts = pulumi.ResourceOptions(parent=self, provider=args.provider)
        namespace = k8s.core.v1.Namespace(
            f"{name}-istio-system",
            metadata={"name": ISTIO_NAMESPACE},
            opts=opts,
        )

        def release(chart: str, release_name: str, values: dict, after: list[pulumi.Resource]) -> k8s.helm.v3.Release:
            return k8s.helm.v3.Release(
                f"{name}-{chart}",
                name=release_name,
                chart=chart,
                version=args.version,
                namespace=ISTIO_NAMESPACE,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=ISTIO_CHART_REPO),
                values=values,
                atomic=True,
                cleanup_on_fail=True,
                timeout=600,
                opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=after)),
            )

        # Explicit depends_on: istiod's webhooks need base's CRDs, the gateway's proxy needs istiod.
        base = release("base", "istio-base", {"defaultRevision": "default"}, [namespace])
        istiod = release("istiod", "istiod", {"global": {"istioNamespace": ISTIO_NAMESPACE}}, [base])
        gateway = release(
            "gateway",
            GATEWAY_RELEASE,
            {"labels": dict(GATEWAY_SELECTOR), "service": {"type": args.gateway_service_type}},
            [istiod],
        )
        self.ready = [base, istiod, gateway]
        service = k8s.core.v1.Service.get(
            f"{name}-ingress-service",
            f"{ISTIO_NAMESPACE}/{GATEWAY_RELEASE}",
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[gateway]),
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
