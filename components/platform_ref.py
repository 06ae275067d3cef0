"""The platform stack an app stack deploys to: its kubeconfig through a Pulumi StackReference, and one Kubernetes
provider built from it. Same public face as Cluster (cluster_name, kubeconfig, context, provider), so the app's
components cannot tell whether their cluster was made in this stack or in the platform's."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class PlatformRefArgs:
    """Typed inputs of the PlatformRef component."""

    platform_stack: str  # `platform` (this project and organization) or `organization/project/stack`


def qualified(stack: str) -> str:
    """`platform` -> `<organization>/<project>/platform`; a name with slashes is taken as given."""
    if "/" in stack:
        return stack
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}"


def required_kubeconfig(value: object, stack: str) -> str:
    """The platform's kubeconfig output, refused when empty: a provider given "" would use whatever kubeconfig
    this machine has, which may be another cluster than the platform's."""
    if not value:
        raise ValueError(
            f"platform stack {stack!r} exports an empty kubeconfig (an existing-mode platform without "
            "istio-canary:kubeconfig): set kubeconfig on the platform stack, so every app stack uses its cluster"
        )
    return str(value)


class PlatformRef(pulumi.ComponentResource):
    """Reads the platform stack's outputs `kubeconfig` (secret), `kubeContext` and `clusterName`."""

    cluster_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    context: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: PlatformRefArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("istio-canary:platform:PlatformRef", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        platform = pulumi.StackReference(f"{name}-stack", stack_name=qualified(args.platform_stack), opts=child)
        self.cluster_name = platform.require_output("clusterName").apply(str)
        # Secret in the platform's state and here: a GKE kubeconfig names the cluster's CA and endpoint.
        self.kubeconfig = pulumi.Output.secret(
            platform.require_output("kubeconfig").apply(lambda value: required_kubeconfig(value, args.platform_stack))
        )
        self.context = platform.get_output("kubeContext").apply(lambda value: str(value or ""))
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            context=self.context,  # "" is no context: the kubeconfig's current one
            opts=child,
        )
        self.register_outputs({"clusterName": self.cluster_name})
