"""The cluster keys of stack config: a GKE cluster this stack creates, an existing one, or a platform stack's."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from istio_canary.release.config_reader import (
    PROJECT,
    Reader,
)
from istio_canary.release.model import (
    ClusterSettings,
)
from istio_canary.release.rules import (
    GCP_PROJECT,
    GCP_REGION,
    GCP_ZONE,
    GKE_NAME,
    MACHINE_TYPE,
    MIN_VCPUS,
    too_small,
)

CLUSTER_MODES = ("gke", "existing", "stack")
RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE")
PLACEHOLDER_PREFIX = "change-me"


def read_cluster(reader: Reader, gcp: Mapping[str, Any], check_environment: bool) -> ClusterSettings:
    mode = reader.choice("clusterMode", CLUSTER_MODES)
    name = reader.matching("clusterName", GKE_NAME, "a GKE cluster name: lowercase letters, digits, '-', at most 40")
    location = reader.text("clusterLocation")
    project = str(gcp.get("project") or "")
    if mode == "gke" and check_environment:
        if not GCP_PROJECT.fullmatch(project) or project.startswith(PLACEHOLDER_PREFIX):
            reader.errors.append(
                f"gcp:project: {project!r} is not allowed; expected your GCP project id "
                "(pulumi config set gcp:project <id>)"
            )
        location = location or str(gcp.get("region") or "")
        if not (GCP_REGION.fullmatch(location) or GCP_ZONE.fullmatch(location)):
            reader.fail("clusterLocation", location, "a GCP region or zone such as europe-west1 (or set gcp:region)")
    elif location and not (GCP_REGION.fullmatch(location) or GCP_ZONE.fullmatch(location)):
        reader.fail("clusterLocation", location, "a GCP region or zone such as europe-west1, or empty")
    machine_type = reader.matching("nodeMachineType", MACHINE_TYPE, "a GCE machine type such as e2-standard-4")
    if MACHINE_TYPE.fullmatch(machine_type) and too_small(machine_type):
        reader.fail(
            "nodeMachineType", machine_type, f"a machine with at least {MIN_VCPUS} dedicated vCPUs (e2-standard-4)"
        )
    min_nodes = reader.integer("nodeMinCount", 0, 100)
    max_nodes = reader.integer("nodeMaxCount", 1, 100)
    if max_nodes < min_nodes:
        reader.fail("nodeMaxCount", max_nodes, f"at least {PROJECT}:nodeMinCount ({min_nodes})")
    master_cidr = reader.text("masterCidr")
    try:
        network = ipaddress.ip_network(master_cidr)
        if network.prefixlen != 28 or not network.is_private or network.version != 4:
            raise ValueError
    except ValueError:
        reader.fail("masterCidr", master_cidr, "a private IPv4 /28 such as 172.16.0.32/28")
    networks = reader.array("masterAuthorizedNetworks")
    allowed = 'a list of IPv4 CIDRs allowed to reach the control plane, e.g. ["203.0.113.0/24"], or []'
    try:
        if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
            raise ValueError
        authorized = tuple(str(ipaddress.IPv4Network(n)) for n in networks)
    except ValueError:
        reader.fail("masterAuthorizedNetworks", reader.raw.get("masterAuthorizedNetworks"), allowed)
        authorized = ()
    kubeconfig = reader.text("kubeconfig")
    if mode == "existing" and kubeconfig and check_environment and not Path(kubeconfig).expanduser().is_file():
        reader.fail("kubeconfig", kubeconfig, "the path of an existing kubeconfig file, or empty")
    context = reader.text("kubeContext")
    if not context.isprintable():  # a newline or escape here ends up in kubeconfig and terminal output
        reader.fail("kubeContext", context, "a context name without control characters")
    return ClusterSettings(
        mode=mode,
        name=name,
        project=project,
        location=location,
        release_channel=reader.choice("releaseChannel", RELEASE_CHANNELS),
        machine_type=machine_type,
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        disk_size_gb=reader.integer("nodeDiskSizeGb", 20, 65536),
        private_nodes=reader.boolean("privateNodes"),
        master_cidr=master_cidr,
        master_authorized_networks=authorized,
        deletion_protection=reader.boolean("deletionProtection"),
        kubeconfig=kubeconfig,
        context=context,
    )
