"""LocalControlPlane: etcd + kube-apiserver on 127.0.0.1 for the duration of a `with` block.

Start: certificates (pki.py), etcd on free loopback ports (plain HTTP, --unsafe-no-fsync), kube-apiserver on a
free loopback port (RBAC, no admission plugin that needs a controller), bounded waits for etcd's /health and
the API server's /readyz, then the kubeconfig. Both processes are always stopped on exit (SIGTERM, then
SIGKILL after a bounded wait), also when starting fails half way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Self

from . import process
from .common import ISTIO_CRDS, SERVICE_CIDR, ControlPlaneError
from .crds import apply_crds
from .kubeapi import KubeClient
from .kubeconfig import write_kubeconfig
from .namespaces import NamespaceFinalizer, finalize_terminating_namespaces
from .pki import Pki, make_pki

# Admission plugins enabled by default that need objects a controller would create: the ServiceAccount
# plugin wants each namespace's `default` ServiceAccount (made by the controller-manager) for every Pod.
DISABLED_ADMISSION = "ServiceAccount"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # etcd on loopback: never via a proxy


class LocalControlPlane:
    """etcd + kube-apiserver on 127.0.0.1; `.kubeconfig_path`, `.server`, `.request()`, `.apply_crds()`."""

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        ready_timeout: float = 120.0,
        stop_timeout: float = 15.0,
        finalize_namespaces: bool = True,
        etcd: str | None = None,
        kube_apiserver: str | None = None,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="istio-canary-cp-"))
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.finalize_namespaces = finalize_namespaces
        self.etcd_bin = etcd or process.find_binary("etcd")
        self.apiserver_bin = kube_apiserver or process.find_binary("kube-apiserver")
        self.kubeconfig_path = self.workdir / "kubeconfig"
        self.server = ""
        self.etcd_url = ""
        self.pki: Pki | None = None
        self.client: KubeClient | None = None
        self.etcd: subprocess.Popen | None = None
        self.apiserver: subprocess.Popen | None = None
        self._apiserver_argv: list[str] = []
        self.logs = process.Logs(self.workdir / "logs")
        self._finalizer: NamespaceFinalizer | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start etcd, then kube-apiserver; wait for both; write the kubeconfig. Stops all on failure."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = pki = make_pki(self.workdir / "pki")
        self.etcd_url = f"http://127.0.0.1:{process.free_port()}"
        peer = f"http://127.0.0.1:{process.free_port()}"
        data = self.workdir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        etcd_argv = [self.etcd_bin, "--name", "default", "--data-dir", str(data)]
        etcd_argv += ["--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url]
        etcd_argv += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer]
        etcd_argv += ["--initial-cluster", f"default={peer}", "--initial-cluster-state", "new"]
        etcd_argv += ["--unsafe-no-fsync", "--log-level", "warn"]
        self.etcd = self._spawn("etcd", etcd_argv)
        process.wait_ready("etcd", self.etcd, self._etcd_healthy, self.ready_timeout, self.logs)

        port = process.free_port()
        self.server = f"https://127.0.0.1:{port}"
        self.client = KubeClient(self.server, ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
        self._apiserver_argv = [
            self.apiserver_bin,
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={pki.server_cert}",
            f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            f"--disable-admission-plugins={DISABLED_ADMISSION}",
            # The endpoint reconciler refuses a loopback advertise address; nothing here needs the
            # `kubernetes` Service's endpoints.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            "--v=1",
        ]
        self.apiserver = self._spawn("kube-apiserver", self._apiserver_argv)
        self._wait_apiserver()
        write_kubeconfig(self.kubeconfig_path, self.server, ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
        if self.finalize_namespaces:
            self._finalizer = NamespaceFinalizer(self.client)
            self._finalizer.start()

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd: SIGTERM, bounded wait, SIGKILL. Safe to call twice."""
        if self._finalizer is not None:
            self._finalizer.stop()
            self._finalizer = None
        process.stop(self.apiserver, self.stop_timeout)
        process.stop(self.etcd, self.stop_timeout)
        self.apiserver = self.etcd = None
        self.logs.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def kill_apiserver(self) -> None:
        """SIGKILL kube-apiserver (a crash, not a graceful stop) and reap it; etcd keeps running."""
        if self.apiserver is None or self.apiserver.poll() is not None:
            raise ControlPlaneError("kube-apiserver is not running")
        process.stop(self.apiserver, self.stop_timeout, kill=True)

    def restart_apiserver(self, *, crash: bool = True) -> None:
        """Stop kube-apiserver (SIGKILL if `crash`, else SIGTERM) if it runs, start it again with the same
        command line (same etcd, port and certificates) and wait for /readyz. stop() stops the new process."""
        if self.apiserver is None:
            raise ControlPlaneError("the control plane was never started")
        process.stop(self.apiserver, self.stop_timeout, kill=crash)
        self.apiserver = self._spawn("kube-apiserver", self._apiserver_argv)
        self._wait_apiserver()

    @property
    def pids(self) -> list[int]:
        """PIDs of the running processes (etcd, kube-apiserver)."""
        return [p.pid for p in (self.etcd, self.apiserver) if p is not None]

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a process's log (name: etcd or kube-apiserver)."""
        return self.logs.tail(name, lines)

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 10, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        """One HTTPS call as the admin user; returns (status, JSON or text). HTTP errors are returned."""
        if self.client is None:
            raise ControlPlaneError("the control plane was never started")
        return self.client.request(method, path, body, timeout, content_type)

    def apply_crds(self, path_or_docs: str | Path | list[dict] = ISTIO_CRDS, timeout: float = 60) -> list[str]:
        """Create or update CRDs (file or dicts, default the Istio ones) and wait until Established."""
        return apply_crds(self._started_client(), path_or_docs, timeout)

    def finalize_terminating_namespaces(self) -> list[str]:
        """Remove the `kubernetes` finalizer of Terminating namespaces, so a delete completes."""
        return finalize_terminating_namespaces(self._started_client())

    def _started_client(self) -> KubeClient:
        if self.client is None:
            raise ControlPlaneError("the control plane was never started")
        return self.client

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        return process.spawn(argv, self.logs.open(name), self.workdir)

    def _wait_apiserver(self) -> None:
        assert self.apiserver is not None
        process.wait_ready("kube-apiserver", self.apiserver, self._apiserver_ready, self.ready_timeout, self.logs)

    def _etcd_healthy(self) -> tuple[bool, object]:
        with _DIRECT.open(self.etcd_url + "/health", timeout=3) as resp:
            body = json.loads(resp.read())
        return body.get("health") == "true", body

    def _apiserver_ready(self) -> tuple[bool, object]:
        status, body = self._started_client().request("GET", "/readyz", timeout=3)
        return status == 200, body
