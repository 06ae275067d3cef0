"""The canary app: objects, labels, the split, and the promise that a step touches one resource."""

from __future__ import annotations

import pytest

from components.canary_app import SUBSET_LABEL
from components.k8s_common import NON_ROOT_UID
from components.mesh import GATEWAY_SELECTOR
from istio_canary.release.names import traffic_split

PODINFO_PORT = 9898  # Pulumi.yaml's default appPort
APP_KINDS = ("Namespace", "Deployment", "Service", "DestinationRule", "VirtualService", "Gateway", "PeerAuthentication")


def routes(program) -> dict[str, float]:
    spec = program.one("VirtualService", "podinfo").inputs["spec"]
    (http,) = spec["http"]
    return {route["destination"]["subset"]: route["weight"] for route in http["route"]}


@pytest.mark.parametrize("weight", [0, 10, 60, 100])
def test_virtual_service_splits_by_canary_weight(program, weight: int) -> None:
    run = program(canaryWeight=weight)
    assert routes(run) == {"ga": 100 - weight, "canary": weight}
    assert sum(routes(run).values()) == 100
    assert run.outputs["built"].app.split == {"ga": 100 - weight, "canary": weight}


def test_the_split_gives_ga_what_the_canary_does_not_get() -> None:
    assert traffic_split(0) == {"ga": 100, "canary": 0}
    assert traffic_split(10) == {"ga": 90, "canary": 10}
    assert traffic_split(100) == {"ga": 0, "canary": 100}
    for impossible in (-1, 101):
        with pytest.raises(ValueError, match="not a percentage"):
            traffic_split(impossible)


def test_names_follow_the_seed(program) -> None:
    run = program()
    names = {(r.kind, r.k8s_name) for r in run.resources if r.custom and r.kind in APP_KINDS}
    assert names >= {
        ("Namespace", "test"),
        ("Deployment", "podinfo-ga"),
        ("Deployment", "podinfo-canary"),
        ("Service", "podinfo"),
        ("DestinationRule", "podinfo"),
        ("VirtualService", "podinfo"),
        ("Gateway", "podinfo-gateway"),
        ("PeerAuthentication", "default"),
    }
    namespaced = [r for r in run.resources if r.custom and r.kind in APP_KINDS[1:]]
    assert {r.inputs["metadata"]["namespace"] for r in namespaced} == {"test"}


def test_names_are_overridable(program) -> None:
    run = program(appName="shop", namespace="shop-prod")
    assert run.one("Deployment", "shop-ga").inputs["metadata"]["namespace"] == "shop-prod"
    assert run.one("Deployment", "shop-canary")
    assert run.one("Gateway", "shop-gateway")
    assert run.one("VirtualService", "shop").inputs["spec"]["gateways"] == ["mesh", "shop-gateway"]


