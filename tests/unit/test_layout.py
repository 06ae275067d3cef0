"""Platform and app stacks under mocks: an app stack (clusterMode stack) builds its app on the platform's cluster
through a StackReference and nothing of the platform; a platform stack (deployApp false) builds the cluster, mesh
and monitoring and no app; the layout keys are validated like every other key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components.release_agent import app_role_rules
from istio_canary.release.settings import ConfigError, parse
from testkit.mocks import PLATFORM_OUTPUTS, unsecret

GCP = {"project": "acme-prod", "region": "europe-west1"}
APP_STACK = {"clusterMode": "stack", "platformStack": "platform"}
APP_KINDS = {"Namespace", "Deployment", "Service", "DestinationRule", "VirtualService", "Gateway", "PeerAuthentication"}


def test_an_app_stack_deploys_its_app_on_the_platforms_cluster(program):
    run = program(**APP_STACK, appName="echo", namespace="echo")
    (reference,) = run.of_type("pulumi:pulumi:StackReference")
    assert reference.inputs["name"] == "organization/istio-canary/platform"
    assert not [r for r in run.resources if r.typ.startswith("gcp:")]  # no cluster of its own
    assert not [r for r in run.resources if r.typ.startswith("kubernetes:helm")]  # no mesh, no monitoring
    (provider,) = run.of_type("pulumi:providers:kubernetes")
    assert unsecret(provider.inputs["kubeconfig"]) == PLATFORM_OUTPUTS["kubeconfig"]  # and still a secret
    kinds = {r.kind for r in run.resources if r.custom and r.typ.startswith("kubernetes:")}
    assert kinds >= APP_KINDS and "ConfigMap" not in kinds  # no monitoring here: the platform runs it
    assert run.one("Deployment", "echo-canary").inputs["metadata"]["namespace"] == "echo"
    assert run.one("Deployment", "echo-load")  # its own load generator
    # No agent of its own; the platform's agent may read this app's live state, and nothing more.
    (role,) = run.kind("Role")
    assert (role.k8s_name, role.inputs["metadata"]["namespace"]) == ("canary-agent", "echo")
    assert role.inputs["rules"] == app_role_rules()
    (binding,) = run.kind("RoleBinding")
    assert binding.inputs["subjects"] == [
        {"kind": "ServiceAccount", "name": "canary-agent", "namespace": "canary-agent"}
    ]
    assert not run.kind("ServiceAccount") and not [d for d in run.kind("Deployment") if "agent" in d.k8s_name]
    assert run.outputs["built"].cluster.__class__.__name__ == "PlatformRef"


def test_a_qualified_platform_name_is_taken_as_given(program):
    run = program(clusterMode="stack", platformStack="acme/istio-canary/platform")
    (reference,) = run.of_type("pulumi:pulumi:StackReference")
    assert reference.inputs["name"] == "acme/istio-canary/platform"


def test_a_platforms_agent_holds_its_lease_and_reads_no_app_namespace_itself(program):
    run = program(
        deployApp="false",
        releaseAgent="true",
        agentGitRepo="https://github.com/acme/shop",
        agentGitTokenSecret="git-token",
    )
    agent = run.outputs["built"].agent
    assert agent is not None and set(agent.role_rules) == {"canary-agent"}  # the lease only
    assert [r.inputs["metadata"]["namespace"] for r in run.kind("Role")] == ["canary-agent"]
    assert agent.command[agent.command.index("--stack") + 1] == "dev"  # serves the app stacks on `dev`


def test_a_platform_stack_has_no_app(program):
    run = program(deployApp="false")
    assert run.of_type("gcp:container/cluster:Cluster")
    assert run.of_type("kubernetes:helm.sh/v3:Release")  # istio + prometheus + grafana
    app_objects = [r for r in run.resources if r.custom and r.kind in APP_KINDS - {"Namespace"}]
    assert app_objects == []
    assert not [r for r in run.kind("ConfigMap") if "dashboard" in r.k8s_name]
    assert run.outputs["built"].app is None and run.outputs["built"].load is None


@pytest.mark.parametrize(
    ("config", "key", "rule"),
    [
        ({"clusterMode": "stack"}, "platformStack", "the platform stack's name"),
        ({"clusterMode": "stack", "platformStack": "a b"}, "platformStack", "the platform stack's name"),
        ({"clusterMode": "gke", "platformStack": "platform"}, "platformStack", "empty unless clusterMode is stack"),
        ({**APP_STACK, "releaseAgent": "true"}, "releaseAgent", "the platform stack installs it"),
        ({**APP_STACK, "deployApp": "false"}, "deployApp", "exists to deploy its app"),
        ({"clusterMode": "cluster"}, "clusterMode", "one of gke, existing, stack"),
    ],
)
def test_layout_mistakes_are_refused_naming_the_key(config, key, rule):
    with pytest.raises(ConfigError) as error:
        parse(config, GCP)
    assert f"istio-canary:{key}: " in str(error.value)
    assert rule in str(error.value)


def test_keys_on_by_default_are_switched_off_quietly_as_the_engine_hands_over_every_default():
    # The engine passes Pulumi.yaml's defaults as values (installMesh: "true" although no stack file sets it).
    app = parse({**APP_STACK, "installMesh": "true", "monitoring": "true", "loadGenerator": "true"}, GCP)
    assert (app.mesh.install, app.monitoring.enabled, app.load.enabled) == (False, False, True)
    platform = parse({"deployApp": "false", "loadGenerator": "true"}, GCP)
    assert not platform.load.enabled and platform.layout.deploy_app is False


def test_a_platform_stack_refuses_an_app_key_naming_it_and_the_app_stacks_to_use():
    with pytest.raises(ConfigError) as error:
        parse(
            {"deployApp": "false", "canaryWeight": "60", "gaVersion": "6.15.0"},
            GCP,
            stack="platform",
            app_stacks=["echo", "podinfo"],
        )
    message = str(error.value)
    assert "istio-canary:canaryWeight: '60' is not allowed" in message
    assert "istio-canary:gaVersion: '6.15.0' is not allowed" in message
    assert "platform stack (deployApp false) has no app" in message
    assert "(echo, podinfo: `pulumi config set -s echo ...`)" in message
    with pytest.raises(ConfigError, match="platformStack platform"):  # no app stack yet: how to make one
        parse({"deployApp": "false", "canaryWeight": "60"}, GCP, stack="platform")


def test_a_platform_stack_takes_the_defaults_the_engine_hands_over_as_unset():
    handed_over = {
        "canaryWeight": "0",
        "canarySteps": "[10, 60, 100]",
        "imagePrereleases": "false",
        "loadPath": "/version",
    }
    assert parse({"deployApp": "false", **handed_over}, GCP).layout.deploy_app is False


def test_a_platform_stack_with_an_app_key_fails_its_preview(program):
    with pytest.raises(Exception, match="istio-canary:canaryWeight"):
        program(deployApp="false", canaryWeight="60")


def test_an_app_stack_needs_no_gcp_project():
    settings = parse(APP_STACK, {})
    assert (settings.mesh.install, settings.monitoring.enabled, settings.agent.enabled) == (False, False, False)
    assert settings.layout.platform_stack == "platform"


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted(REPO.glob("Pulumi.?*.yaml")), ids=lambda path: path.name)
def test_every_stack_file_in_the_repository_renders(program, path):
    raw = yaml.safe_load(path.read_text())["config"]
    values = {key.split(":", 1)[1]: value for key, value in raw.items() if key.startswith("istio-canary:")}
    as_config = {
        key: json.dumps(value)
        if isinstance(value, list)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
        for key, value in values.items()
    }
    if values.get("clusterMode") == "existing":
        as_config["kubeconfig"] = ""  # the engine tests and make up set their own
    run = program(**as_config)
    built = run.outputs["built"]
    assert (built.app is None) == (values.get("deployApp") == "false")
    assert (built.cluster.__class__.__name__ == "PlatformRef") == (values.get("clusterMode") == "stack")


def test_an_empty_platform_kubeconfig_is_refused_not_taken_for_this_machines_default():
    from components.platform_ref import required_kubeconfig

    with pytest.raises(ValueError, match="exports an empty kubeconfig"):
        required_kubeconfig("", "platform")
    assert required_kubeconfig("/etc/platform/kubeconfig", "platform") == "/etc/platform/kubeconfig"
