"""`canary agent` with the credentials its Role grants (not admin) against the real kube-apiserver: it reads the
live state, holds the Lease, reports drift, proposes a step only once the previous one is live, and two agents
elect one leader. A live exporter scraped by a real Prometheus supplies the metrics; a bare origin is Git."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from components.release_agent import app_role_rules, lease_role_rules
from istio_canary.release.names import agent_lease_name
from testkit import servers
from testkit.agentkit import bare_origin, deployment, git, start_agent, stop, virtual_service
from testkit.exporter import Traffic
from testkit.livemetrics import live_istio
from testkit.stackfiles import stack_text

APP_NAMESPACE = "agent-app"
AGENT_NAMESPACE = "agent-home"
HEALTHY = Traffic(rps=20, latency_ms=40)
KEYS = """\
  istio-canary:analysisInterval: 2s
  istio-canary:analysisMinRequests: 20
  istio-canary:analysisIterations: 2
  istio-canary:canaryPromotion: auto
  istio-canary:agentWatchImages: false  # no registry here (image automation: test_agent_images.py)
  istio-canary:agentDriftGrace: 2s
"""


@pytest.fixture(scope="module")
def admin(control_plane: Any) -> Any:
    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig_path))
    core: Any = client.CoreV1Api(api)
    for name in (APP_NAMESPACE, AGENT_NAMESPACE):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return api


@pytest.fixture(scope="module")
def agent_kubeconfig(admin: Any, control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig holding a token of the agent's ServiceAccount, bound to the component's own Role rules."""
    # Any: the client's stubs want model objects; plain dicts are what its serializer sends either way.
    core: Any = client.CoreV1Api(admin)
    rbac: Any = client.RbacAuthorizationV1Api(admin)
    core.create_namespaced_service_account(AGENT_NAMESPACE, {"metadata": {"name": "canary-agent"}})
    grants = {APP_NAMESPACE: app_role_rules(), AGENT_NAMESPACE: lease_role_rules(agent_lease_name("dev"))}
    for namespace, rules in grants.items():
        rbac.create_namespaced_role(namespace, {"metadata": {"name": "canary-agent"}, "rules": rules})
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "canary-agent"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "canary-agent"},
                "subjects": [{"kind": "ServiceAccount", "name": "canary-agent", "namespace": AGENT_NAMESPACE}],
            },
        )
    token = core.create_namespaced_service_account_token(
        "canary-agent", AGENT_NAMESPACE, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    kubeconfig = yaml.safe_load(control_plane.kubeconfig_path.read_text())
    kubeconfig["users"][0]["user"] = {"token": token}
    path = tmp_path_factory.mktemp("agent") / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


def _app_objects(admin: Any, live_weight: int) -> None:
    apps: Any = client.AppsV1Api(admin)
    custom: Any = client.CustomObjectsApi(admin)
    for name, tag in (("podinfo-ga", "6.8.0"), ("podinfo-canary", "6.9.0")):
        apps.create_namespaced_deployment(APP_NAMESPACE, deployment(name, f"ghcr.io/stefanprodan/podinfo:{tag}"))
    custom.create_namespaced_custom_object(
        "networking.istio.io", "v1", APP_NAMESPACE, "virtualservices", virtual_service(live_weight)
    )


def _metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def _wait(predicate: Any, timeout: float, logs: list[Path]) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return
        time.sleep(0.25)
    pytest.fail(f"not within {timeout:g}s; agent logs:\n" + "\n".join(log.read_text()[-2500:] for log in logs))


def test_the_role_reads_but_cannot_write(agent_kubeconfig, admin):
    _app_objects(admin, live_weight=0)
    agent_api = config.new_client_from_config(config_file=str(agent_kubeconfig))
    custom = client.CustomObjectsApi(agent_api)
    assert custom.get_namespaced_custom_object("networking.istio.io", "v1", APP_NAMESPACE, "virtualservices", "podinfo")
    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object(
            "networking.istio.io",
            "v1",
            APP_NAMESPACE,
            "virtualservices",
            "podinfo",
            {"spec": virtual_service(100)["spec"]},
        )
    assert refused.value.status == 403  # nothing but `pulumi up` writes the cluster
    with pytest.raises(ApiException) as elsewhere:
        client.AppsV1Api(agent_api).list_namespaced_deployment("default")
    assert elsewhere.value.status == 403  # nothing outside the app namespace


def test_drift_then_live_then_a_step_with_one_leader_of_two(agent_kubeconfig, admin, tmp_path):
    """Git says 10 %, the cluster 0 %: drift, no proposal. Once the cluster serves 10 %, the step to 60 % comes,
    once, from whichever of the two agents holds the Lease."""
    bare = bare_origin(tmp_path, stack_text(namespace=APP_NAMESPACE, weight=10, window="10s") + KEYS, "canary at 10%")
    ports = [servers.free_port(), servers.free_port()]
    logs = [tmp_path / "agent-a.log", tmp_path / "agent-b.log"]
    with live_istio(tmp_path / "prom", APP_NAMESPACE, ga=HEALTHY, canary=HEALTHY) as (_exporter, prom):
        lease = ("--kubeconfig", str(agent_kubeconfig), "--lease-namespace", AGENT_NAMESPACE)
        agents = [start_agent(bare, prom.url, tmp_path / f"work-{i}", ports[i], logs[i], *lease) for i in range(2)]
        try:
            _wait(lambda: any(_metric(p, "canary_agent_drift") == 1 for p in ports), timeout=60, logs=logs)
            leaders = [_metric(p, "canary_agent_leader") for p in ports]
            assert sorted(v or 0 for v in leaders) == [0, 1], leaders
            time.sleep(6)  # passes pile up, but the step is not live: nothing is proposed
            assert git(bare, "log", "-1", "--format=%s", "main").strip() == "canary at 10%"
            client.CustomObjectsApi(admin).patch_namespaced_custom_object(
                "networking.istio.io",
                "v1",
                APP_NAMESPACE,
                "virtualservices",
                "podinfo",
                {"spec": virtual_service(10)["spec"]},
            )
            _wait(lambda: "to 60%" in git(bare, "log", "-1", "--format=%s", "main"), timeout=60, logs=logs)
            time.sleep(6)  # Git says 60, the cluster 10 until an `up`: no second proposal, by either agent
        finally:
            for process in agents:
                stop(process)
    subjects = git(bare, "log", "--format=%s", "main").splitlines()
    assert sum("to 60%" in s for s in subjects) == 1 and not any("to 100%" in s for s in subjects), subjects
