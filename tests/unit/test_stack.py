"""The whole program: config read through pulumi.Config, outputs, load generator, test-only transform."""

from __future__ import annotations

import dataclasses
import json
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pulumi
import pytest

from components.canary_app import CanaryAppArgs
from components.cluster import ClusterArgs
from components.load_generator import LoadGeneratorArgs
from components.mesh import MeshArgs
from components.monitoring import MonitoringArgs
from stacks import settings
from stacks.wiring import SKIP_AWAIT_ANNOTATIONS
from tests.unit.conftest import GCP, MOCKS, config, run_program

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack_config() -> Iterator[dict[str, str]]:
    """Config as the engine hands it to the program: namespaced keys, string values."""
    values: dict[str, str] = {}
    yield values
    pulumi.runtime.set_all_config({})


def apply(values: dict[str, str]) -> None:
    pulumi.runtime.set_all_config(values)


def test_load_reads_stack_config_through_pulumi_config(stack_config) -> None:
    stack_config |= {"istio-canary:canaryWeight": "60", "gcp:project": "acme-canary-dev", "gcp:region": "us-east1"}
    apply(stack_config)
    loaded = settings.load()
    assert loaded.app.canary_weight == 60
    assert loaded.cluster.project == "acme-canary-dev"
    assert loaded.cluster.location == "us-east1"


def test_load_rejects_a_misspelled_key_in_the_stack(stack_config) -> None:
    stack_config |= {"istio-canary:canaryWeigth": "60", "gcp:project": "acme-canary-dev", "gcp:region": "us-east1"}
    apply(stack_config)
    with pytest.raises(settings.ConfigError, match="istio-canary:canaryWeigth: unknown config key"):
        settings.load()


def test_load_accepts_the_undeclared_slack_secret_without_reading_it(stack_config) -> None:
    stack_config |= {"istio-canary:slackWebhookUrl": "https://hooks.example/x", "gcp:project": "acme-canary-dev"}
    stack_config["gcp:region"] = "us-east1"
    apply(stack_config)
    assert settings.load().app.canary_weight == 0


def test_main_validates_before_registering_anything(stack_config) -> None:
    stack_config |= {"istio-canary:canaryWeight": "101", "gcp:project": "acme-canary-dev", "gcp:region": "us-east1"}
    apply(stack_config)

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    with pytest.raises(settings.ConfigError, match="istio-canary:canaryWeight: '101'"):
        program()
    assert MOCKS.resources == []


def test_main_exports_name_kubeconfig_ingress_and_split(stack_config) -> None:
    stack_config |= {"istio-canary:canaryWeight": "10", "gcp:project": "acme-canary-dev", "gcp:region": "us-east1"}
    apply(stack_config)
    exported: dict[str, object] = {}

    def capture(name: str, value: object) -> None:
        exported[name] = value

    original = pulumi.export
    pulumi.export = capture
    try:

        @pulumi.runtime.test
        def program() -> pulumi.Output:
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
            return pulumi.Output.all(**exported).apply(exported.update)

        program()
    finally:
        pulumi.export = original
    assert set(exported) >= {"clusterName", "kubeconfig", "ingressAddress", "split"}
    assert exported["clusterName"] == "istio-canary"
    assert exported["split"] == {"ga": 90, "canary": 10}
    assert "gke-gcloud-auth-plugin" in str(exported["kubeconfig"])


def test_kubeconfig_output_is_secret() -> None:
    secret: dict[str, bool] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output:
        from stacks.wiring import build

        built = build(settings.parse(config(), GCP))
        # is_secret() is a coroutine; from_input awaits it (its type hints do not say so).
        flag: pulumi.Output[bool] = pulumi.Output.from_input(cast(Any, built.cluster.kubeconfig.is_secret()))
        return flag.apply(lambda value: secret.update(flag=value))

    program()
    assert secret == {"flag": True}


def test_load_generator_runs_the_seed_command_with_configured_rate() -> None:
    run = run_program(config(loadRate="7", loadConcurrency="3"))
    deployment = run.one("Deployment", "podinfo-load")
    (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["hey", "-n", "1000000", "-c", "3", "-q", "7", "http://podinfo.test:9898/version"]
    assert not container["image"].endswith(":latest")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    annotations = deployment.inputs["spec"]["template"]["metadata"]["annotations"]
    assert json.loads(annotations["proxy.istio.io/config"]) == {"holdApplicationUntilProxyStarts": True}


def test_load_generator_can_be_switched_off() -> None:
    run = run_program(config(loadGenerator="false"))
    assert [r for r in run.kind("Deployment") if r.k8s_name == "podinfo-load"] == []
    assert not any(r.typ == "istio-canary:load:LoadGenerator" for r in run.resources)


def test_skip_await_annotates_every_kubernetes_object_and_nothing_else() -> None:
    run = run_program(config(skipAwait="true"))
    objects = [r for r in run.resources if r.custom and r.typ.startswith("kubernetes:") and "helm" not in r.typ]
    objects = [r for r in objects if not r.read and r.typ != "pulumi:providers:kubernetes"]
    assert len(objects) >= 9
    for r in objects:
        assert r.inputs["metadata"].get("annotations", {}).items() >= SKIP_AWAIT_ANNOTATIONS.items(), r.name
    plain = run_program(config())
    assert all("annotations" not in r.inputs.get("metadata", {}) for r in plain.kind("Deployment"))


def test_components_use_their_type_tokens() -> None:
    run = run_program(config())
    components = {r.typ for r in run.resources if not r.custom}
    assert components >= {
        "istio-canary:cluster:Cluster",
        "istio-canary:mesh:Mesh",
        "istio-canary:app:CanaryApp",
        "istio-canary:load:LoadGenerator",
    }
    app_children = [u for u in run.urns() if "kubernetes:apps/v1:Deployment::podinfo-ga" in u]
    assert app_children and all("istio-canary:app:CanaryApp$" in u for u in app_children)


def test_component_args_default_only_what_pulumi_yaml_does_not_hold() -> None:
    # A default here would be a second home for a Pulumi.yaml default, and could silently disagree with it.
    component_owned = {
        ("CanaryAppArgs", "depends_on"),
        ("LoadGeneratorArgs", "image"),
        ("LoadGeneratorArgs", "depends_on"),
        ("MonitoringArgs", "namespace"),
        ("MonitoringArgs", "depends_on"),
    }
    defaulted = {
        (args.__name__, field.name)
        for args in (ClusterArgs, MeshArgs, CanaryAppArgs, LoadGeneratorArgs, MonitoringArgs)
        for field in dataclasses.fields(args)
        if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
    }
    assert defaulted == component_owned
