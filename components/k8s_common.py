"""What the Kubernetes components build with: options for a child that waits for other resources, a pinned
Helm release, and the security contexts of the "restricted" Pod Security Standard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# podinfo and the load tester run as a user named in their images; Kubernetes can only prove non-root with a
# number. Both only read their image's files, so any fixed non-zero uid will do.
NON_ROOT_UID = 10001
# Long enough for istiod or Prometheus to become ready on a node pool that is still scaling up.
HELM_TIMEOUT_SECONDS = 600


def child_options(
    parent: pulumi.Resource, provider: k8s.Provider, after: Sequence[pulumi.Resource] = ()
) -> pulumi.ResourceOptions:
    """Options of a component's Kubernetes child: parented to the component, on the one provider, after `after`."""
    return pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(after))


def helm_release(
    resource_name: str,
    *,
    chart: str,
    release_name: str,
    repo: str,
    version: str,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """One pinned chart version as a Helm release."""
    return k8s.helm.v3.Release(
        resource_name,
        name=release_name,
        chart=chart,
        version=version,
        namespace=namespace,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repo),
        values=values,
        # A failed install or upgrade is rolled back and its leftovers removed: no half-installed chart stays.
        atomic=True,
        cleanup_on_fail=True,
        timeout=HELM_TIMEOUT_SECONDS,
        opts=opts,
    )


def restricted_pod_security_context(fs_group: int | None) -> dict[str, Any]:
    """The pod-level part of the "restricted" standard; `fs_group` owns the pod's volumes (None: no volumes)."""
    context: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if fs_group is not None:
        context["fsGroup"] = fs_group
    return context


def restricted_container_security_context(uid: int = NON_ROOT_UID) -> dict[str, Any]:
    """A container security context that meets the "restricted" standard, running as `uid` (group too)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def namespaced_grant(
    parent: pulumi.Resource,
    provider: k8s.Provider,
    resource_name: str,
    metadata: dict[str, Any],
    rules: list[dict[str, Any]],
    subject: dict[str, str],
    after: Sequence[pulumi.Resource] = (),
) -> tuple[k8s.rbac.v1.Role, k8s.rbac.v1.RoleBinding]:
    """A Role (`metadata` names it and its namespace) with `rules`, bound to one ServiceAccount `subject`."""
    role = k8s.rbac.v1.Role(
        f"{resource_name}-role", metadata=metadata, rules=rules, opts=child_options(parent, provider, after)
    )
    binding = k8s.rbac.v1.RoleBinding(
        f"{resource_name}-rolebinding",
        metadata=metadata,
        role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": metadata["name"]},
        subjects=[{"kind": "ServiceAccount", **subject}],
        opts=child_options(parent, provider, [*after, role]),
    )
    return role, binding
