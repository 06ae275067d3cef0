"""What an app stack (clusterMode stack) grants the platform's release agent in the app's namespace: reading the
route (the router's object a traffic step changes) and the GA/canary Deployments (the agent's live state), nothing
else. Harmless where the platform runs no agent: it names a ServiceAccount that then does not exist."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.k8s_common import namespaced_grant
from components.release_agent import AGENT_NAMESPACE, app_role_rules
from istio_canary.release.names import AGENT_NAME


@dataclass(frozen=True)
class AgentAccessArgs:
    """Typed inputs of the AgentAccess component."""

    provider: k8s.Provider
    app_namespace: str
    depends_on: tuple[pulumi.Resource, ...] = ()  # the app, whose component makes the namespace


class AgentAccess(pulumi.ComponentResource):
    """A Role and RoleBinding in the app namespace for the platform agent's ServiceAccount."""

    rules: list[dict]

    def __init__(self, name: str, args: AgentAccessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("istio-canary:agent:AgentAccess", name, None, opts)
        self.rules = app_role_rules()  # the same rules the agent gets in a one-stack layout
        namespaced_grant(
            self,
            args.provider,
            name,
            {"name": AGENT_NAME, "namespace": args.app_namespace, "labels": {"app": AGENT_NAME}},
            self.rules,
            {"name": AGENT_NAME, "namespace": AGENT_NAMESPACE},
            args.depends_on,
        )
        self.register_outputs({"rules": self.rules})
