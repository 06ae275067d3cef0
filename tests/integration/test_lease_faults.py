"""The agent's Lease under a hanging or failing Kubernetes API: every pass starts with it, so it must never hold the
pass (and with it a rollback), and a leader keeps leading until its own Lease would have expired, as the
coordination.k8s.io contract says nobody else may take it before then (issue 18).

The API is a local HTTP stand-in of the Lease endpoints; `hang` makes it accept and not answer for HANG_S.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from istio_canary.agent.lease import Lease
from testkit.servers import Recorded, stub

NAMESPACE, NAME = "canary-agent", "canary-agent-dev"
HANG_S = 30  # far past the request timeout: reaching it means the call waited for the server
TIMEOUT_S = 0.5


class LeaseApi:
    """GET/POST/PUT of one Lease, or a hang, or a 500."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.mode = "ok"
        self.version = 0
        self.released = threading.Event()

    def __call__(self, request: Recorded) -> tuple[int, dict[str, str], bytes]:
        if self.mode == "hang":
            self.released.wait(HANG_S)
        if self.mode == "error":
            return 500, {"Content-Type": "application/json"}, b'{"kind":"Status","code":500}'
        if request.method in ("POST", "PUT"):
            self.version += 1
            self.lease = json.loads(request.body)
            self.lease["metadata"]["resourceVersion"] = str(self.version)
            return (
                (201 if request.method == "POST" else 200),
                {"Content-Type": "application/json"},
                json.dumps(self.lease).encode(),
            )
        if self.lease is None:
            return 404, {"Content-Type": "application/json"}, b'{"kind":"Status","code":404,"reason":"NotFound"}'
        return 200, {"Content-Type": "application/json"}, json.dumps(self.lease).encode()


@pytest.fixture
def api() -> Iterator[tuple[LeaseApi, Any]]:
    from kubernetes import client

    handler = LeaseApi()
    with stub(handler) as (url, _seen):
        configuration = client.Configuration()
        configuration.host = url
        try:
            yield handler, client.ApiClient(configuration)
        finally:
            handler.released.set()


def lease(api_client: Any, identity: str = "agent-a", duration_s: int = 3) -> Lease:
    # A new object each time, as the loop makes one each pass.
    return Lease(api_client, NAMESPACE, NAME, identity, duration_s, request_timeout_s=TIMEOUT_S)


@pytest.mark.parametrize("fault", ["hang", "error"])
def test_a_leader_keeps_leading_through_an_api_fault_until_its_lease_would_expire(api, fault):
    handler, api_client = api
    assert lease(api_client).acquire()
    handler.mode = fault
    started = time.monotonic()
    assert lease(api_client).acquire()  # still ours: nobody may take it before it expires
    assert time.monotonic() - started < HANG_S / 2  # ended by the request timeout, not by the server
    time.sleep(3.2)  # past the Lease's duration since the last renewal
    assert not lease(api_client).acquire()


@pytest.mark.parametrize("fault", ["hang", "error"])
def test_an_agent_that_never_held_the_lease_does_not_lead_through_a_fault(api, fault):
    handler, api_client = api
    handler.mode = fault
    started = time.monotonic()
    assert not lease(api_client, identity="agent-b").acquire()
    assert time.monotonic() - started < HANG_S / 2
