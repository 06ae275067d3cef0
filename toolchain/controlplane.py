"""A throwaway Kubernetes control plane on 127.0.0.1: etcd + kube-apiserver, nothing else.

    with LocalControlPlane(workdir) as plane:
        plane.kubeconfig_path   # kubeconfig, context "istio-canary-local", admin client cert
        plane.server            # https://127.0.0.1:<port>
        plane.apply_crds(ISTIO_CRDS)

What it does: makes a CA, a serving cert for 127.0.0.1, an admin client cert (O=system:masters) and a
service-account key pair with the `openssl` CLI; starts etcd (plain HTTP on free loopback ports,
--unsafe-no-fsync) and kube-apiserver (free loopback port, RBAC, no admission plugin that needs a
controller); waits, bounded, for etcd's /health and the API server's /readyz; writes the kubeconfig.
Both processes are always stopped on exit (SIGTERM, then SIGKILL after a bounded wait), also when
starting fails half way.

There is no controller-manager, scheduler or kubelet: Pods never run, Deployments never become ready,
and nothing garbage-collects. A deleted Namespace would stay Terminating forever, so by default a small
thread plays the namespace controller's last step: it finalizes Terminating namespaces that are empty
of the kinds we create (see `finalize_namespaces`).

Binaries: $ISTIO_CANARY_ETCD / $ISTIO_CANARY_KUBE_APISERVER, else the newest
<toolchain cache>/<name>-v*/<name> built by toolchain/build.sh, else PATH.

CLI (for `make up STACK=local`):

    python -m toolchain.controlplane up --dir DIR [--crds tests/engine/istio_crds.yaml]

prints the kubeconfig path and `export KUBECONFIG=...`, then stays in the foreground until SIGTERM/SIGINT.
Only the standard library and `openssl` are needed (PyYAML only to read a YAML CRD file).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

CONTEXT_NAME = "istio-canary-local"
USER_NAME = "istio-canary-admin"
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
REPO = Path(__file__).resolve().parents[1]
ISTIO_CRDS = REPO / "tests" / "engine" / "istio_crds.yaml"
TOOLCHAIN_CACHE = Path(os.environ.get("ISTIO_CANARY_TOOLCHAIN", Path.home() / ".cache/istio-canary/toolchain"))
# Admission plugins enabled by default that need objects a controller would create: the ServiceAccount
# plugin wants each namespace's `default` ServiceAccount (made by the controller-manager) for every Pod.
DISABLED_ADMISSION = "ServiceAccount"


class ControlPlaneError(RuntimeError):
    """Starting or talking to the local control plane failed; the message includes the log tail."""


# --- binaries ----------------------------------------------------------------------------------------


def find_binary(name: str) -> str:
    """$ISTIO_CANARY_<NAME>, else the newest toolchain cache build, else PATH."""
    env_name = "ISTIO_CANARY_" + name.upper().replace("-", "_")
    if os.environ.get(env_name):
        return os.environ[env_name]
    built = sorted(
        (d / name for d in TOOLCHAIN_CACHE.glob(f"{name}-v*") if not d.name.endswith(".tmp")),
        key=lambda p: p.parent.name,
    )
    built = [p for p in built if os.access(p, os.X_OK)]
    if built:
        return str(built[-1])
    found = shutil.which(name)
    if found:
        return found
    raise ControlPlaneError(f"{name} not found (${env_name}, {TOOLCHAIN_CACHE}/{name}-v*/, PATH): run make toolchain")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PKI (openssl CLI) ---------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def make_pki(pki: Path) -> dict[str, Path]:
    """CA, API server serving cert, admin client cert and service-account key pair in `pki`."""
    if not shutil.which("openssl"):
        raise ControlPlaneError("openssl not found on PATH (apt-get install openssl)")
    pki.mkdir(parents=True, exist_ok=True)
    days = "30"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        days,
        "-subj",
        "/CN=istio-canary-local-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=pki,
    )
    sans = ",".join(
        [
            "IP:127.0.0.1",
            f"IP:{SERVICE_IP}",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    (pki / "server.ext").write_text(
        f"subjectAltName={sans}\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    (pki / "client.ext").write_text("keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n")
    for name, subj, ext in (
        ("server", "/CN=kube-apiserver", "server.ext"),
        # O=system:masters: bound to cluster-admin by the API server's bootstrap RBAC policy.
        ("admin", f"/O=system:masters/CN={USER_NAME}", "client.ext"),
    ):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            subj,
            cwd=pki,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            days,
            "-extfile",
            ext,
            cwd=pki,
        )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    for key in pki.glob("*.key"):
        key.chmod(0o600)
    return {
        n: pki / f
        for n, f in (
            ("ca", "ca.crt"),
            ("server_cert", "server.crt"),
            ("server_key", "server.key"),
            ("client_cert", "admin.crt"),
            ("client_key", "admin.key"),
            ("sa_key", "sa.key"),
            ("sa_pub", "sa.pub"),
        )
    }


# --- the control plane ---------------------------------------------------------------------------------


class LocalControlPlane:
    """etcd + kube-apiserver on 127.0.0.1 for the duration of a `with` block."""

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
        self.etcd_bin = etcd or find_binary("etcd")
        self.apiserver_bin = kube_apiserver or find_binary("kube-apiserver")
        self.kubeconfig_path = self.workdir / "kubeconfig"
        self.server = ""
        self.etcd_url = ""
        self.pki: dict[str, Path] = {}
        self.etcd: subprocess.Popen | None = None
        self.apiserver: subprocess.Popen | None = None
        self._ssl: ssl.SSLContext | None = None
        self._stop = threading.Event()
        self._finalizer: threading.Thread | None = None
        self._logs: dict[str, Any] = {}

    # -- lifecycle --

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
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.pki = make_pki(self.workdir / "pki")
        self._ssl = ssl.create_default_context(cafile=str(self.pki["ca"]))
        self._ssl.load_cert_chain(str(self.pki["client_cert"]), str(self.pki["client_key"]))

        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        data = self.workdir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        self.etcd = self._spawn(
            "etcd",
            [
                self.etcd_bin,
                "--name",
                "default",
                "--data-dir",
                str(data),
                "--listen-client-urls",
                self.etcd_url,
                "--advertise-client-urls",
                self.etcd_url,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"default={peer}",
                "--initial-cluster-state",
                "new",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
        )
        self._wait("etcd", self.etcd, self._etcd_healthy, self.ready_timeout)

        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        self.apiserver = self._spawn(
            "kube-apiserver",
            [
                self.apiserver_bin,
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={self.pki['server_cert']}",
                f"--tls-private-key-file={self.pki['server_key']}",
                f"--client-ca-file={self.pki['ca']}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.pki['sa_pub']}",
                f"--service-account-signing-key-file={self.pki['sa_key']}",
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
            ],
        )
        self._wait("kube-apiserver", self.apiserver, self._apiserver_ready, self.ready_timeout)
        self._write_kubeconfig()
        if self.finalize_namespaces:
            self._finalizer = threading.Thread(target=self._finalize_loop, name="ns-finalizer", daemon=True)
            self._finalizer.start()

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd: SIGTERM, bounded wait, SIGKILL. Safe to call twice."""
        self._stop.set()
        if self._finalizer is not None:
            self._finalizer.join(5)
            self._finalizer = None
        for attr in ("apiserver", "etcd"):
            proc: subprocess.Popen | None = getattr(self, attr)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(self.stop_timeout)
            setattr(self, attr, None)
        for handle in self._logs.values():
            handle.close()
        self._logs = {}
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def kill_apiserver(self) -> None:
        """SIGKILL kube-apiserver (a crash, not a graceful stop) and reap it; etcd keeps running."""
        if self.apiserver is None or self.apiserver.poll() is not None:
            raise ControlPlaneError("kube-apiserver is not running")
        self.apiserver.kill()
        self.apiserver.wait(self.stop_timeout)

    def restart_apiserver(self, *, crash: bool = True) -> None:
        """Stop kube-apiserver (SIGKILL if `crash`, else SIGTERM) if it runs, start it again with the same
        command line (same etcd, port, certificates) and wait for /readyz. stop() stops the new process."""
        if self.apiserver is None:
            raise ControlPlaneError("the control plane was never started")
        if self.apiserver.poll() is None:
            if crash:
                self.kill_apiserver()
            else:
                self.apiserver.terminate()
                try:
                    self.apiserver.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self.apiserver.kill()
                    self.apiserver.wait(self.stop_timeout)
        argv = [str(a) for a in self.apiserver.args]
        self.apiserver = self._spawn("kube-apiserver", argv)
        self._wait("kube-apiserver", self.apiserver, self._apiserver_ready, self.ready_timeout)

    @property
    def pids(self) -> list[int]:
        """PIDs of the running processes (etcd, kube-apiserver)."""
        return [p.pid for p in (self.etcd, self.apiserver) if p is not None]

    # -- helpers --

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        if name in self._logs:  # a restart: keep the earlier output
            self._logs[name].close()
        log = open(self.workdir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs[name] = log
        return subprocess.Popen(
            argv,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a process's log (name: etcd or kube-apiserver)."""
        try:
            return "\n".join((self.workdir / "logs" / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _wait(self, name: str, proc: subprocess.Popen, probe: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ControlPlaneError(f"{name} exited with {proc.returncode} while starting:\n{self.log_tail(name)}")
            try:
                ok, last = probe()
                if ok:
                    return
            except (OSError, ValueError) as err:
                last = err
            time.sleep(0.25)
        raise ControlPlaneError(f"{name} not ready after {timeout:.0f}s (last: {last}):\n{self.log_tail(name)}")

    def _etcd_healthy(self) -> tuple[bool, object]:
        with urllib.request.urlopen(self.etcd_url + "/health", timeout=3) as resp:
            body = json.loads(resp.read())
        return body.get("health") == "true", body

    def _apiserver_ready(self) -> tuple[bool, object]:
        status, body = self.request("GET", "/readyz", timeout=3)
        return status == 200, body

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 10, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        """One HTTPS call as the admin user; returns (status, JSON or text). HTTP errors are returned."""
        data = None if body is None else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def _write_kubeconfig(self) -> None:
        def b64(p: Path) -> str:
            return base64.b64encode(p.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CONTEXT_NAME,
                    "cluster": {"server": self.server, "certificate-authority-data": b64(self.pki["ca"])},
                }
            ],
            "users": [
                {
                    "name": USER_NAME,
                    "user": {
                        "client-certificate-data": b64(self.pki["client_cert"]),
                        "client-key-data": b64(self.pki["client_key"]),
                    },
                }
            ],
            "contexts": [{"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": USER_NAME}}],
            "current-context": CONTEXT_NAME,
            "preferences": {},
        }
        # JSON is valid YAML, so every kubeconfig reader takes it.
        self.kubeconfig_path.write_text(json.dumps(config, indent=2) + "\n")
        self.kubeconfig_path.chmod(0o600)

    # -- namespace finalization (the one bit of the namespace controller we need) --

    def _finalize_loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.finalize_terminating_namespaces()
            except (OSError, ValueError, ssl.SSLError):
                continue  # the server may be restarting; try again next tick

    def finalize_terminating_namespaces(self) -> list[str]:
        """Remove the `kubernetes` finalizer of Terminating namespaces, so a delete completes."""
        status, body = self.request("GET", "/api/v1/namespaces", timeout=5)
        done = []
        if status != 200:
            return done
        for ns in body.get("items", []):
            if ns.get("status", {}).get("phase") != "Terminating" or not ns.get("spec", {}).get("finalizers"):
                continue
            ns["spec"]["finalizers"] = []
            name = ns["metadata"]["name"]
            status, _ = self.request("PUT", f"/api/v1/namespaces/{name}/finalize", ns, timeout=5)
            if status == 200:
                done.append(name)
        return done

    # -- CRDs --

    def apply_crds(self, path_or_docs: str | Path | list[dict] = ISTIO_CRDS, timeout: float = 60) -> list[str]:
        """Create the CRDs (YAML/JSON file or list of dicts), update existing ones; wait until Established."""
        docs = load_documents(path_or_docs) if isinstance(path_or_docs, (str, Path)) else list(path_or_docs)
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        names = []
        for doc in docs:
            name = doc["metadata"]["name"]
            status, body = self.request("POST", base, doc)
            if status == 409:
                status, current = self.request("GET", f"{base}/{name}")
                doc = {
                    **doc,
                    "metadata": {**doc["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
                }
                status, body = self.request("PUT", f"{base}/{name}", doc)
            if status not in (200, 201):
                raise ControlPlaneError(f"applying CRD {name}: HTTP {status} {body}")
            names.append(name)
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                _, crd = self.request("GET", f"{base}/{name}")
                conditions = (
                    {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions", [])}
                    if isinstance(crd, dict)
                    else {}
                )
                if conditions.get("Established") == "True":
                    break
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRD {name} not Established after {timeout}s: {conditions}")
                time.sleep(0.2)
        return names


def load_documents(path: str | Path) -> list[dict]:
    """The non-empty documents of a YAML (PyYAML) or JSON file."""
    text = Path(path).read_text()
    try:
        import yaml  # optional: JSON files work without it
    except ImportError:
        parsed = json.loads(text)
        return parsed if isinstance(parsed, list) else [parsed]
    return [d for d in yaml.safe_load_all(text) if d]


# --- CLI -------------------------------------------------------------------------------------------------


def _cmd_up(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    workdir = Path(args.dir).resolve()
    with LocalControlPlane(workdir, ready_timeout=args.timeout) as plane:
        if args.crds:
            for name in plane.apply_crds(args.crds):
                print(f"CRD established: {name}", file=sys.stderr)
        print(f"control plane up: {plane.server} (etcd {plane.etcd_url}); logs in {workdir / 'logs'}", file=sys.stderr)
        print(f"kubeconfig: {plane.kubeconfig_path}")
        print(f"export KUBECONFIG={plane.kubeconfig_path}", flush=True)
        (workdir / "server").write_text(plane.server + "\n")
        while not stop.wait(1.0):
            for name, proc in (("etcd", plane.etcd), ("kube-apiserver", plane.apiserver)):
                if proc is not None and proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}:\n{plane.log_tail(name)}", file=sys.stderr)
                    return 1
        print("stopping control plane", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.controlplane", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start etcd + kube-apiserver and stay in the foreground until SIGTERM/SIGINT")
    up.add_argument("--dir", required=True, help="working directory (PKI, etcd data, logs, kubeconfig)")
    up.add_argument("--crds", help=f"CRD file to apply once up (e.g. {ISTIO_CRDS.relative_to(REPO)})")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    args = parser.parse_args(argv)
    try:
        return _cmd_up(args)
    except ControlPlaneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
