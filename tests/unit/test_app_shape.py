"""The app's shape as stack config: podinfo's defaults render exactly what the program rendered before these keys
existed (golden manifests captured from that commit; regenerated once since, for the dashboard's live-shape series
of the agent panel, when the only object that differed was the dashboard ConfigMap), and a different service renders its port, probes, user,
command and volumes everywhere they appear; every bad value is refused naming its key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from istio_canary.release.settings import ConfigError, parse
from testkit.manifests import stack_manifests

GOLDEN = Path(__file__).parent / "golden"
GCP = {"project": "acme-prod", "region": "europe-west1"}
# A second service unlike podinfo: hashicorp/http-echo listens on 5678, answers /health, runs as any uid.
ECHO = {
    "appName": "echo",
    "namespace": "echo",
    "image": "hashicorp/http-echo",
    "gaVersion": "1.0.0",
    "canaryVersion": "1.0.0",
    "appPort": "5678",
    "appPortName": "http-echo",
    "appLivenessPath": "/health",
    "appReadinessPath": "/health",
    "appCommand": "[]",
    "appArgs": '["-listen=:5678", "-text=hello from echo"]',
    "appEnv": '["LOG_FORMAT=json"]',
    "appUser": "65532",
    "appWritablePaths": "[]",
    "appCpuRequest": "50m",
    "appMemoryRequest": "16Mi",
    "appCpuLimit": "0.5",
    "appMemoryLimit": "64Mi",
    "loadPath": "/",
    "publicHost": "echo.example.com",
}


def canonical(manifests: list[dict]) -> str:
    """The manifests as one YAML text, objects in file-name order and keys sorted (mock runs keep no key order)."""
    from testkit.manifests import file_name

    ordered = sorted(manifests, key=file_name)
    return "".join("---\n" + yaml.safe_dump(item, sort_keys=True, default_flow_style=False) for item in ordered)


@pytest.mark.parametrize(
    ("golden", "overrides"),
    [
        ("default", {}),
        ("weight-10-tls", {"canaryWeight": "10", "tlsCredentialName": "podinfo-tls"}),
        (
            "release-agent",
            {"releaseAgent": "true", "agentGitRepo": "https://github.com/acme/shop", "agentGitTokenSecret": "tok"},
        ),
    ],
)
def test_podinfo_defaults_render_byte_for_byte_what_they_did_before(golden, overrides):
    assert canonical(stack_manifests(**overrides)) == (GOLDEN / f"{golden}.yaml").read_text()


def by_kind(manifests: list[dict], kind: str, name: str) -> dict:
    (found,) = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def test_a_different_service_renders_its_shape_everywhere():
    manifests = stack_manifests(**ECHO)
    service = by_kind(manifests, "Service", "echo")
    assert service["spec"]["ports"] == [
        {"name": "http-echo", "port": 5678, "targetPort": "http-echo", "protocol": "TCP"}
    ]
    (http,) = by_kind(manifests, "VirtualService", "echo")["spec"]["http"]
    assert {route["destination"]["port"]["number"] for route in http["route"]} == {5678}
    for subset in ("ga", "canary"):
        pod = by_kind(manifests, "Deployment", f"echo-{subset}")["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == "hashicorp/http-echo:1.0.0"
        assert "command" not in container  # the image's entrypoint
        assert container["args"] == ["-listen=:5678", "-text=hello from echo"]
        assert container["env"] == [{"name": "LOG_FORMAT", "value": "json"}]
        assert container["ports"] == [{"name": "http-echo", "containerPort": 5678, "protocol": "TCP"}]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": "http-echo"}
        assert (container["securityContext"]["runAsUser"], container["securityContext"]["runAsGroup"]) == (
            65532,
            65532,
        )
        assert container["resources"] == {
            "requests": {"cpu": "50m", "memory": "16Mi"},
            "limits": {"cpu": "0.5", "memory": "64Mi"},
        }
        assert "volumeMounts" not in container and "volumes" not in pod and "fsGroup" not in pod["securityContext"]
    load = by_kind(manifests, "Deployment", "echo-load")["spec"]["template"]["spec"]["containers"][0]
    assert "http://echo.echo:5678/" in load["command"] + load.get("args", [])
    # The analysis' queries and the dashboard name the workloads by app name.
    dashboard = by_kind(manifests, "ConfigMap", "echo-canary-dashboard")
    panels = json.loads(next(iter(dashboard["data"].values())))["panels"]
    queries = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    assert any('destination_workload="echo-canary"' in query for query in queries)
    assert all('destination_workload_namespace="echo"' in query for query in queries if "istio_" in query)


def test_no_probes_and_an_autoscaler_per_deployment():
    manifests = stack_manifests(
        appLivenessPath="", appReadinessPath="", appMaxReplicas="6", appTargetCpuPercent="70", replicas="2"
    )
    for subset in ("ga", "canary"):
        deployment = by_kind(manifests, "Deployment", f"podinfo-{subset}")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert "livenessProbe" not in container and "readinessProbe" not in container
        assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
        hpa = by_kind(manifests, "HorizontalPodAutoscaler", f"podinfo-{subset}")["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"podinfo-{subset}"}
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
        assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert not [m for m in stack_manifests() if m["kind"] == "HorizontalPodAutoscaler"]


def test_writable_paths_get_unique_volume_names():
    manifests = stack_manifests(appWritablePaths='["/var/cache/nginx", "/var/run", "/tmp"]')
    pod = by_kind(manifests, "Deployment", "podinfo-ga")["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": n, "emptyDir": {}} for n in ("var-cache-nginx", "var-run", "tmp")]
    mounts = pod["containers"][0]["volumeMounts"]
    assert [(m["name"], m["mountPath"]) for m in mounts] == [
        ("var-cache-nginx", "/var/cache/nginx"),
        ("var-run", "/var/run"),
        ("tmp", "/tmp"),
    ]


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("appPort", "0", "whole number from 1 to 65535"),
        ("appPort", "15006", "Istio sidecar does not use"),
        ("appPortName", "tcp", "http, http2, grpc or grpc-web"),
        ("appPortName", "http-a-very-long-name", "at most 15"),
        ("appLivenessPath", "healthz", "HTTP path"),
        ("appReadinessPath", "/ready z", "HTTP path"),
        ("appCommand", '"./server"', "list of strings"),
        ("appArgs", "[1, 2]", "list of strings"),
        ("appEnv", '["1BAD=x"]', "C identifier"),
        ("appEnv", '["A=1", "A=2"]', "A is set twice"),
        ("appUser", "0", "whole number from 1"),
        ("appWritablePaths", '["data"]', "absolute paths"),
        ("appWritablePaths", '["/a/../etc"]', "absolute paths"),
        ("appWritablePaths", '["/data", "/data"]', "absolute paths"),
        ("appCpuRequest", "ten", "CPU quantity"),
        ("appCpuRequest", "2", "at most appCpuLimit"),
        ("appMemoryLimit", "256MB", "memory quantity"),
        ("appMemoryRequest", "1Gi", "at most appMemoryLimit"),
        ("appMaxReplicas", "1", "at least replicas (2)"),
        ("appTargetCpuPercent", "0", "whole number from 1 to 100"),
        ("loadPath", "version", "HTTP path"),
    ],
)
def test_bad_shape_values_are_refused_naming_the_key(key, value, rule):
    with pytest.raises(ConfigError) as error:
        parse({key: value}, GCP, check_environment=False)
    message = str(error.value)
    assert f"istio-canary:{key}: " in message
    assert rule in message


def test_every_bad_shape_key_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        parse({"appPort": "99999", "appPortName": "udp", "appUser": "-1"}, GCP, check_environment=False)
    assert all(f"istio-canary:{key}:" in str(error.value) for key in ("appPort", "appPortName", "appUser"))
