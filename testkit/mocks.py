"""Pulumi mocks, set once per process on import, and helpers that run the program under them.

Shared by the unit tests (tests/unit/conftest.py adds the fixtures), testkit/manifests.py, bench/bench_program.py
and scripts/dump_manifests.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pulumi

from stacks import settings, wiring

PROJECT = "istio-canary"
STACK = "dev"
GKE_ENDPOINT = "203.0.113.10"
INGRESS_IP = "198.51.100.7"
BASE_CONFIG = {"clusterMode": "gke", "clusterLocation": "europe-west1"}
GCP = {"project": "acme-canary-dev", "region": "europe-west1"}
# The release agent's stack secrets. settings.load() reads them with pulumi.Config().get_secret; parse(), which
# the mock runs use, leaves them None, so a run with the agent on gets these, as secrets.
# What a platform stack exports, as a StackReference of an app stack (clusterMode stack) reads it.
PLATFORM_OUTPUTS = {
    "clusterName": "istio-canary-platform",
    "kubeconfig": "apiVersion: v1\nkind: Config\ncurrent-context: platform\n",
    "kubeContext": "",
}
AGENT_SECRETS = {"git_token": "ghp_mock-agent-token-0123456789", "slack_webhook_url": "https://hooks.slack.test/mock"}


@dataclass
class Registered:
    """One resource as the program registered it."""

    typ: str
    name: str
    inputs: dict[str, Any]
    custom: bool
    read: bool

    @property
    def k8s_name(self) -> str:
        return (self.inputs.get("metadata") or {}).get("name", "")

    @property
    def kind(self) -> str:
        return self.inputs.get("kind") or self.typ.rsplit(":", 1)[-1]


class Mocks(pulumi.runtime.Mocks):
    """Records every registration and fills in what the clouds would compute."""

    def __init__(self) -> None:
        self.resources: list[Registered] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        self.resources.append(
            Registered(args.typ, args.name, dict(args.inputs), bool(args.custom), bool(args.resource_id))
        )
        state = dict(args.inputs)
        if args.typ == "gcp:container/cluster:Cluster":
            state |= {
                "endpoint": GKE_ENDPOINT,
                "masterAuth": {"clusterCaCertificate": "Q0EtQ0VSVA=="},
                "network": "default",
            }
        elif args.typ == "gcp:serviceaccount/account:Account":
            state["email"] = f"{args.inputs['accountId']}@{args.inputs['project']}.iam.gserviceaccount.com"
        elif args.typ == "pulumi:pulumi:StackReference":
            state["outputs"] = dict(PLATFORM_OUTPUTS)
        elif args.typ == "kubernetes:core/v1:Service" and args.resource_id:
            state["status"] = {"loadBalancer": {"ingress": [{"ip": INGRESS_IP}]}}
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        return {}, None  # the program calls no provider functions


MOCKS = Mocks()
pulumi.runtime.set_mocks(MOCKS, project=PROJECT, stack=STACK, preview=False, organization="organization")
DEPENDENCIES: dict[str, list[str]] = {}
_register = pulumi.runtime.settings.SETTINGS.monitor.RegisterResource


def _register_recording_dependencies(request: Any) -> Any:
    # MockResourceArgs has no dependencies; the monitor request does.
    DEPENDENCIES[request.name] = [urn.rsplit("::", 1)[-1] for urn in request.dependencies]
    return _register(request)


pulumi.runtime.settings.SETTINGS.monitor.RegisterResource = _register_recording_dependencies


def unsecret(value: Any) -> Any:
    """The plaintext of a value the program marked secret; fails if it is not a secret."""
    assert (
        isinstance(value, dict)
        and value.get(pulumi.runtime.rpc._special_sig_key) == pulumi.runtime.rpc._special_secret_sig
    )
    return value["value"]


def with_agent_secrets(parsed: settings.Settings) -> settings.Settings:
    """`parsed` with AGENT_SECRETS as Pulumi secrets where load() would have put the stack's (agent on only)."""
    if not parsed.agent.enabled or parsed.agent.git_token is not None:
        return parsed
    token: pulumi.Output[str] | None = pulumi.Output.secret(AGENT_SECRETS["git_token"])
    webhook = pulumi.Output.secret(AGENT_SECRETS["slack_webhook_url"])
    if parsed.agent.git_token_secret:  # the token lives in a Secret made outside Pulumi: load() reads none
        token = None
    return replace(parsed, agent=replace(parsed.agent, git_token=token, slack_webhook_url=webhook))


def config(**overrides: Any) -> dict[str, Any]:
    """Stack config for a GKE stack with overrides, keys without the project prefix."""
    return {**BASE_CONFIG, **overrides}


class Program:
    """The resources and outputs of one run of the program under mocks."""

    def __init__(self, resources: list[Registered], outputs: dict[str, Any]) -> None:
        self.resources = resources
        self.outputs = outputs

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def kind(self, kind: str) -> list[Registered]:
        return [r for r in self.resources if r.custom and r.kind == kind]

    def one(self, kind: str, name: str) -> Registered:
        matches = [r for r in self.kind(kind) if r.k8s_name == name]
        assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
        return matches[0]

    def depends_on(self, name: str) -> list[str]:
        """Logical names of the resources `name` was registered as depending on."""
        return DEPENDENCIES[name]

    def urns(self) -> list[str]:
        return list(pulumi.runtime.settings.SETTINGS.monitor.resources)


def run_program(project_config: dict[str, Any], gcp: dict[str, Any] | None = None) -> Program:
    """Validate config and build the whole stack under mocks; return what was registered and the outputs."""
    outputs: dict[str, Any] = {}
    MOCKS.resources.clear()
    DEPENDENCIES.clear()

    @pulumi.runtime.test
    def synth() -> pulumi.Output:
        built = wiring.build(with_agent_secrets(settings.parse(project_config, GCP if gcp is None else gcp)))
        return pulumi.Output.all(
            built.cluster.cluster_name, built.cluster.kubeconfig, built.mesh.ingress_address
        ).apply(lambda values: outputs.update(cluster=values[0], kubeconfig=values[1], ingress=values[2], built=built))

    synth()
    return Program(list(MOCKS.resources), outputs)
