"""The Kubernetes objects of a whole-stack mock run, validated offline against real schemas.

Core objects: kubernetes-validate's strict schemas (unknown fields fail). Istio objects: the
cloudcoil pydantic models, plus a round trip, because the models silently drop unknown fields.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pydantic
import pytest
import yaml
from cloudcoil.models.istio.networking import v1 as networking_v1
from cloudcoil.models.istio.security import v1 as security_v1
from kubernetes_validate.utils import all_versions

from tests.unit.conftest import Registered
from tests.unit.manifests import (
    api_version_kind,
    is_object,
    stack_manifests,
    to_manifest,
    whole_numbers,
    write_manifests,
)

# The GKE REGULAR channel's minor; kubernetes-validate silently falls back to an older schema for a
# version it lacks, so the test below pins that this one ships.
KUBERNETES_VERSION = "1.33"
# Every stack has these; ConfigMap comes with monitoring (the dashboard), the ServiceAccount, Secret and RBAC
# objects with the release agent, and they are validated when present.
REQUIRED_CORE_KINDS = {("v1", "Namespace"), ("apps/v1", "Deployment"), ("v1", "Service")}
RBAC = "rbac.authorization.k8s.io/v1"
CORE_KINDS = REQUIRED_CORE_KINDS | {
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("v1", "Secret"),
    (RBAC, "Role"),
    (RBAC, "RoleBinding"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
}
ISTIO_MODELS: dict[tuple[str, str], type[pydantic.BaseModel]] = {
    ("networking.istio.io/v1", "VirtualService"): networking_v1.VirtualService,
    ("networking.istio.io/v1", "DestinationRule"): networking_v1.DestinationRule,
    ("networking.istio.io/v1", "Gateway"): networking_v1.Gateway,
    ("security.istio.io/v1", "PeerAuthentication"): security_v1.PeerAuthentication,
}
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "weight-10": {"canaryWeight": 10},
    "weight-60": {"canaryWeight": 60},
    "weight-100": {"canaryWeight": 100},
    "tls": {"tlsCredentialName": "podinfo-tls"},
    "no-load-generator": {"loadGenerator": False},
    "release-agent": {"releaseAgent": "true", "agentGitRepo": "https://github.com/acme/istio-canary.git"},
    # The shape steps before real users (istio_canary/release/traffic.py), and an autoscaled app.
    "mirror": {
        "canaryPreSteps": '["mirror:50", "header"]',
        "canaryShape": "mirror",
        "canaryMatch": "header:x-canary=always",
    },
    "header": {
        "canaryPreSteps": '["mirror", "header"]',
        "canaryShape": "header",
        "canaryMatch": "header:x-canary=always",
    },
    "cookie": {"canaryPreSteps": '["header"]', "canaryShape": "header", "canaryMatch": "cookie:canary=always"},
    "autoscaled": {"appMaxReplicas": "6"},
}


def key(manifest: dict[str, Any]) -> tuple[str, str]:
    return manifest["apiVersion"], manifest["kind"]


def validate_core(manifest: dict[str, Any]) -> str:
    """Strict schema validation; returns the Kubernetes version whose schema was used."""
    return kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def istio_round_trip(manifest: dict[str, Any]) -> dict[str, Any]:
    """Parse with the Istio model (type errors raise) and dump back only what was set."""
    model = ISTIO_MODELS[key(manifest)].model_validate(manifest)
    return model.model_dump(by_alias=True, exclude_unset=True, exclude_none=True, mode="json")


def find(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def stack(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return stack_manifests(**CONFIGS[request.param])


# --- the conversion ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typ", "expected"),
    [
        ("kubernetes:core/v1:Namespace", ("v1", "Namespace")),
        ("kubernetes:apps/v1:Deployment", ("apps/v1", "Deployment")),
        ("kubernetes:networking.istio.io/v1:VirtualService", ("networking.istio.io/v1", "VirtualService")),
        ("kubernetes:security.istio.io/v1:PeerAuthentication", ("security.istio.io/v1", "PeerAuthentication")),
    ],
)
def test_api_version_and_kind_come_from_the_type_token(typ: str, expected: tuple[str, str]) -> None:
    assert api_version_kind(typ) == expected


@pytest.mark.parametrize("typ", ["gcp:container/cluster:Cluster", "pulumi:providers:kubernetes"])
def test_other_type_tokens_are_rejected(typ: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes object type"):
        api_version_kind(typ)


def test_whole_floats_become_ints_and_fractions_stay() -> None:
    converted = whole_numbers({"port": 9898.0, "ratio": 0.5, "flag": True, "items": [2.0, "x"]})
    assert converted == {"port": 9898, "ratio": 0.5, "flag": True, "items": [2, "x"]}
    assert type(converted["port"]) is int and type(converted["items"][0]) is int
    assert converted["flag"] is True


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (Registered("kubernetes:apps/v1:Deployment", "d", {}, custom=True, read=False), True),
        (Registered("kubernetes:helm.sh/v3:Release", "istio-base", {}, custom=True, read=False), False),
        (Registered("pulumi:providers:kubernetes", "k8s", {}, custom=True, read=False), False),
        (Registered("istio-canary:app:CanaryApp", "podinfo", {}, custom=False, read=False), False),
        (Registered("kubernetes:core/v1:Service", "ingress", {}, custom=True, read=True), False),
        (Registered("gcp:container/cluster:Cluster", "cluster", {}, custom=True, read=False), False),
    ],
    ids=["deployment", "helm-release", "provider", "component", "read-only-get", "gcp"],
)
def test_only_objects_the_program_creates_become_manifests(resource: Registered, expected: bool) -> None:
    assert is_object(resource) is expected


def test_app_stack_has_exactly_the_expected_objects() -> None:
    manifests = stack_manifests(monitoring=False)
    names = sorted((m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"]) for m in manifests)
    assert names == [
        ("Deployment", "test", "podinfo-canary"),
        ("Deployment", "test", "podinfo-ga"),
        ("Deployment", "test", "podinfo-load"),
        ("DestinationRule", "test", "podinfo"),
        ("Gateway", "test", "podinfo-gateway"),
        ("Namespace", "", "istio-system"),
        ("Namespace", "", "test"),
        ("PeerAuthentication", "test", "default"),
        ("Service", "test", "podinfo"),
        ("VirtualService", "test", "podinfo"),
    ]


def test_top_level_fields_other_than_spec_are_kept() -> None:
    inputs = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dash"}, "data": {"a.json": "{}"}}
    resource = Registered("kubernetes:core/v1:ConfigMap", "dash", inputs, custom=True, read=False)
    assert to_manifest(resource) == inputs


def test_api_version_input_that_disagrees_with_the_type_is_an_error() -> None:
    inputs = {"apiVersion": "networking.istio.io/v1beta1", "kind": "Gateway", "metadata": {"name": "gw"}}
    resource = Registered("kubernetes:networking.istio.io/v1:Gateway", "gw", inputs, custom=True, read=False)
    with pytest.raises(ValueError, match="disagrees"):
        to_manifest(resource)


def test_manifests_carry_ints_not_mock_floats() -> None:
    service = find(stack_manifests(), "Service", "podinfo")
    port = service["spec"]["ports"][0]["port"]
    assert port == 9898 and type(port) is int


def test_written_yaml_reads_back_as_the_same_manifests(tmp_path: Any) -> None:
    manifests = stack_manifests(tlsCredentialName="podinfo-tls")
    paths = write_manifests(tmp_path, manifests)
    assert len(paths) == len(manifests)
    assert [yaml.safe_load(path.read_text()) for path in paths] == manifests


# --- validation of every config -----------------------------------------------------------------------


def test_pinned_kubernetes_schema_ships_with_kubernetes_validate() -> None:
    assert f"{KUBERNETES_VERSION}.0" in all_versions()


def test_every_object_has_a_validator(stack: list[dict[str, Any]]) -> None:
    # A kind added later must get a validator here, not slip through unchecked.
    unknown = {key(m) for m in stack} - CORE_KINDS - set(ISTIO_MODELS)
    assert not unknown


def test_core_objects_pass_strict_schema(stack: list[dict[str, Any]]) -> None:
    core = [m for m in stack if key(m) in CORE_KINDS]
    assert {key(m) for m in core} >= REQUIRED_CORE_KINDS
    for manifest in core:
        assert validate_core(manifest) == KUBERNETES_VERSION


def test_istio_objects_parse_and_round_trip_unchanged(stack: list[dict[str, Any]]) -> None:
    istio = [m for m in stack if key(m) in ISTIO_MODELS]
    assert {key(m) for m in istio} == set(ISTIO_MODELS)
    for manifest in istio:
        assert istio_round_trip(manifest) == manifest, f"{manifest['kind']} {manifest['metadata']['name']}"


@pytest.mark.parametrize("weight", [10, 60, 100])
def test_virtual_service_weights_follow_config(weight: int) -> None:
    service = find(stack_manifests(canaryWeight=weight), "VirtualService", "podinfo")
    routes = service["spec"]["http"][0]["route"]
    assert {r["destination"]["subset"]: r["weight"] for r in routes} == {"ga": 100 - weight, "canary": weight}


# --- the validators catch what they are here for -------------------------------------------------------


def test_round_trip_catches_a_misspelled_istio_field() -> None:
    service = copy.deepcopy(find(stack_manifests(canaryWeight=10), "VirtualService", "podinfo"))
    route = service["spec"]["http"][0]["route"][1]
    route["weigth"] = route.pop("weight")
    # The model accepts it (unknown fields are ignored) ...
    dumped = istio_round_trip(service)
    # ... and drops it, which the comparison sees.
    assert dumped != service
    assert "weigth" not in dumped["spec"]["http"][0]["route"][1]


def test_istio_model_rejects_an_unknown_enum_value() -> None:
    policy = copy.deepcopy(find(stack_manifests(), "PeerAuthentication", "default"))
    policy["spec"]["mtls"]["mode"] = "STRICTLY"
    with pytest.raises(pydantic.ValidationError):
        istio_round_trip(policy)


def test_strict_schema_catches_an_unknown_deployment_field() -> None:
    deployment = copy.deepcopy(find(stack_manifests(), "Deployment", "podinfo-ga"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    # The lax schema lets it through: strict mode is what makes this test suite worth running.
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=False)
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolcy"):
        validate_core(deployment)
