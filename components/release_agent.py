"""The release agent: `canary agent` as a one-replica Deployment in a namespace of its own, with its
ServiceAccount, the namespaced Roles it needs (read the app's route and Deployments, hold one Lease),
and a Secret holding its Git token and Slack webhook. Registry credentials for its image watch come from outside
Pulumi: a dockerconfigjson Secret mounted as Docker's config.json, or Google's through GKE Workload Identity.

Its own namespace, not the app's: the Git token can push to main (and a push to main runs `pulumi up`), so it is
kept away from whoever may read Secrets in the app namespace; the app namespace is injected and under STRICT
mTLS, where the agent would get a sidecar (its /metrics reaching Prometheus only through Istio's metrics merging)
for traffic that never needs the mesh; and the only thing the agent writes, its Lease, stays in its own namespace
while the app namespace grants it reads only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.k8s_common import (
    NON_ROOT_UID,
    child_options,
    namespaced_grant,
    restricted_container_security_context,
    restricted_pod_security_context,
)
from istio_canary.release.names import AGENT_NAME, agent_lease_name
from istio_canary.routers import router
from istio_canary.routers.base import READ_VERBS

AGENT_NAMESPACE = AGENT_NAME
HTTP_PORT = 9102  # /healthz and /metrics
PORT_NAME = "http"
WORKDIR = "/work"  # the agent's work volume (an emptyDir: the root filesystem is read-only)
# The agent's clone, a directory in the volume and not the mount itself: beside it the agent keeps a clone per
# stack for its follow-up work (`clone.follow-up/`) and moves a clone it found broken aside (`clone.broken`).
CLONE = f"{WORKDIR}/clone"
# git and Python write temporary files, and git reads ~/.gitconfig: HOME points here, not at the clone.
TMPDIR = "/tmp"
# Keys of the Secret and the environment variables the agent reads them from (SLACK_WEBHOOK_URL is the one every
# `canary` command reads; the token's name is the agent's).
GIT_TOKEN_KEY = "git-token"
SLACK_WEBHOOK_KEY = "slack-webhook-url"
GIT_TOKEN_ENV = "CANARY_GIT_TOKEN"
EXTERNAL_TOKEN_KEY = "token"  # the key in a Secret named by agentGitTokenSecret
SLACK_WEBHOOK_ENV = "SLACK_WEBHOOK_URL"
PROMETHEUS_URL_ENV = "PROMETHEUS_URL"
# agentRegistrySecret: its `.dockerconfigjson` becomes config.json in DOCKER_CONFIG_DIR, where `canary
# watch-images` (istio_canary/credentials.py) looks when $DOCKER_CONFIG points there.
DOCKER_CONFIG_ENV = "DOCKER_CONFIG"
DOCKER_CONFIG_DIR = "/var/run/canary/docker"
DOCKER_CONFIG_KEY = ".dockerconfigjson"
REGISTRY_VOLUME = "registry"
# GKE Workload Identity: a pod of this ServiceAccount gets the Google service account's tokens from the metadata
# server (the cluster's workload pool and the pool's GKE_METADATA mode, components/cluster.py).
WORKLOAD_IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account"
# A clone of one repository plus git's temporary files; an emptyDir past its limit evicts the pod.
WORK_SIZE_LIMIT = "1Gi"
TMP_SIZE_LIMIT = "256Mi"
# One analysis per interval and a Git push now and then: mostly idle. The limit leaves room for the Kubernetes
# and GitHub clients' imports and a git subprocess.
RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


def agent_command(stack: str, repo_url: str, lease_namespace: str) -> list[str]:
    """The container's command: the one place its flags are written."""
    return [
        "canary", "agent",
        "--stack", stack,
        "--repo-url", repo_url,
        "--listen", f"0.0.0.0:{HTTP_PORT}",
        "--workdir", CLONE,
        "--lease-namespace", lease_namespace,
    ]  # fmt: skip


