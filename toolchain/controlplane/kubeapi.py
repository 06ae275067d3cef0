"""A minimal Kubernetes API client: HTTPS with a client certificate, JSON in and out, bounded calls.

    client = KubeClient(server, ca=..., cert=..., key=...)     # PEM files
    client = KubeClient.from_kubeconfig(path)                  # a kubeconfig with certificate data or files
    status, body = client.request("GET", "/api/v1/namespaces")

HTTP errors are returned as (status, body), not raised; connection errors raise OSError.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .kubeconfig import Credentials, read_credentials


class KubeClient:
    """HTTPS calls to one API server as one client certificate."""

    def __init__(self, server: str, *, ca: Path | str, cert: Path | str, key: Path | str) -> None:
        self.server = server.rstrip("/")
        self._ssl = ssl.create_default_context(cafile=str(ca))
        self._ssl.load_cert_chain(str(cert), str(key))
        # The API server is addressed directly: a proxy from the environment must not see admin calls.
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self._ssl)
        )

    @classmethod
    def from_credentials(cls, creds: Credentials) -> KubeClient:
        """A client from PEM bytes (written to a private temporary directory only while they are loaded)."""
        with tempfile.TemporaryDirectory(prefix="kubeapi-") as tmp:
            files = {}
            for name, data in (("ca", creds.ca), ("cert", creds.cert), ("key", creds.key)):
                files[name] = Path(tmp) / name
                files[name].write_bytes(data)
            return cls(creds.server, **files)

    @classmethod
    def from_kubeconfig(cls, path: Path | str, context: str | None = None) -> KubeClient:
        """A client for a kubeconfig's context (default: its current context); client certificates only."""
        return cls.from_credentials(read_credentials(Path(path), context))

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 10, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        """One call; returns (status, JSON or text). A str body is sent as it is, anything else as JSON."""
        data = None if body is None else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        req.add_header("Content-Type", content_type)
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def ready(self, timeout: float = 0, interval: float = 0.3) -> bool:
        """Does /readyz answer 200 (polling, bounded, up to `timeout` s)? Connection errors count as not ready."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.request("GET", "/readyz", timeout=3)[0] == 200:
                    return True
            except OSError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
