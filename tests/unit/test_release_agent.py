"""The release agent's Deployment under mocks: namespaced minimal RBAC, secrets that stay secret from the stack
config to the pod's environment, a restricted pod with probes, resources and scrape annotations, and nothing at
all when releaseAgent is off."""

from __future__ import annotations

import dataclasses
import re
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.k8s_common import NON_ROOT_UID
from components.monitoring import Monitoring
from components.release_agent import (
    AGENT_NAMESPACE,
    DOCKER_CONFIG_DIR,
    GIT_TOKEN_ENV,
    HTTP_PORT,
    SLACK_WEBHOOK_ENV,
    ReleaseAgentArgs,
)
from istio_canary import cli, credentials, notify
from istio_canary.commands import agent as agent_commands
from stacks import settings
from testkit.mocks import AGENT_SECRETS
from tests.unit.conftest import MOCKS, config, run_program, unsecret

ROOT = Path(__file__).resolve().parents[2]
REPO = "https://github.com/acme/istio-canary.git"
AGENT = {"releaseAgent": "true", "agentGitRepo": REPO}
RBAC_KINDS = ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
AGENT_TYPE = "istio-canary:agent:ReleaseAgent"
READ = ["get", "list", "watch"]


def container(run: Any) -> dict[str, Any]:
    (only,) = pod_spec(run)["containers"]
    return only


def pod_spec(run: Any) -> dict[str, Any]:
    return run.one("Deployment", "canary-agent").inputs["spec"]["template"]["spec"]


def env(run: Any) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(run)["env"]}


def plain_strings(node: Any) -> Iterator[str]:
    """Every string under a node, except inside values marked secret."""
    if isinstance(node, dict):
        if node.get(pulumi.runtime.rpc._special_sig_key) == pulumi.runtime.rpc._special_secret_sig:
            return
        for key, value in node.items():
            yield key
            yield from plain_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from plain_strings(item)
    elif isinstance(node, str):
        yield node


# --- off by default ---------------------------------------------------------------------------------------


def test_nothing_of_the_agent_exists_when_release_agent_is_off(program) -> None:
    run = program()
    assert run.outputs["built"].agent is None
    assert not [r for r in run.resources if r.typ == AGENT_TYPE]
    kinds = {r.kind for r in run.resources if r.custom}
    assert not kinds & {"ServiceAccount", "Secret", *RBAC_KINDS}
    assert not [
        r for r in run.resources if AGENT_NAMESPACE in (r.k8s_name, r.inputs.get("metadata", {}).get("namespace"))
    ]


def test_the_agent_adds_objects_and_changes_none_of_the_others(program) -> None:
    off = {f"{r.typ}::{r.name}": r.inputs for r in program().resources if r.custom}
    on = {f"{r.typ}::{r.name}": r.inputs for r in program(**AGENT).resources if r.custom}
    assert off.items() <= on.items()
    added = sorted((r.split("::")[0].rsplit(":", 1)[-1], r.split("::")[1]) for r in set(on) - set(off))
    assert added == [
        ("Deployment", "canary-agent-deployment"),
        ("Namespace", "canary-agent-namespace"),
        ("Role", "canary-agent-app-role"),
        ("Role", "canary-agent-lease-role"),
        ("RoleBinding", "canary-agent-app-rolebinding"),
        ("RoleBinding", "canary-agent-lease-rolebinding"),
        ("Secret", "canary-agent-secret"),
        ("ServiceAccount", "canary-agent-serviceaccount"),
    ]


def test_a_weight_change_touches_only_the_virtual_service_with_the_agent_on(program) -> None:
    before = {f"{r.typ}::{r.name}": r.inputs for r in program(canaryWeight=10, **AGENT).resources if r.custom}
    after = {f"{r.typ}::{r.name}": r.inputs for r in program(canaryWeight=60, **AGENT).resources if r.custom}
    assert before.keys() == after.keys()
    changed = [key for key in before if before[key] != after[key]]
    assert changed == ["kubernetes:networking.istio.io/v1:VirtualService::podinfo-virtualservice"]