def app_role_rules() -> list[dict[str, Any]]:
    """In the app namespace: read the live route's weights (the router's rules) and the GA/canary Deployments,
    nothing else."""
    return [*router().rbac_rules(), {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": list(READ_VERBS)}]


def lease_role_rules(lease: str) -> list[dict[str, Any]]:
    """In the agent's namespace: hold its one Lease.

    get/update are limited to the Lease by name. `create` cannot be: Kubernetes does not authorize create by
    resourceNames (the object's name is not known at authorization time), so the agent may create other Leases,
    but only in its own namespace, where nothing else takes a Lease.
    """
    group, resource = ["coordination.k8s.io"], ["leases"]
    return [
        {"apiGroups": group, "resources": resource, "resourceNames": [lease], "verbs": ["get", "update"]},
        {"apiGroups": group, "resources": resource, "verbs": ["create"]},
    ]


def registry_volume(secret: str) -> dict[str, Any]:
    """The dockerconfigjson Secret as a directory holding only config.json.

    A whole directory, not a subPath mount: the kubelet refreshes it in place when the Secret is rotated, and each
    watch reads the file anew. Not optional: a missing Secret keeps the pod from starting, where it is seen, rather
    than letting every watch go anonymous. 0440: readable through the pod's fsGroup, which the agent runs in.
    """
    return {
        "name": REGISTRY_VOLUME,
        "secret": {
            "secretName": secret,
            "items": [{"key": DOCKER_CONFIG_KEY, "path": "config.json"}],
            "defaultMode": 0o440,
        },
    }


@dataclass(frozen=True)
class ReleaseAgentArgs:
    """Typed inputs of the ReleaseAgent component."""

    provider: k8s.Provider
    stack: str
    image: str
    git_repo: str  # https URL without credentials
    git_token: pulumi.Input[str] | None  # a Pulumi secret; None when git_token_secret names the Secret
    git_token_secret: str  # a Secret (key `token`) made outside Pulumi; "" means the token comes as git_token
    slack_webhook_url: pulumi.Input[str] | None  # a Pulumi secret; None: the agent posts no notices
    registry_secret: str  # a kubernetes.io/dockerconfigjson Secret made outside Pulumi; "" mounts none
    google_service_account: str  # the Google service account its ServiceAccount acts as; "" annotates none
    prometheus_url: str
    app_namespace: str  # "" for a platform's agent: it serves app stacks, which grant it their reads
    namespace: str = AGENT_NAMESPACE
    depends_on: tuple[pulumi.Resource, ...] = ()


class ReleaseAgent(pulumi.ComponentResource):
    """`canary agent` in its own namespace: ServiceAccount, namespaced Roles, Secret, one-replica Deployment."""

    namespace: str
    service_account_name: str
    deployment_name: str
    secret_name: str
    lease_name: str
    command: list[str]
    # Namespace -> the rules of the agent's Role there; every grant the agent has, for tests and review.
    role_rules: dict[str, list[dict[str, Any]]]

    def __init__(self, name: str, args: ReleaseAgentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("istio-canary:agent:ReleaseAgent", name, None, opts)
        if args.app_namespace == args.namespace:
            raise ValueError(f"the release agent's namespace {args.namespace!r} must not be the app's")
        if (args.git_token is None) == (not args.git_token_secret):
            raise ValueError(
                "the release agent needs its Git token from exactly one place: git_token or git_token_secret"
            )
        self.namespace = args.namespace
        self.service_account_name = AGENT_NAME
        self.deployment_name = AGENT_NAME
        self.secret_name = AGENT_NAME
        self.lease_name = agent_lease_name(args.stack)
        # The Lease in the agent's own namespace, so the app namespace grants reads only.
        self.command = agent_command(args.stack, args.git_repo, lease_namespace=args.namespace)
        # No app namespace: a platform's agent, whose app stacks grant it their reads (components/agent_access.py).
        self.role_rules = {args.namespace: lease_role_rules(self.lease_name)}
        if args.app_namespace:
            self.role_rules = {args.app_namespace: app_role_rules(), **self.role_rules}
        labels = {"app": AGENT_NAME}
        meta = {"name": AGENT_NAME, "namespace": args.namespace, "labels": labels}

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            # No sidecar: Prometheus scrapes /metrics in plain HTTP, and the agent serves nothing to the mesh.
            metadata={"name": args.namespace, "labels": {"istio-injection": "disabled"}},
            opts=child_options(self, args.provider, args.depends_on),
        )
        in_namespace = child_options(self, args.provider, [namespace])
        account_meta: dict[str, Any] = dict(meta)
        if args.google_service_account:  # Workload Identity; the GSA's IAM binding is made outside Pulumi
            account_meta["annotations"] = {WORKLOAD_IDENTITY_ANNOTATION: args.google_service_account}
        account = k8s.core.v1.ServiceAccount(
            f"{name}-serviceaccount",
            metadata=account_meta,
            # The token is mounted into the agent's pod only (the pod spec says so), not into every pod using it.
            automount_service_account_token=False,
            opts=in_namespace,
        )
        # The app namespace is the app component's: the Role there waits for it (args.depends_on).
        grants = [*self._grant(f"{name}-lease", f"{AGENT_NAME}-lease", args.namespace, [namespace], args)]
        if args.app_namespace:
            grants[:0] = self._grant(f"{name}-app", AGENT_NAME, args.app_namespace, [namespace, *args.depends_on], args)
        secret_data: dict[str, pulumi.Input[str]] = {}
        if args.git_token is not None:
            secret_data[GIT_TOKEN_KEY] = pulumi.Output.secret(args.git_token)
        if args.slack_webhook_url is not None:
            secret_data[SLACK_WEBHOOK_KEY] = pulumi.Output.secret(args.slack_webhook_url)
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=meta,
            type="Opaque",
            string_data=secret_data,
            opts=in_namespace,
        )
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta,
            spec={
                # One agent: it also takes the Lease, so a second replica would only wait. Recreate, so an
                # update never waits for a new pod that waits for the old one's Lease.
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {
                        "labels": labels,
                        # The monitoring chart's `kubernetes-pods` job scrapes pods annotated like this.
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(HTTP_PORT),
                            "prometheus.io/path": "/metrics",
                        },
                    },
                    "spec": self._pod_spec(args, secret_data),
                },
            },
            opts=child_options(self, args.provider, [namespace, account, secret, *grants]),
        )
        self.register_outputs(
            {
                "namespace": self.namespace,
                "serviceAccountName": self.service_account_name,
                "command": self.command,
                "roleRules": self.role_rules,
            }
        )

    def _grant(
        self, resource_name: str, role_name: str, namespace: str, after: list[pulumi.Resource], args: ReleaseAgentArgs
    ) -> tuple[k8s.rbac.v1.Role, k8s.rbac.v1.RoleBinding]:
        """A Role in `namespace` with the agent's rules there, bound to the agent's ServiceAccount."""
        return namespaced_grant(
            self,
            args.provider,
            resource_name,
            {"name": role_name, "namespace": namespace, "labels": {"app": AGENT_NAME}},
            self.role_rules[namespace],
            {"name": self.service_account_name, "namespace": self.namespace},
            after,
        )

    def _pod_spec(self, args: ReleaseAgentArgs, secret_data: dict[str, Any]) -> dict[str, Any]:
        env: list[dict[str, Any]] = [
            {"name": PROMETHEUS_URL_ENV, "value": args.prometheus_url},
            {"name": "HOME", "value": TMPDIR},
            {"name": "TMPDIR", "value": TMPDIR},
        ]
        for variable, key in ((GIT_TOKEN_ENV, GIT_TOKEN_KEY), (SLACK_WEBHOOK_ENV, SLACK_WEBHOOK_KEY)):
            if key in secret_data:
                env.append({"name": variable, "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": key}}})
        if args.git_token_secret:  # made outside Pulumi: the token is in no stack config and no Pulumi state
            reference = {"name": args.git_token_secret, "key": EXTERNAL_TOKEN_KEY}
            env.append({"name": GIT_TOKEN_ENV, "valueFrom": {"secretKeyRef": reference}})
        probe = {"httpGet": {"path": "/healthz", "port": PORT_NAME}, "timeoutSeconds": 5}
        volumes = {"work": (WORKDIR, WORK_SIZE_LIMIT), "tmp": (TMPDIR, TMP_SIZE_LIMIT)}
        mounts: list[dict[str, Any]] = [{"name": volume, "mountPath": path} for volume, (path, _) in volumes.items()]
        pod_volumes = [{"name": volume, "emptyDir": {"sizeLimit": limit}} for volume, (_, limit) in volumes.items()]
        if args.registry_secret:
            env.append({"name": DOCKER_CONFIG_ENV, "value": DOCKER_CONFIG_DIR})
            mounts.append({"name": REGISTRY_VOLUME, "mountPath": DOCKER_CONFIG_DIR, "readOnly": True})
            pod_volumes.append(registry_volume(args.registry_secret))
        return {
            "serviceAccountName": self.service_account_name,
            # It reads the route and Deployments and holds a Lease: it needs its API token.
            "automountServiceAccountToken": True,
            "securityContext": restricted_pod_security_context(fs_group=NON_ROOT_UID),
            "containers": [
                {
                    "name": AGENT_NAME,
                    "image": args.image,
                    "imagePullPolicy": "Always",
                    "command": self.command,
                    "ports": [{"name": PORT_NAME, "containerPort": HTTP_PORT, "protocol": "TCP"}],
                    "env": env,
                    "resources": RESOURCES,
                    "securityContext": restricted_container_security_context(),
                    "livenessProbe": {**probe, "initialDelaySeconds": 10, "periodSeconds": 20},
                    "readinessProbe": {**probe, "periodSeconds": 10},
                    "volumeMounts": mounts,
                }
            ],
            "volumes": pod_volumes,
        }
