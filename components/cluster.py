"""GKE cluster or existing kubeconfig, and the one Kubernetes provider.

GKE mode creates a hardened cluster, its autoscaled node pool and a least-privilege node service account;
existing mode uses a kubeconfig file and context that are already there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import yaml

# What GKE nodes need for logging, monitoring and pulling images, and nothing more; the default
# compute service account has project Editor.
NODE_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
)
NODE_TAG = "istio-canary-node"
ISTIO_WEBHOOK_PORT = "15017"


@dataclass(frozen=True)
class ClusterArgs:
    """Typed inputs of the Cluster component (mode "gke" or "existing")."""

    mode: str
    name: str
    project: str
    location: str
    release_channel: str
    machine_type: str
    min_nodes: int
    max_nodes: int
    disk_size_gb: int
    private_nodes: bool
    master_cidr: str
    master_authorized_networks: tuple[str, ...]
    deletion_protection: bool
    kubeconfig: str
    context: str


def gke_kubeconfig(name: str, endpoint: str, ca_certificate: str) -> str:
    """A kubeconfig for a GKE cluster that authenticates with gke-gcloud-auth-plugin (no static secrets)."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: https://{endpoint}
    certificate-authority-data: {ca_certificate}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {name}
current-context: {name}
users:
- name: {name}
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      installHint: Install gke-gcloud-auth-plugin (gcloud components install gke-gcloud-auth-plugin).
      provideClusterInfo: true
"""


class Cluster(pulumi.ComponentResource):
    """A GKE cluster with a separate autoscaled node pool, or an existing cluster; exposes one k8s Provider."""

    cluster_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    context: pulumi.Output[str]  # the kube context the provider uses; "" means the kubeconfig's current one
    provider: k8s.Provider

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("istio-canary:cluster:Cluster", name, None, opts)
        if args.mode == "gke":
            self.cluster_name, self.kubeconfig = self._gke(name, args)
        elif args.mode == "existing":
            self.cluster_name, self.kubeconfig = self._existing(args)
        else:
            raise ValueError(f"unknown cluster mode {args.mode!r}")
        self.context = pulumi.Output.from_input(args.context)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            # Existing mode without a path: no input at all, so the provider uses its own default ($KUBECONFIG or
            # ~/.kube/config). A secret-wrapped None would still be a value: the engine sends it as "null",
            # which the provider reads as an empty kubeconfig.
            kubeconfig=self.kubeconfig if args.mode == "gke" or args.kubeconfig else None,
            context=args.context or None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"clusterName": self.cluster_name, "kubeconfig": self.kubeconfig})

    def _existing(self, args: ClusterArgs) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        # Only the path goes to the provider and the state, never the file's contents: the file holds every
        # credential of the user, and a refreshed token elsewhere in it must not show up as a provider diff.
        path = Path(args.kubeconfig or _default_kubeconfig()).expanduser()
        text = path.read_text() if path.is_file() else ""
        # The "cluster name" of an existing cluster is the kube context the provider uses.
        context = args.context or str((yaml.safe_load(text) or {}).get("current-context") or "")
        return pulumi.Output.from_input(context), pulumi.Output.secret(args.kubeconfig)

    def _gke(self, name: str, args: ClusterArgs) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        child = pulumi.ResourceOptions(parent=self)
        node_sa = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=f"{args.name}-nodes"[:30],
            display_name=f"GKE nodes of {args.name} (least privilege)",
            project=args.project,
            opts=child,
        )
        for role in NODE_ROLES:
            gcp.projects.IAMMember(
                f"{name}-nodes-{role.split('/')[1]}",
                project=args.project,
                role=role,
                member=node_sa.email.apply(lambda email: f"serviceAccount:{email}"),
                opts=child,
            )
        private = (
            gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                enable_private_endpoint=False,
                master_ipv4_cidr_block=args.master_cidr,
            )
            if args.private_nodes
            else None
        )
        cluster = gcp.container.Cluster(
            name,
            name=args.name,
            project=args.project,
            location=args.location,
            # GKE insists on an initial pool; we drop it and manage our own so node settings can change
            # without recreating the cluster.
            remove_default_node_pool=True,
            initial_node_count=1,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(),
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=args.release_channel),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{args.project}.svc.id.goog"
            ),
            enable_shielded_nodes=True,
            private_cluster_config=private,
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=[
                    gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                        cidr_block=cidr, display_name=f"authorized-{index}"
                    )
                    for index, cidr in enumerate(args.master_authorized_networks)
                ]
            )
            if args.master_authorized_networks
            else None,
            deletion_protection=args.deletion_protection,
            opts=child,
        )
        gcp.container.NodePool(
            f"{name}-pool",
            name=f"{args.name}-pool",
            project=args.project,
            location=args.location,
            cluster=cluster.name,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                min_node_count=args.min_nodes, max_node_count=args.max_nodes
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=args.machine_type,
                disk_size_gb=args.disk_size_gb,
                service_account=node_sa.email,
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                tags=[NODE_TAG],
                metadata={"disable-legacy-endpoints": "true"},
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
                shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True
                ),
            ),
            opts=child,
        )
        if args.private_nodes:
            # Nodes without public IPs still pull podinfo (ghcr.io) and Istio (docker.io) images: Cloud NAT.
            router = gcp.compute.Router(
                f"{name}-router",
                name=f"{args.name}-router",
                project=args.project,
                region=_region(args.location),
                network=cluster.network,
                opts=child,
            )
            gcp.compute.RouterNat(
                f"{name}-nat",
                name=f"{args.name}-nat",
                project=args.project,
                region=router.region,
                router=router.name,
                nat_ip_allocate_option="AUTO_ONLY",
                source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
                opts=child,
            )
            # Private clusters only open 443/10250 from the control plane; istiod's injection and
            # validation webhooks listen on 15017.
            gcp.compute.Firewall(
                f"{name}-istio-webhook",
                name=f"{args.name}-istio-webhook",
                project=args.project,
                network=cluster.network,
                direction="INGRESS",
                source_ranges=[args.master_cidr],
                target_tags=[NODE_TAG],
                allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[ISTIO_WEBHOOK_PORT])],
                opts=child,
            )
        kubeconfig = pulumi.Output.all(
            cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate
        ).apply(lambda parts: gke_kubeconfig(*parts))
        return cluster.name, pulumi.Output.secret(kubeconfig)


def _region(location: str) -> str:
    """europe-west1-b -> europe-west1; a region stays as it is."""
    parts = location.split("-")
    return "-".join(parts[:2]) if len(parts) == 3 else location


def _default_kubeconfig() -> str:
    return os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