# --- RBAC ----------------------------------------------------------------------------------------------------


def test_rbac_is_namespaced_and_exactly_what_the_agent_needs(program) -> None:
    run = program(**AGENT)
    assert not run.kind("ClusterRole") and not run.kind("ClusterRoleBinding")
    roles = {(r.inputs["metadata"]["namespace"], r.k8s_name): r.inputs["rules"] for r in run.kind("Role")}
    assert roles == {
        # The app namespace: read the live weights and the GA/canary Deployments; no write, no Secrets.
        ("test", "canary-agent"): [
            {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices"], "verbs": READ},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": READ},
        ],
        # Its own namespace: its one Lease by name; create cannot be limited by name (Kubernetes authorizes
        # create before the object's name is known), so it is a rule of its own, in a namespace of its own.
        ("canary-agent", "canary-agent-lease"): [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": ["canary-agent-dev"],
                "verbs": ["get", "update"],
            },
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        ],
    }
    agent = run.outputs["built"].agent
    assert agent.role_rules == {namespace: rules for (namespace, _), rules in roles.items()}
    assert agent.lease_name == "canary-agent-dev"


def test_each_role_is_bound_to_the_agents_service_account_only(program) -> None:
    run = program(**AGENT)
    bindings = run.kind("RoleBinding")
    assert len(bindings) == 2
    for binding in bindings:
        metadata = binding.inputs["metadata"]
        assert binding.inputs["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",  # never a ClusterRole, even bound in a namespace
            "name": metadata["name"],
        }
        assert binding.inputs["subjects"] == [
            {"kind": "ServiceAccount", "name": "canary-agent", "namespace": "canary-agent"}
        ]
        assert run.one("Role", metadata["name"]).inputs["metadata"]["namespace"] == metadata["namespace"]
    account = run.one("ServiceAccount", "canary-agent")
    assert account.inputs["metadata"]["namespace"] == AGENT_NAMESPACE
    assert account.inputs["automountServiceAccountToken"] is False  # only the agent's pod asks for the token
    assert pod_spec(run)["serviceAccountName"] == "canary-agent"
    assert pod_spec(run)["automountServiceAccountToken"] is True


def test_only_the_agent_mounts_a_service_account_token(program) -> None:
    # CKV_K8S_38 is skipped for the agent's sake (checkov-skips.yaml); every other workload still keeps it off.
    run = program(**AGENT)
    mounts = {
        r.k8s_name: r.inputs["spec"]["template"]["spec"].get("automountServiceAccountToken")
        for r in run.kind("Deployment")
    }
    assert mounts == {"podinfo-ga": False, "podinfo-canary": False, "podinfo-load": False, "canary-agent": True}