def test_namespace_is_labelled_for_sidecar_injection(program) -> None:
    labels = program().one("Namespace", "test").inputs["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled"


def test_subsets_select_exactly_one_deployment_each_and_service_selects_both(program) -> None:
    run = program()
    # Every Deployment in the namespace, the load generator included: the Service must not select it.
    deployments = [r for r in run.kind("Deployment") if r.inputs["metadata"]["namespace"] == "test"]
    assert len(deployments) == 3
    pod_labels = {d.k8s_name: d.inputs["spec"]["template"]["metadata"]["labels"] for d in deployments}
    subsets = run.one("DestinationRule", "podinfo").inputs["spec"]["subsets"]
    assert {s["name"] for s in subsets} == {"ga", "canary"}
    for subset in subsets:
        selected = [name for name, labels in pod_labels.items() if subset["labels"].items() <= labels.items()]
        assert selected == [f"podinfo-{subset['name']}"]
    selector = run.one("Service", "podinfo").inputs["spec"]["selector"]
    assert sorted(name for name, labels in pod_labels.items() if selector.items() <= labels.items()) == [
        "podinfo-canary",
        "podinfo-ga",
    ]


def test_deployments_run_the_configured_tags(program) -> None:
    run = program(gaVersion="6.8.0", canaryVersion="6.9.1")
    for name, tag in (("podinfo-ga", "6.8.0"), ("podinfo-canary", "6.9.1")):
        spec = run.one("Deployment", name).inputs["spec"]
        (container,) = spec["template"]["spec"]["containers"]
        assert container["image"] == f"ghcr.io/stefanprodan/podinfo:{tag}"
        assert container["ports"] == [{"name": "http", "containerPort": PODINFO_PORT, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert set(container["resources"]) == {"requests", "limits"}
        assert spec["template"]["metadata"]["labels"]["version"] == tag
        assert spec["selector"]["matchLabels"] == {"app": "podinfo", SUBSET_LABEL: name.split("-")[1]}


def test_containers_run_restricted(program) -> None:
    spec = program().one("Deployment", "podinfo-canary").inputs["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == NON_ROOT_UID  # the image's user is a name; non-root needs a number
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/data", "/tmp"} <= mounts
    assert {v["name"] for v in spec["volumes"]} == {m["name"] for m in container["volumeMounts"]}
    assert all("emptyDir" in v for v in spec["volumes"])
    assert "--data-path=/data" in container["command"]
    assert spec["automountServiceAccountToken"] is False


def test_virtual_service_gateway_and_mesh_agree(program) -> None:
    run = program(publicHost="podinfo.acme.dev")
    vs = run.one("VirtualService", "podinfo").inputs["spec"]
    gateway = run.one("Gateway", "podinfo-gateway").inputs["spec"]
    assert vs["hosts"] == ["podinfo", "podinfo.acme.dev"]
    assert vs["gateways"] == ["mesh", "podinfo-gateway"]
    assert gateway["selector"] == GATEWAY_SELECTOR
    assert run.outputs["built"].mesh.gateway_selector == gateway["selector"]
    (server,) = gateway["servers"]
    assert server["port"] == {"number": 80, "name": "http", "protocol": "HTTP"}
    assert server["hosts"] == ["podinfo.acme.dev"]
    destinations = {r["destination"]["host"] for r in vs["http"][0]["route"]}
    assert destinations == {"podinfo.test.svc.cluster.local"}
    assert run.one("DestinationRule", "podinfo").inputs["spec"]["host"] in destinations


def test_https_server_only_with_a_credential(program) -> None:
    servers = program(tlsCredentialName="podinfo-tls").one("Gateway", "podinfo-gateway").inputs["spec"]["servers"]
    https = [s for s in servers if s["port"]["number"] == 443]
    assert https[0]["tls"] == {"mode": "SIMPLE", "credentialName": "podinfo-tls"}
    assert servers[0]["tls"] == {"httpsRedirect": True}


def test_istio_objects_use_v1_apis_and_strict_mtls(program) -> None:
    run = program()
    for kind in ("VirtualService", "DestinationRule", "Gateway"):
        assert {r.inputs["apiVersion"] for r in run.kind(kind)} == {"networking.istio.io/v1"}
    (peer,) = run.kind("PeerAuthentication")
    assert peer.inputs["apiVersion"] == "security.istio.io/v1"
    assert peer.inputs["spec"] == {"mtls": {"mode": "STRICT"}}


def _by_urn_name(run) -> dict[str, dict]:
    return {f"{r.typ}::{r.name}": r.inputs for r in run.resources if r.custom}


def test_a_weight_change_touches_only_the_virtual_service(program) -> None:
    before = _by_urn_name(program(canaryWeight=10))
    after = _by_urn_name(program(canaryWeight=60))
    assert before.keys() == after.keys()
    changed = [key for key in before if before[key] != after[key]]
    assert changed == ["kubernetes:networking.istio.io/v1:VirtualService::podinfo-virtualservice"]


def test_a_canary_version_bump_touches_only_the_canary_deployment_and_keeps_its_selector(program) -> None:
    before = _by_urn_name(program(canaryVersion="6.9.0"))
    after = _by_urn_name(program(canaryVersion="6.9.1"))
    changed = [key for key in before if before[key] != after[key]]
    assert changed == ["kubernetes:apps/v1:Deployment::podinfo-canary"]
    key = changed[0]
    # A changed selector or name would force a replace instead of an in-place rolling update.
    assert before[key]["spec"]["selector"] == after[key]["spec"]["selector"]
    assert before[key]["metadata"]["name"] == after[key]["metadata"]["name"]
