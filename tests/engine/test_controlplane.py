"""toolchain/controlplane.py: a real etcd + kube-apiserver start, serve the REST API and always stop.

Each test starts its own control plane (not the session one) so it can check that the processes are
gone afterwards. A missing binary fails (run `make toolchain`), it never skips.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from toolchain.controlplane import CONTEXT_NAME, ISTIO_CRDS, ControlPlaneError, LocalControlPlane, find_binary


@pytest.fixture(scope="module")
def binaries() -> dict[str, str]:
    try:
        return {name: find_binary(name) for name in ("etcd", "kube-apiserver")}
    except ControlPlaneError as err:
        pytest.fail(str(err), pytrace=False)


def gone(pid: int) -> bool:
    """True when no process (not even a zombie) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_namespace_round_trip_and_processes_stop(binaries: dict[str, str], tmp_path: Path) -> None:
    with LocalControlPlane(tmp_path / "cp", etcd=binaries["etcd"], kube_apiserver=binaries["kube-apiserver"]) as cp:
        pids = cp.pids
        assert len(pids) == 2 and not any(gone(p) for p in pids)
        assert cp.server.startswith("https://127.0.0.1:")
        kubeconfig = cp.kubeconfig_path.read_text()
        assert CONTEXT_NAME in kubeconfig and cp.server in kubeconfig

        status, version = cp.request("GET", "/version")
        assert status == 200 and version["major"] == "1" and version["gitVersion"].startswith("v1."), version

        status, body = cp.request("POST", "/api/v1/namespaces", {"metadata": {"name": "cp-test"}})
        assert status == 201, body
        status, ns = cp.request("GET", "/api/v1/namespaces/cp-test")
        assert status == 200 and ns["metadata"]["name"] == "cp-test"

        # Istio CRDs: Established, and a VirtualService in the new namespace round-trips.
        names = cp.apply_crds(ISTIO_CRDS)
        assert "virtualservices.networking.istio.io" in names and len(names) == 4
        vs = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "podinfo", "namespace": "cp-test"},
            "spec": {"hosts": ["podinfo"], "http": [{"route": [{"destination": {"host": "podinfo"}, "weight": 100}]}]},
        }
        path = "/apis/networking.istio.io/v1/namespaces/cp-test/virtualservices"
        status, body = cp.request("POST", path, vs)
        assert status == 201, body
        status, got = cp.request("GET", f"{path}/podinfo")
        assert status == 200 and got["spec"] == vs["spec"]
        assert cp.apply_crds(ISTIO_CRDS) == names  # re-applying is an update, not an error

        # Without a controller-manager a deleted namespace would stay Terminating; the finalizer thread ends it.
        cp.request("DELETE", f"{path}/podinfo")
        status, _ = cp.request("DELETE", "/api/v1/namespaces/cp-test")
        assert status == 200
        deadline = time.monotonic() + 30
        while cp.request("GET", "/api/v1/namespaces/cp-test")[0] != 404:
            assert time.monotonic() < deadline, "namespace cp-test still present 30s after delete"
            time.sleep(0.5)

    assert all(gone(p) for p in pids), "etcd/kube-apiserver still running after the with block"
    assert cp.etcd is None and cp.apiserver is None


def test_failed_start_stops_etcd(binaries: dict[str, str], tmp_path: Path) -> None:
    """kube-apiserver dying at start raises with its log, and the etcd already started is stopped."""
    plane = LocalControlPlane(tmp_path / "cp", etcd=binaries["etcd"], kube_apiserver="/bin/false", ready_timeout=30)
    with pytest.raises(ControlPlaneError, match="kube-apiserver exited"):
        plane.start()
    assert plane.etcd is None and plane.apiserver is None


def test_restart_apiserver_keeps_data(binaries: dict[str, str], tmp_path: Path) -> None:
    """A crashed kube-apiserver comes back on the same port and etcd; objects survive; stop() stops it."""
    with LocalControlPlane(tmp_path / "cp", etcd=binaries["etcd"], kube_apiserver=binaries["kube-apiserver"]) as cp:
        status, body = cp.request("POST", "/api/v1/namespaces", {"metadata": {"name": "survivor"}})
        assert status == 201, body
        old_pid, server = cp.apiserver.pid, cp.server
        cp.kill_apiserver()
        with pytest.raises(OSError):
            cp.request("GET", "/readyz", timeout=2)
        cp.restart_apiserver()
        assert cp.apiserver.pid != old_pid and cp.server == server
        assert cp.request("GET", "/api/v1/namespaces/survivor")[0] == 200
        pids = cp.pids
    assert all(gone(p) for p in pids)
