"""Every caller takes its router from the one seam (istio_canary/routers/__init__.py): with the in-memory router
(testkit/memory_router.py) registered and made the default there, and no other file touched, the app component
declares its object instead of Istio's, a weight step changes only that object, the agent's Role reads it, the plan
recognises its step and the agent's live reader fetches and reads it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from istio_canary import plan, routers
from istio_canary.agent import live
from istio_canary.release import settings
from testkit import memory_router
from tests.unit.conftest import GCP, config

AGENT = {"releaseAgent": "true", "agentGitRepo": "https://github.com/acme/istio-canary.git"}
SPLIT_TYPE = memory_router.SPLIT.type_token


@pytest.fixture(autouse=True)
def in_memory_router_by_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(routers.ROUTERS, memory_router.NAME, memory_router.InMemoryRouter())
    monkeypatch.setattr(routers, "DEFAULT", memory_router.NAME)
    yield


def test_the_app_declares_the_routers_object_and_a_weight_step_changes_only_it(program):
    before, after = program(canaryWeight=10, **AGENT), program(canaryWeight=60, **AGENT)
    assert not after.kind("VirtualService") and not after.kind("DestinationRule")
    assert after.one("Split", "podinfo").inputs["spec"] == {"canary": 60}
    old = {f"{r.typ}::{r.name}": r.inputs for r in before.resources if r.custom}
    new = {f"{r.typ}::{r.name}": r.inputs for r in after.resources if r.custom}
    assert [key for key in old if old[key] != new[key]] == [f"{SPLIT_TYPE}::podinfo-split"]
    (role,) = [r for r in after.kind("Role") if r.inputs["metadata"]["namespace"] == "test"]
    assert role.inputs["rules"][0] == {
        "apiGroups": ["canary.example.test"],
        "resources": ["splits"],
        "verbs": ["get", "list", "watch"],
    }


def _state(weight: int) -> dict[str, Any]:
    return {
        "type": SPLIT_TYPE,
        "inputs": {"metadata": {"name": "podinfo", "namespace": "test"}, "spec": {"canary": weight}},
    }


def test_the_plan_reads_the_routers_step():
    app = settings.parse(config(canaryWeight="60"), GCP).app
    urn = f"urn:pulumi:dev::istio-canary::{plan.APP_COMPONENT}${SPLIT_TYPE}::podinfo-split"
    preview = {"steps": [{"op": "update", "urn": urn, "oldState": _state(10), "newState": _state(60)}]}
    reading = plan.read(preview, app)
    assert (reading.kind, reading.before.canary_weight, reading.after.canary_weight) == (plan.MOVE, 10, 60)
    assert reading.unexpected == ()
    preview["steps"][0]["newState"]["inputs"]["spec"]["canary"] = "sixty"
    with pytest.raises(plan.MalformedPreview, match=r"steps\[0\]\.newState\.inputs\.spec\.canary is a string"):
        plan.read(preview, app)


def test_the_live_reader_fetches_the_routers_object(monkeypatch: pytest.MonkeyPatch):
    fetched = []

    class Custom:
        def __init__(self, api_client: object) -> None: ...

        def get_namespaced_custom_object(self, *where: str, **_: object) -> dict[str, Any]:
            fetched.append(where)
            return {"metadata": {"creationTimestamp": "2024-05-01T10:00:00+00:00"}, "spec": {"canary": 0, "mirror": 5}}

    class Apps:
        def __init__(self, api_client: object) -> None: ...

        def read_namespaced_deployment(self, *_: object, **__: object) -> None:
            raise ApiException(status=404)

    monkeypatch.setattr(kubernetes.client, "CustomObjectsApi", Custom)
    monkeypatch.setattr(kubernetes.client, "AppsV1Api", Apps)
    state = live.read(object(), "test", "podinfo")
    assert fetched == [("canary.example.test", "v1alpha1", "test", "splits", "podinfo")]
    assert (state.shape, state.canary_weight) == ("mirror", 0)