def test_only_the_agent_takes_secrets_through_its_environment(program) -> None:
    # CKV_K8S_35 is skipped for the agent's sake (checkov-skips.yaml); no other workload may lean on that skip.
    run = program(**AGENT)
    takers = {
        r.k8s_name
        for r in run.kind("Deployment")
        for c in r.inputs["spec"]["template"]["spec"]["containers"]
        for item in c.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert takers == {"canary-agent"}


def test_its_own_namespace_has_no_sidecar_injection(program) -> None:
    namespace = program(**AGENT).one("Namespace", AGENT_NAMESPACE)
    assert namespace.inputs["metadata"]["labels"] == {"istio-injection": "disabled"}


def test_the_app_namespace_cannot_be_the_agents(program) -> None:
    # Refused by settings, naming the key, before the component's own guard is reached.
    with pytest.raises(settings.ConfigError, match="istio-canary:namespace: 'canary-agent' is not allowed"):
        program(namespace=AGENT_NAMESPACE, **AGENT)


# --- secrets --------------------------------------------------------------------------------------------------


def test_the_secret_holds_token_and_webhook_as_secret_outputs(program) -> None:
    secret = program(**AGENT).one("Secret", "canary-agent")
    assert secret.inputs["metadata"]["namespace"] == AGENT_NAMESPACE
    assert secret.inputs["type"] == "Opaque"
    assert "data" not in secret.inputs
    assert unsecret(secret.inputs["stringData"]) == {
        "git-token": AGENT_SECRETS["git_token"],
        "slack-webhook-url": AGENT_SECRETS["slack_webhook_url"],
    }


def test_the_token_and_webhook_appear_in_no_plain_input(program) -> None:
    run = program(**AGENT)
    for resource in run.resources:
        found = [s for s in plain_strings(resource.inputs) for value in AGENT_SECRETS.values() if value in s]
        assert not found, f"{resource.typ} {resource.name}"


def test_the_pod_reads_the_secrets_by_reference(program) -> None:
    variables = env(program(**AGENT))
    assert variables[GIT_TOKEN_ENV] == {
        "name": GIT_TOKEN_ENV,
        "valueFrom": {"secretKeyRef": {"name": "canary-agent", "key": "git-token"}},
    }
    assert variables[SLACK_WEBHOOK_ENV] == {
        "name": SLACK_WEBHOOK_ENV,
        "valueFrom": {"secretKeyRef": {"name": "canary-agent", "key": "slack-webhook-url"}},
    }
    # The name every `canary` command reads the webhook from.
    assert notify.ENV_VAR == SLACK_WEBHOOK_ENV


def test_without_a_webhook_the_secret_and_pod_hold_no_slack_entry() -> None:
    @pulumi.runtime.test
    def synth() -> None:
        from stacks import wiring

        parsed = settings.parse(config(**AGENT), {"project": "acme-canary-dev", "region": "europe-west1"})
        agent = dataclasses.replace(parsed.agent, git_token=pulumi.Output.secret("ghp_only-a-token"))
        wiring.build(dataclasses.replace(parsed, agent=agent))

    synth()
    secret = [r for r in MOCKS.resources if r.typ == "kubernetes:core/v1:Secret"]
    assert [list(unsecret(r.inputs["stringData"])) for r in secret] == [["git-token"]]
    (deployment,) = [r for r in MOCKS.resources if r.custom and r.k8s_name == "canary-agent" and r.kind == "Deployment"]
    (agent_container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    assert SLACK_WEBHOOK_ENV not in {item["name"] for item in agent_container["env"]}


# --- the pod --------------------------------------------------------------------------------------------------


def test_the_agent_runs_restricted_with_writable_work_and_tmp_only(program) -> None:
    run = program(**AGENT)
    spec, agent = pod_spec(run), container(run)
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "fsGroup": NON_ROOT_UID,
    }
    context = agent["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == NON_ROOT_UID
    assert context["allowPrivilegeEscalation"] is False and context["privileged"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["name"]: m["mountPath"] for m in agent["volumeMounts"]}
    assert mounts == {"work": "/work", "tmp": "/tmp"}
    assert {v["name"] for v in spec["volumes"]} == set(mounts)
    assert all(set(v) == {"name", "emptyDir"} and v["emptyDir"]["sizeLimit"] for v in spec["volumes"])
    assert env(run)["HOME"]["value"] == "/tmp"  # git's config and Python's caches are not in the clone


def test_one_replica_recreated_with_probes_resources_and_a_pinned_image(program) -> None:
    run = program(**AGENT, agentImage="ghcr.io/acme/canary-agent:1.2.3")
    spec = run.one("Deployment", "canary-agent").inputs["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    agent = container(run)
    assert agent["image"] == "ghcr.io/acme/canary-agent:1.2.3"
    assert agent["ports"] == [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert agent[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    assert set(agent["resources"]) == {"requests", "limits"}
    for part in ("requests", "limits"):
        assert set(agent["resources"][part]) == {"cpu", "memory"}, part


def test_prometheus_scrapes_its_metrics_port(program) -> None:
    run = program(**AGENT)
    annotations = run.one("Deployment", "canary-agent").inputs["spec"]["template"]["metadata"]["annotations"]
    # The monitoring chart's default `kubernetes-pods` job keeps pods annotated scrape=true, on this port and path.
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9102",
        "prometheus.io/path": "/metrics",
    }
    assert int(annotations["prometheus.io/port"]) == container(run)["ports"][0]["containerPort"]


def test_the_command_and_the_environment(program) -> None:
    run = program(**AGENT)
    agent = container(run)
    assert agent["command"] == [
        "canary", "agent",
        "--stack", "dev",
        "--repo-url", REPO,
        "--listen", "0.0.0.0:9102",
        "--workdir", "/work/clone",
        "--lease-namespace", AGENT_NAMESPACE,
    ]  # fmt: skip
    assert run.outputs["built"].agent.command == agent["command"]
    monitoring: Monitoring = run.outputs["built"].monitoring
    assert env(run)["PROMETHEUS_URL"] == {"name": "PROMETHEUS_URL", "value": monitoring.prometheus_url}
    assert monitoring.prometheus_url == "http://prometheus-server.monitoring.svc.cluster.local:80"


def test_the_canary_command_takes_the_deployments_command_line_and_environment(program) -> None:
    agent = container(program(**AGENT))
    assert agent["command"][0] == "canary"
    args = cli.build_parser().parse_args(agent["command"][1:])
    assert (args.command, args.stack, args.repo_url) == ("agent", "dev", REPO)
    assert (args.listen, args.workdir, args.lease_namespace) == ("0.0.0.0:9102", "/work/clone", AGENT_NAMESPACE)
    assert agent_commands.TOKEN_ENV == GIT_TOKEN_ENV


def test_without_monitoring_the_agent_asks_the_configured_prometheus(program) -> None:
    run = program(monitoring="false", prometheusUrl="http://prometheus.observability:9090", **AGENT)
    assert env(run)["PROMETHEUS_URL"]["value"] == "http://prometheus.observability:9090"


def test_without_monitoring_or_prometheus_url_nothing_is_registered() -> None:
    with pytest.raises(settings.ConfigError, match=r"releaseAgent: true with istio-canary:monitoring false needs "):
        run_program(config(monitoring="false", **AGENT))
    assert MOCKS.resources == []


def test_its_children_wait_for_the_app_and_prometheus(program) -> None:
    run = program(**AGENT)
    assert {"test-namespace", "podinfo-virtualservice", "monitoring-prometheus"} <= set(
        run.depends_on("canary-agent-app-role")
    )
    assert {"canary-agent-secret", "canary-agent-app-rolebinding", "canary-agent-lease-rolebinding"} <= set(
        run.depends_on("canary-agent-deployment")
    )


def test_args_default_only_what_pulumi_yaml_does_not_hold() -> None:
    defaulted = {
        field.name for field in dataclasses.fields(ReleaseAgentArgs) if field.default is not dataclasses.MISSING
    }
    assert defaulted == {"namespace", "depends_on"}


# --- the secrets read from the stack --------------------------------------------------------------------------

STACK_CONFIG = {
    "istio-canary:releaseAgent": "true",
    "istio-canary:agentGitRepo": REPO,
    "gcp:project": "acme-canary-dev",
    "gcp:region": "europe-west1",
}
TOKEN = "ghp_from-the-stack-secret-42"
WEBHOOK = "https://hooks.slack.test/from-the-stack"


@pytest.fixture
def stack_config() -> Iterator[None]:
    yield
    pulumi.runtime.set_all_config({}, [])


def with_secrets(**secrets: str) -> None:
    values = {**STACK_CONFIG, **{f"istio-canary:{key}": value for key, value in secrets.items()}}
    pulumi.runtime.set_all_config(values, [f"istio-canary:{key}" for key in secrets])


def test_main_carries_the_stack_secrets_into_the_kubernetes_secret(stack_config) -> None:
    with_secrets(agentGitToken=TOKEN, slackWebhookUrl=WEBHOOK)

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    program()
    resources = list(MOCKS.resources)
    (secret,) = [r for r in resources if r.typ == "kubernetes:core/v1:Secret"]
    assert unsecret(secret.inputs["stringData"]) == {"git-token": TOKEN, "slack-webhook-url": WEBHOOK}
    assert not [r.name for r in resources if any(TOKEN in s or WEBHOOK in s for s in plain_strings(r.inputs))]


def test_the_agent_without_its_token_is_refused_before_anything_is_registered(stack_config) -> None:
    with_secrets(slackWebhookUrl=WEBHOOK)

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    with pytest.raises(settings.ConfigError, match=r"istio-canary:agentGitToken: releaseAgent is true but"):
        program()
    assert MOCKS.resources == []


def test_a_blank_token_is_no_token(stack_config) -> None:
    with_secrets(agentGitToken="  ")
    with pytest.raises(settings.ConfigError, match="agentGitToken: releaseAgent is true but this secret is not set"):
        settings.load()


def test_a_plain_text_token_is_refused_and_not_echoed(stack_config) -> None:
    pulumi.runtime.set_all_config({**STACK_CONFIG, "istio-canary:agentGitToken": TOKEN}, [])
    with pytest.raises(settings.ConfigError) as error:
        settings.load()
    assert "istio-canary:agentGitToken: is plain text" in str(error.value)
    assert TOKEN not in str(error.value)


def test_the_secrets_are_not_needed_with_the_agent_off(stack_config) -> None:
    pulumi.runtime.set_all_config({key: value for key, value in STACK_CONFIG.items() if "releaseAgent" not in key})
    loaded = settings.load()
    assert not loaded.agent.enabled and loaded.agent.git_token is None


def test_load_hands_the_token_on_as_a_secret(stack_config) -> None:
    with_secrets(agentGitToken=TOKEN)
    seen: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output:
        token = settings.load().agent.git_token
        secret: pulumi.Output[bool] = pulumi.Output.from_input(token.is_secret())
        return pulumi.Output.all(token, secret).apply(lambda values: seen.update(value=values[0], secret=values[1]))

    program()
    assert seen == {"value": TOKEN, "secret": True}


def test_a_token_secret_made_outside_pulumi_keeps_the_token_out_of_config_and_state(program) -> None:
    # agentGitToken pushes to main (and main runs `pulumi up`): a deploy-grade credential. Named here instead,
    # it lives in a Secret made with kubectl or an external-secrets operator, never in stack config or state.
    run = program(**AGENT, agentGitTokenSecret="agent-git-token")
    token = env(run)["CANARY_GIT_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "agent-git-token", "key": "token"}
    managed = run.one("Secret", "canary-agent")
    assert "git-token" not in unsecret(managed.inputs["stringData"])
    assert all(AGENT_SECRETS["git_token"] not in text for r in run.resources for text in plain_strings(r.inputs))


@pytest.mark.parametrize("name", ["Agent_Token", "x" * 254, "a..b"])
def test_a_bad_token_secret_name_is_refused_naming_the_key(name) -> None:
    with pytest.raises(settings.ConfigError, match="istio-canary:agentGitTokenSecret"):
        settings.parse(
            config(**AGENT, agentGitTokenSecret=name), {"project": "acme-canary-dev", "region": "europe-west1"}
        )


def test_load_needs_no_token_when_a_secret_is_named_and_refuses_both(stack_config) -> None:
    named = {**STACK_CONFIG, "istio-canary:agentGitTokenSecret": "agent-git-token"}
    pulumi.runtime.set_all_config(named, [])
    loaded = settings.load()
    assert loaded.agent.git_token_secret == "agent-git-token" and loaded.agent.git_token is None
    pulumi.runtime.set_all_config({**named, "istio-canary:agentGitToken": TOKEN}, ["istio-canary:agentGitToken"])
    with pytest.raises(settings.ConfigError, match="agentGitToken: set although istio-canary:agentGitTokenSecret"):
        settings.load()


# --- registry credentials for the image watch, from outside Pulumi ---------------------------------------------

REGISTRY_SECRET = "agent-registry"
GOOGLE_ACCOUNT = "canary-agent@acme-canary-dev.iam.gserviceaccount.com"


def test_a_registry_secret_is_mounted_read_only_as_dockers_config_json(program) -> None:
    run = program(**AGENT, agentRegistrySecret=REGISTRY_SECRET)
    volumes = {volume["name"]: volume for volume in pod_spec(run)["volumes"]}
    assert volumes["registry"] == {
        "name": "registry",
        "secret": {
            "secretName": REGISTRY_SECRET,
            "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
            "defaultMode": 0o440,
        },
    }
    mounts = {mount["name"]: mount for mount in container(run)["volumeMounts"]}
    assert mounts["registry"] == {"name": "registry", "mountPath": "/var/run/canary/docker", "readOnly": True}
    assert env(run)["DOCKER_CONFIG"] == {"name": "DOCKER_CONFIG", "value": "/var/run/canary/docker"}
    # Where `canary watch-images` looks with that environment: the mounted file.
    assert credentials.docker_config_path({"DOCKER_CONFIG": env(run)["DOCKER_CONFIG"]["value"]}) == Path(
        DOCKER_CONFIG_DIR, "config.json"
    )
    # Made outside Pulumi (kubectl create secret docker-registry): the program neither creates nor reads it.
    assert [secret.k8s_name for secret in run.kind("Secret")] == ["canary-agent"]
    assert REGISTRY_SECRET not in str(run.one("Secret", "canary-agent").inputs)


def test_without_a_registry_secret_there_is_no_docker_config(program) -> None:
    run = program(**AGENT, agentRegistrySecret="")
    assert "DOCKER_CONFIG" not in env(run)
    assert {volume["name"] for volume in pod_spec(run)["volumes"]} == {"work", "tmp"}
    assert {mount["mountPath"] for mount in container(run)["volumeMounts"]} == {"/work", "/tmp"}


def test_a_google_service_account_annotates_the_agents_service_account(program) -> None:
    run = program(**AGENT, agentGoogleServiceAccount=GOOGLE_ACCOUNT)
    metadata = run.one("ServiceAccount", "canary-agent").inputs["metadata"]
    assert metadata["annotations"] == {"iam.gke.io/gcp-service-account": GOOGLE_ACCOUNT}
    assert (metadata["namespace"], metadata["labels"]) == (AGENT_NAMESPACE, {"app": "canary-agent"})
    # The pod runs as that ServiceAccount: GKE's metadata server hands it the Google account's tokens.
    assert pod_spec(run)["serviceAccountName"] == metadata["name"]


def test_without_a_google_service_account_the_service_account_has_no_annotation(program) -> None:
    run = program(**AGENT, agentGoogleServiceAccount="")
    assert "annotations" not in run.one("ServiceAccount", "canary-agent").inputs["metadata"]


def test_the_annotation_needs_no_gke_cluster_of_ours(program) -> None:
    # Any cluster with Workload Identity honours it; an existing one is not refused.
    run = program(clusterMode="existing", **AGENT, agentGoogleServiceAccount=GOOGLE_ACCOUNT)
    annotations = run.one("ServiceAccount", "canary-agent").inputs["metadata"]["annotations"]
    assert annotations == {"iam.gke.io/gcp-service-account": GOOGLE_ACCOUNT}


def test_registry_credentials_change_only_the_agents_pod_and_service_account(program) -> None:
    off = {f"{r.typ}::{r.name}": r.inputs for r in program(**AGENT).resources if r.custom}
    keys = {"agentRegistrySecret": REGISTRY_SECRET, "agentGoogleServiceAccount": GOOGLE_ACCOUNT}
    on = {f"{r.typ}::{r.name}": r.inputs for r in program(**AGENT, **keys).resources if r.custom}
    assert on.keys() == off.keys()
    assert sorted(key.rsplit("::", 1)[1] for key in off if off[key] != on[key]) == [
        "canary-agent-deployment",
        "canary-agent-serviceaccount",
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [("agentRegistrySecret", "Registry_Creds"), ("agentGoogleServiceAccount", "canary-agent@acme.iam.example.com")],
)
def test_a_bad_registry_credential_setting_registers_nothing(key: str, value: str) -> None:
    with pytest.raises(settings.ConfigError, match=re.escape(f"istio-canary:{key}: {value!r} is not allowed")):
        run_program(config(**AGENT, **{key: value}))
    assert MOCKS.resources == []
