"""Real servers for the integration tests and bench/bench_release.py: Prometheus with backfilled Istio metrics,
an OCI registry, and tiny HTTP stubs. Every wait is bounded and every process is stopped by its owner."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

STEP_S = 15  # scrape interval of the generated series
READY_TIMEOUT_S = 60.0
# Istio's default buckets of istio_request_duration_milliseconds.
BUCKETS = (
    0.5,
    1,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
    300000,
    600000,
    1800000,
    3600000,
)


def binary(name: str) -> str:
    """Path of a required binary; fail loudly (never skip) when it is missing."""
    path = shutil.which(name)
    if not path:
        raise RuntimeError(f"{name} is not installed: run scripts/install-integration-deps.sh")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen | None, log: Path | None, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll `url` until it answers 200; raise with the server log when it dies or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url}: not ready within {timeout:g}s:\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    return log.read_text()[-3000:] if log and log.exists() else ""


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s: the process is gone when this returns."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def running(command: list[str], ready_url: str, log: Path) -> Iterator[subprocess.Popen]:
    """Start a server, wait until `ready_url` answers, and always stop it afterwards."""
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_http(ready_url, process, log)
        yield process
    finally:
        stop(process)


# --- Istio metrics -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """Steady traffic of one workload: requests per second, share of 503s and of 404s, latency as (le, share)."""

    rps: float
    error_share: float = 0.0
    client_error_share: float = 0.0
    latency: tuple[tuple[float, float], ...] = ((25, 0.5), (100, 0.45), (250, 0.05))


HEALTHY = Traffic(rps=10)
SLOW = Traffic(rps=10, latency=((250, 0.8), (1000, 0.2)))
ERRORS = Traffic(rps=10, error_share=0.05)
CLIENT_ERRORS = Traffic(rps=10, client_error_share=0.2)  # 404s are the client's fault: still a healthy canary
LOW = Traffic(rps=0.1)  # 30 requests in 5m: below analysisMinRequests (100)


@dataclass
class Scenario:
    """One namespace of generated data: canary and GA traffic (None = no series at all)."""

    namespace: str
    canary: Traffic | None
    ga: Traffic | None = HEALTHY
    extra_lines: list[str] = field(default_factory=list)


SCENARIOS = (
    Scenario("healthy", HEALTHY),
    Scenario("errors", ERRORS),
    Scenario("slow", SLOW),
    Scenario("client-errors", CLIENT_ERRORS),
    Scenario("idle", None),
    Scenario("low", LOW),
)


def _labels(reporter: str, namespace: str, workload: str, code: str, le: str | None = None) -> str:
    pairs = [
        ("reporter", reporter),
        ("destination_workload_namespace", namespace),
        ("destination_workload", workload),
        ("destination_version", workload.rsplit("-", 1)[-1]),
        ("response_code", code),
    ]
    if le is not None:
        pairs.append(("le", le))
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}"


def _series(reporter: str, namespace: str, workload: str, traffic: Traffic) -> dict[str, float]:
    """Every counter of one workload with its steady rate per second."""
    out: dict[str, float] = {}
    codes = (
        ("200", 1 - traffic.error_share - traffic.client_error_share),
        ("503", traffic.error_share),
        ("404", traffic.client_error_share),
    )
    for code, share in codes:
        if share <= 0:
            continue
        rate = traffic.rps * share
        out[f"istio_requests_total{_labels(reporter, namespace, workload, code)}"] = rate
        cumulative = 0.0
        for le in BUCKETS:
            cumulative = min(1.0, cumulative + sum(s for bound, s in traffic.latency if bound == le))
            out[
                f"istio_request_duration_milliseconds_bucket{_labels(reporter, namespace, workload, code, f'{le:g}')}"
            ] = rate * cumulative
        out[f"istio_request_duration_milliseconds_bucket{_labels(reporter, namespace, workload, code, '+Inf')}"] = rate
    return out


def write_openmetrics(path: Path, end: int, duration_s: int, scenarios: tuple[Scenario, ...] = SCENARIOS) -> int:
    """Write OpenMetrics text for `scenarios` over [end - duration, end]; return the number of samples."""
    series: dict[str, float] = {}
    for scenario in scenarios:
        for workload, traffic in (("podinfo-canary", scenario.canary), ("podinfo-ga", scenario.ga)):
            if traffic is not None:
                series.update(_series("destination", scenario.namespace, workload, traffic))
                # The client side reports the same calls with many errors: a query that forgets
                # reporter="destination" would count them and fail the healthy canary.
                noisy = Traffic(rps=traffic.rps, error_share=0.5, latency=((5000, 1.0),))
                series.update(_series("source", scenario.namespace, workload, noisy))
    start = end - duration_s
    samples = 0
    with path.open("w") as out:
        # Untyped families are fine for promtool; each series is written contiguously in time order.
        for name, rate in series.items():
            lines = [f"{name} {int(rate * (t - start))} {t}\n" for t in range(start, end + 1, STEP_S)]
            out.writelines(lines)
            samples += len(lines)
        out.write("# EOF\n")
    return samples


@dataclass(frozen=True)
class PrometheusServer:
    """A running Prometheus and the last timestamp of its data (query there with time=)."""

    url: str
    end: int


@contextmanager
def prometheus(workdir: Path, duration_s: int = 30 * 60) -> Iterator[PrometheusServer]:
    """Backfill generated Istio metrics with promtool and serve them from a real Prometheus on 127.0.0.1."""
    prom, promtool = binary("prometheus"), binary("promtool")
    workdir.mkdir(parents=True, exist_ok=True)
    # Backfilled data must end before now or Prometheus rejects it; whole minutes keep it readable.
    end = (int(time.time()) - 120) // 60 * 60
    data = workdir / "istio.om"
    write_openmetrics(data, end, duration_s)
    storage = workdir / "tsdb"
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(data), str(storage)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
    port = free_port()
    command = [
        prom,
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        "--storage.tsdb.retention.time=30d",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    url = f"http://127.0.0.1:{port}"
    with running(command, f"{url}/-/ready", workdir / "prometheus.log"):
        yield PrometheusServer(url=url, end=end)


# --- OCI registry ---------------------------------------------------------------------------------------


@contextmanager
def registry(workdir: Path) -> Iterator[str]:
    """The CNCF distribution registry (Debian docker-registry) on 127.0.0.1 with temp storage; yields its URL."""
    exe = binary("docker-registry")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'storage'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    url = f"http://127.0.0.1:{port}"
    with running([exe, "serve", str(config)], f"{url}/v2/", workdir / "registry.log"):
        yield url


MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def _upload_blob(url: str, name: str, blob: bytes, auth: dict[str, str]) -> dict:
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    start = urllib.request.Request(f"{url}/v2/{name}/blobs/uploads/", method="POST", data=b"", headers=auth)
    with urllib.request.urlopen(start, timeout=10) as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = url + location
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(
        f"{location}{sep}digest={digest}",
        method="PUT",
        data=blob,
        headers={"Content-Type": "application/octet-stream", **auth},
    )
    with urllib.request.urlopen(put, timeout=10) as response:
        assert response.status == 201, response.status
    return {"digest": digest, "size": len(blob)}


def push_tags(
    url: str, name: str, tags: list[str], authorization: str | None = None, variant: str = ""
) -> dict[str, str]:
    """Tag a tiny OCI image (config + one layer) in the registry once per tag, through the HTTP API, sending
    `authorization` (a whole Authorization header value) when given; tag -> manifest digest. A `variant` makes a
    different config blob, hence a different digest."""
    auth = {"Authorization": authorization} if authorization else {}
    image_config: dict = {"architecture": "amd64", "os": "linux"}
    if variant:
        image_config["config"] = {"Labels": {"variant": variant}}
    config = _upload_blob(url, name, json.dumps(image_config).encode(), auth)
    layer = _upload_blob(url, name, b"not really a tarball; the registry does not look inside", auth)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
        }
    ).encode()
    digests: dict[str, str] = {}
    for tag in tags:
        put = urllib.request.Request(
            f"{url}/v2/{name}/manifests/{tag}",
            method="PUT",
            data=manifest,
            headers={"Content-Type": MANIFEST_TYPE, **auth},
        )
        with urllib.request.urlopen(put, timeout=10) as response:
            assert response.status == 201, response.status
            digests[tag] = response.headers["Docker-Content-Digest"]
    return digests


# --- HTTP stubs -------------------------------------------------------------------------------------------


@contextmanager
def raw_stub(answer: bytes, byte_interval: float = 0.0) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that reads a request and answers `answer` verbatim (e.g. not HTTP at all);
    with `byte_interval`, one byte at a time, that many seconds apart (a server that never quite times out)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:  # timeout: look at `stop` again
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    if not byte_interval:
                        conn.sendall(answer)
                    for i in range(len(answer) if byte_interval else 0):
                        if stop.wait(byte_interval):
                            break
                        conn.sendall(answer[i : i + 1])
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up early (a deadline, a size cap) is expected here, not a traceback on stderr that
    lands in whichever test's output is being captured at that moment."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@dataclass
class Recorded:
    """One request a stub received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Recorded], tuple[int, dict[str, str], bytes]]


@contextmanager
def stub(handler: Handler) -> Iterator[tuple[str, list[Recorded]]]:
    """An HTTP server on 127.0.0.1 answering every request with `handler`; yields (base URL, requests seen)."""
    seen: list[Recorded] = []

    class _Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Recorded(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
            seen.append(request)
            status, headers, body = handler(request)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _answer  # http.server's method naming

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

    server = _QuietServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
