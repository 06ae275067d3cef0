"""components/mesh.py: official Istio charts, one pinned version, in dependency order; or nothing."""

from __future__ import annotations

from components.mesh import GATEWAY_SELECTOR, ISTIO_CHART_REPO, ISTIO_NAMESPACE
from tests.unit.conftest import INGRESS_IP

RELEASE = "kubernetes:helm.sh/v3:Release"


def releases(run) -> dict[str, dict]:
    return {r.inputs["chart"]: r.inputs for r in run.of_type(RELEASE) if r.inputs["namespace"] == ISTIO_NAMESPACE}


def test_istio_charts_are_pinned_to_one_version_from_config(program) -> None:
    charts = releases(program(istioVersion="1.27.3"))
    assert set(charts) >= {"base", "istiod", "gateway"}
    for chart in ("base", "istiod", "gateway"):
        assert charts[chart]["version"] == "1.27.3"
        assert charts[chart]["repositoryOpts"] == {"repo": ISTIO_CHART_REPO}
        assert charts[chart]["namespace"] == ISTIO_NAMESPACE


def test_install_order_is_explicit(program) -> None:
    run = program()
    assert run.depends_on("istio-base") == ["istio-istio-system"]
    assert run.depends_on("istio-istiod") == ["istio-base"]
    assert run.depends_on("istio-gateway") == ["istio-istiod"]
    # Istio objects of the app wait for the whole mesh (CRDs from base, webhooks from istiod).
    assert set(run.depends_on("podinfo-virtualservice")) >= {"istio-base", "istio-istiod", "istio-gateway"}


def test_gateway_service_type_and_labels(program) -> None:
    gateway = releases(program(gatewayServiceType="NodePort"))["gateway"]
    assert gateway["values"]["service"]["type"] == "NodePort"
    assert gateway["values"]["labels"] == GATEWAY_SELECTOR


def test_ingress_address_is_read_from_the_gateway_service(program) -> None:
    run = program()
    assert run.outputs["ingress"] == INGRESS_IP
    (service,) = [r for r in run.resources if r.read]
    assert service.typ == "kubernetes:core/v1:Service"


def test_existing_mesh_installs_nothing(program) -> None:
    run = program(installMesh="false")
    assert releases(run) == {}
    assert not any(r.k8s_name == ISTIO_NAMESPACE for r in run.kind("Namespace"))
    assert run.outputs["ingress"] == ""
