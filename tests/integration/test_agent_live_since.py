"""The agent's analyses judge what was live, each its own slice of traffic: `canary agent` as a real process,
time-compressed (2 s interval, 10 s window cut to one interval per analysis), against a real Prometheus scraping
a live exporter, a real bare origin and, where the live routing object matters, a Kubernetes API stand-in on
127.0.0.1 that the agent reads with its real client (the VirtualService with its managedFields, the Deployments,
its Lease).

The bounds on waits are hang detectors; the one lower bound (a step proposed no sooner than analysisIterations
intervals after the routing object was applied) is the rule under test, not a performance claim.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from testkit.agentkit import deployment, start_agent, stop, virtual_service
from testkit.exporter import Traffic
from testkit.livemetrics import live_istio
from testkit.servers import Recorded
from tests.integration import servers
from tests.integration.conftest import Repo, git, stack_text

NAMESPACE = "live"
INTERVAL_S = 2
HEALTHY = Traffic(rps=20, latency_ms=40)
KEYS = """\
  istio-canary:analysisInterval: 2s
  istio-canary:analysisMinRequests: 20
  istio-canary:analysisThreshold: {threshold}
  istio-canary:analysisIterations: {iterations}
  istio-canary:canaryPromotion: auto
  istio-canary:agentWatchImages: false
"""


def agent_stack(weight: int, *, threshold: int = 3, iterations: int = 1000, extra: str = "") -> str:
    return (
        stack_text(namespace=NAMESPACE, weight=weight, window="10s")
        + KEYS.format(threshold=threshold, iterations=iterations)
        + extra
    )


def subjects(repo: Repo) -> list[str]:
    return git(repo.origin, "log", "--reverse", "--format=%s", "main").splitlines()


def wait_for(predicate, timeout: float, log: Path) -> float:
    """Seconds until `predicate()` holds; fails with the agent's log after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.1)
    pytest.fail(f"not within {timeout:g}s; agent log:\n{log.read_text()[-4000:]}")


def passes_logged(log: Path) -> int:
    """How many passes the agent has logged a decision for."""
    return log.read_text().count(" -> ") if log.exists() else 0


@contextmanager
def agent(repo: Repo, prometheus_url: str, tmp_path: Path, *extra: str) -> Iterator[Path]:
    log = tmp_path / "agent.log"
    process = start_agent(repo.origin, prometheus_url, tmp_path / "work", servers.free_port(), log, *extra)
    try:
        yield log
    finally:
        stop(process)


def test_one_bad_interval_is_not_a_rollback_but_a_canary_that_keeps_failing_is(tmp_path, repo):
    repo.write_stack(agent_stack(10), "canary at 10%")
    with (
        live_istio(tmp_path / "prom", NAMESPACE, ga=HEALTHY, canary=HEALTHY) as (exporter, prom),
        agent(repo, prom.url, tmp_path) as log,
    ):
        wait_for(lambda: passes_logged(log) >= 3, timeout=60, log=log)
        exporter.set("canary", error_share=0.5)  # one bad stretch, shorter than an interval
        time.sleep(0.9 * INTERVAL_S)
        exporter.set("canary", error_share=0.0)
        seen = passes_logged(log)
        # Until every window that saw it, and the ten-second one of the old rule, has passed.
        wait_for(lambda: passes_logged(log) >= seen + 8, timeout=60, log=log)
        assert subjects(repo)[-1] == "canary at 10%", log.read_text()[-3000:]
        assert ",fail" in log.read_text() or "verdicts fail" in log.read_text()  # it was seen, and judged
        exporter.set("canary", error_share=0.5)  # now for good
        elapsed = wait_for(lambda: "roll back" in subjects(repo)[-1], timeout=60, log=log)
    message = git(repo.origin, "log", "-1", "--format=%B", "main")
    assert "Reason: canary agent: 3 failed analyses in a row (threshold 3)" in message
    print(
        f"failing canary -> rollback on origin: {elapsed:.1f}s (promise: 3 x {INTERVAL_S}s + {INTERVAL_S}s + a scrape)"
    )


