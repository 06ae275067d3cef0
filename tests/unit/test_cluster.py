"""components/cluster.py: GKE hardening, node pool, service account, kubeconfig and the one provider."""

from __future__ import annotations

import yaml

from components.cluster import ISTIO_WEBHOOK_PORT, NODE_ROLES, NODE_TAG
from tests.unit.conftest import GKE_ENDPOINT, unsecret

CLUSTER = "gcp:container/cluster:Cluster"
POOL = "gcp:container/nodePool:NodePool"


def test_gke_cluster_is_hardened(program) -> None:
    (cluster,) = program().of_type(CLUSTER)
    inputs = cluster.inputs
    assert inputs["name"] == "istio-canary"
    assert inputs["location"] == "europe-west1"
    assert inputs["removeDefaultNodePool"] is True
    assert inputs["releaseChannel"] == {"channel": "REGULAR"}
    assert inputs["workloadIdentityConfig"] == {"workloadPool": "acme-canary-dev.svc.id.goog"}
    assert inputs["enableShieldedNodes"] is True
    assert inputs["deletionProtection"] is False
    assert "privateClusterConfig" not in inputs


def test_deletion_protection_and_release_channel_follow_config(program) -> None:
    (cluster,) = program(deletionProtection="true", releaseChannel="STABLE").of_type(CLUSTER)
    assert cluster.inputs["deletionProtection"] is True
    assert cluster.inputs["releaseChannel"] == {"channel": "STABLE"}


def test_node_pool_autoscales_self_heals_and_uses_a_dedicated_service_account(program) -> None:
    run = program(nodeMinCount="2", nodeMaxCount="5", nodeMachineType="n2-standard-4")
    (pool,) = run.of_type(POOL)
    assert pool.inputs["autoscaling"] == {"minNodeCount": 2, "maxNodeCount": 5}
    assert pool.inputs["management"] == {"autoRepair": True, "autoUpgrade": True}
    node = pool.inputs["nodeConfig"]
    assert node["machineType"] == "n2-standard-4"
    assert node["serviceAccount"] == "istio-canary-nodes@acme-canary-dev.iam.gserviceaccount.com"
    assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert node["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
    assert node["metadata"] == {"disable-legacy-endpoints": "true"}
    members = run.of_type("gcp:projects/iAMMember:IAMMember")
    assert sorted(m.inputs["role"] for m in members) == sorted(NODE_ROLES)
    assert {m.inputs["member"] for m in members} == {f"serviceAccount:{node['serviceAccount']}"}
    assert not any("owner" in r or "editor" in r for r in NODE_ROLES)


def test_private_nodes_open_istiod_webhook_port_from_the_control_plane(program) -> None:
    run = program(privateNodes="true", masterCidr="172.16.0.48/28")
    (cluster,) = run.of_type(CLUSTER)
    assert cluster.inputs["privateClusterConfig"] == {
        "enablePrivateNodes": True,
        "enablePrivateEndpoint": False,
        "masterIpv4CidrBlock": "172.16.0.48/28",
    }
    (firewall,) = run.of_type("gcp:compute/firewall:Firewall")
    assert firewall.inputs["sourceRanges"] == ["172.16.0.48/28"]
    assert firewall.inputs["allows"] == [{"protocol": "tcp", "ports": [ISTIO_WEBHOOK_PORT]}]
    assert firewall.inputs["targetTags"] == [NODE_TAG]
    (pool,) = run.of_type(POOL)
    assert NODE_TAG in pool.inputs["nodeConfig"]["tags"]
    # Without public IPs the nodes reach ghcr.io and docker.io only through Cloud NAT.
    (router,) = run.of_type("gcp:compute/router:Router")
    assert router.inputs["region"] == "europe-west1"
    (nat,) = run.of_type("gcp:compute/routerNat:RouterNat")
    assert nat.inputs["router"] == router.inputs["name"]
    assert nat.inputs["natIpAllocateOption"] == "AUTO_ONLY"
    assert nat.inputs["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"


def test_a_zonal_private_cluster_puts_its_nat_in_the_zone_s_region(program) -> None:
    (router,) = program(privateNodes="true", clusterLocation="europe-west1-b").of_type("gcp:compute/router:Router")
    assert router.inputs["region"] == "europe-west1"


def test_master_authorized_networks_limit_who_reaches_the_control_plane(program) -> None:
    (open_cluster,) = program().of_type(CLUSTER)
    assert "masterAuthorizedNetworksConfig" not in open_cluster.inputs
    (cluster,) = program(masterAuthorizedNetworks='["203.0.113.0/24", "198.51.100.7/32"]').of_type(CLUSTER)
    assert cluster.inputs["masterAuthorizedNetworksConfig"] == {
        "cidrBlocks": [
            {"cidrBlock": "203.0.113.0/24", "displayName": "authorized-0"},
            {"cidrBlock": "198.51.100.7/32", "displayName": "authorized-1"},
        ]
    }


def test_public_nodes_get_no_firewall_rule_and_no_nat(program) -> None:
    run = program()
    assert run.of_type("gcp:compute/firewall:Firewall") == []
    assert run.of_type("gcp:compute/routerNat:RouterNat") == []


def test_kubeconfig_uses_the_gke_auth_plugin_and_one_provider_serves_every_component(program) -> None:
    run = program()
    kubeconfig = yaml.safe_load(run.outputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{GKE_ENDPOINT}"
    user = kubeconfig["users"][0]["user"]
    assert user["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert user["exec"]["provideClusterInfo"] is True
    assert "token" not in user and "client-key-data" not in user
    providers = run.of_type("pulumi:providers:kubernetes")
    assert len(providers) == 1
    assert unsecret(providers[0].inputs["kubeconfig"]) == run.outputs["kubeconfig"]


def test_existing_mode_creates_no_cloud_resources(program, tmp_path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: kind\n")
    run = program(gcp={}, clusterMode="existing", kubeconfig=str(kubeconfig), kubeContext="kind-istio")
    assert [r for r in run.resources if r.typ.startswith("gcp:")] == []
    (provider,) = run.of_type("pulumi:providers:kubernetes")
    # The path, not the file's credentials, goes into the provider and the state.
    assert unsecret(provider.inputs["kubeconfig"]) == str(kubeconfig)
    assert run.outputs["cluster"] == "kind-istio"
    assert program(gcp={}, clusterMode="existing", kubeconfig=str(kubeconfig)).outputs["cluster"] == "kind"
    assert provider.inputs["context"] == "kind-istio"


def test_cluster_children_are_parented_to_the_component(program) -> None:
    urns = program().urns()
    for typ in (CLUSTER, POOL, "gcp:serviceaccount/account:Account", "pulumi:providers:kubernetes"):
        matching = [u for u in urns if u.split("::")[2].endswith(typ)]
        assert matching and all("istio-canary:cluster:Cluster$" in u for u in matching), typ


def test_existing_mode_without_a_path_leaves_the_kubeconfig_unset(program, tmp_path, monkeypatch) -> None:
    # Empty means "the provider's default ($KUBECONFIG, ~/.kube/config)". A secret null is still a value: the
    # engine sends it as the text "null", which the provider reads as an empty kubeconfig (make up STACK=local
    # failed that way on every cluster).
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: kind\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    run = program(gcp={}, clusterMode="existing")
    (provider,) = run.of_type("pulumi:providers:kubernetes")
    assert provider.inputs.get("kubeconfig") in (None, str(kubeconfig)), provider.inputs.get("kubeconfig")
    assert not isinstance(provider.inputs.get("kubeconfig"), dict)  # never a (secret) wrapper around nothing
