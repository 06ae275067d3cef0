"""The release agent against a real kube-apiserver: its Lease (one leader) and its read-only view of the app."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from kubernetes import client, config

from istio_canary.agent import live
from istio_canary.agent.lease import Lease
from testkit.agentkit import deployment, virtual_service

NAMESPACE = "agent-test"


@pytest.fixture(scope="module")
def api(control_plane: Any) -> Any:
    """An admin client of the session's API server, and the test namespace."""
    api_client = config.new_client_from_config(config_file=str(control_plane.kubeconfig_path))
    client.CoreV1Api(api_client).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    return api_client


def test_one_leader_and_a_takeover_only_after_expiry(api):
    first = Lease(api, NAMESPACE, "canary-agent-dev", "agent-a", duration_s=2)
    second = Lease(api, NAMESPACE, "canary-agent-dev", "agent-b", duration_s=2)
    assert first.acquire() is True
    assert second.acquire() is False  # held and fresh
    assert first.acquire() is True  # renewal
    time.sleep(2.5)
    assert second.acquire() is True  # expired: taken over
    assert first.acquire() is False
    holder = client.CoordinationV1Api(api).read_namespaced_lease("canary-agent-dev", NAMESPACE).spec.holder_identity
    assert holder == "agent-b"


def test_two_agents_racing_for_an_expired_lease_do_not_both_win(api, monkeypatch):
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    Lease(api, NAMESPACE, "canary-agent-race", "agent-old", duration_s=1).acquire(now=stale)
    contenders = [Lease(api, NAMESPACE, "canary-agent-race", f"agent-{i}", duration_s=30) for i in range(2)]
    # Both read the same expired Lease, then both write: the API server's resourceVersion check lets one win.
    seen = client.CoordinationV1Api(api).read_namespaced_lease("canary-agent-race", NAMESPACE)
    monkeypatch.setattr(client.CoordinationV1Api, "read_namespaced_lease", lambda *_args, **_kwargs: seen)
    results = [lease.acquire() for lease in contenders]
    assert sorted(results) == [False, True]


def test_the_live_state_is_read_from_the_api_server(api):
    apps: Any = client.AppsV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    assert live.read(api, NAMESPACE, "podinfo") == live.Live(None, None, False, None)  # nothing there yet
    apps.create_namespaced_deployment(NAMESPACE, deployment("podinfo-ga", "ghcr.io/stefanprodan/podinfo:6.8.0", 2))
    apps.create_namespaced_deployment(NAMESPACE, deployment("podinfo-canary", "ghcr.io/stefanprodan/podinfo:6.9.0", 2))
    service = virtual_service(10)
    custom.create_namespaced_custom_object("networking.istio.io", "v1", NAMESPACE, "virtualservices", service)
    state = live.read(api, NAMESPACE, "podinfo")
    # No controller runs here: GA's rollout is not reported complete until its status says so.
    assert state == live.Live(canary_weight=10, ga_version="6.8.0", ga_rolled_out=False, canary_version="6.9.0")
    ga = apps.read_namespaced_deployment("podinfo-ga", NAMESPACE)
    status = {
        "observedGeneration": ga.metadata.generation,
        "replicas": 2,
        "updatedReplicas": 2,
        "availableReplicas": 2,
        "readyReplicas": 2,
    }
    apps.patch_namespaced_deployment_status("podinfo-ga", NAMESPACE, {"status": status})
    assert live.read(api, NAMESPACE, "podinfo").ga_rolled_out is True
    # Drift as someone makes it: a hand edit of the live VirtualService shows up in the next read.
    service["spec"]["http"][0]["route"][1]["weight"] = 60
    service["spec"]["http"][0]["route"][0]["weight"] = 40
    custom.patch_namespaced_custom_object(
        "networking.istio.io", "v1", NAMESPACE, "virtualservices", "podinfo", {"spec": service["spec"]}
    )
    assert live.read(api, NAMESPACE, "podinfo").canary_weight == 60