def test_a_check_prometheus_cannot_run_ends_in_a_rollback_after_the_error_limit(tmp_path, repo):
    # Balanced and with {workload}: valid as a template, but `... by (le)` after a whole expression is no PromQL.
    check = (
        "  istio-canary:analysisChecks:\n"
        "    - name: broken\n"
        "      query: 'rate(istio_requests_total{destination_workload=\"{workload}\"}[{window}]) by (le)'\n"
        "      max: 1\n"
        "  istio-canary:analysisErrorLimit: 2\n"
    )
    repo.write_stack(agent_stack(10, extra=check), "canary at 10% with a broken check")
    with (
        live_istio(tmp_path / "prom", NAMESPACE, ga=HEALTHY, canary=HEALTHY) as (_exporter, prom),
        agent(repo, prom.url, tmp_path) as log,
    ):
        wait_for(lambda: "roll back" in subjects(repo)[-1], timeout=60, log=log)
    message = git(repo.origin, "log", "-1", "--format=%B", "main")
    # Every instant the agent read errored (the query never parses), at least the limit's two.
    assert re.search(
        r"Reason: canary agent: [2-9] analyses in a row could not be judged \(analysisErrorLimit 2\)", message
    )
    assert "check broken: Prometheus could not parse its query" in message


# --- a Kubernetes API stand-in: what the agent reads, with the API server's own stamps ------------------------------


class Cluster:
    """Objects by API path, served as the API server answers GET/POST/PUT on them (404 as a Status)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.version = 0

    def put(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.version += 1
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
            self.objects[path] = obj
            return obj

    def apply_virtual_service(self, weight: int, at: float) -> None:
        """The VirtualService as `pulumi up` leaves it, stamped (to the second) as applied at `at`."""
        service = virtual_service(weight)
        stamp = datetime.fromtimestamp(int(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        service["metadata"].update(
            namespace=NAMESPACE,
            creationTimestamp="2025-01-01T00:00:00Z",
            managedFields=[{"manager": "pulumi-kubernetes", "operation": "Apply", "time": stamp}],
        )
        self.put(f"/apis/networking.istio.io/v1/namespaces/{NAMESPACE}/virtualservices/podinfo", service)

    def answer(self, request: Recorded) -> tuple[int, dict[str, str], bytes]:
        path = request.path.split("?", 1)[0]
        if request.method == "POST":
            body = json.loads(request.body)
            path = f"{path}/{body['metadata']['name']}"
            return self._json(201, self.put(path, body))
        if request.method == "PUT":
            return self._json(200, self.put(path, json.loads(request.body)))
        with self.lock:
            found = self.objects.get(path)
        if found is None:
            status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
            return self._json(404, status)
        return self._json(200, found)

    @staticmethod
    def _json(status: int, obj: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()


def rolled_out(name: str, version: str) -> dict[str, Any]:
    obj = deployment(name, f"ghcr.io/stefanprodan/podinfo:{version}", 2)
    obj["metadata"].update(namespace=NAMESPACE, generation=1)
    obj["status"] = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    return obj


def kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: stand-in, cluster: {{server: '{url}'}}}}]\n"
        "users: [{name: agent, user: {token: stand-in-token}}]\n"
        "contexts: [{name: stand-in, context: {cluster: stand-in, user: agent}}]\n"
        "current-context: stand-in\n"
    )
    return path


def test_passes_count_from_when_the_routing_object_was_applied_not_from_the_commit(tmp_path, repo):
    iterations = 3
    cluster = Cluster()
    for name, version in (("podinfo-ga", "6.8.0"), ("podinfo-canary", "6.9.0")):
        cluster.put(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}", rolled_out(name, version))
    cluster.apply_virtual_service(10, time.time() - 600)  # 10 % has been live for ten minutes
    repo.write_stack(agent_stack(60, iterations=iterations), "canary at 60%")  # merged; its `up` has not run yet
    with (
        servers.stub(cluster.answer) as (api_url, _requests),
        live_istio(tmp_path / "prom", NAMESPACE, ga=HEALTHY, canary=HEALTHY) as (_exporter, prom),
        agent(repo, prom.url, tmp_path, "--kubeconfig", str(kubeconfig(tmp_path / "kubeconfig", api_url))) as log,
    ):
        # Healthy passes pile up while Git says 60 % and the cluster still routes 10 %: the agent waits.
        wait_for(lambda: log.exists() and log.read_text().count("waiting for 60% to be live") >= 4, 60, log)
        assert subjects(repo)[-1] == "canary at 60%"
        applied = time.time()
        cluster.apply_virtual_service(60, applied)  # the `up` lands, minutes after the commit
        wait_for(lambda: "promote podinfo-canary 6.9.0 to 100%" in subjects(repo)[-1], 60, log)
        proposed_after = time.time() - applied
    # Every pass that counted judged a whole window of traffic after the apply; none judged 10 %.
    assert proposed_after >= iterations * INTERVAL_S, log.read_text()[-3000:]
    print(f"step proposed {proposed_after:.1f}s after the routing object was applied ({iterations} x {INTERVAL_S}s)")
