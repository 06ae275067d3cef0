"""Writing the local control plane's kubeconfig, and reading client-certificate credentials from one.

The kubeconfig embeds the CA and the admin client certificate and key (`*-data`), has one cluster, user and
context named istio-canary-local, and is written 0600 as JSON (valid YAML, so every kubeconfig reader takes it).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .common import CONTEXT_NAME, USER_NAME, ControlPlaneError


@dataclass(frozen=True)
class Credentials:
    """An API server address and PEM bytes: its CA, a client certificate and that certificate's key."""

    server: str
    ca: bytes
    cert: bytes
    key: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(path: Path, server: str, *, ca: Path, cert: Path, key: Path) -> Path:
    """Write a kubeconfig (0600, replacing any) for `server` with the certificates embedded."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT_NAME, "cluster": {"server": server, "certificate-authority-data": _b64(ca.read_bytes())}}
        ],
        "users": [
            {
                "name": USER_NAME,
                "user": {"client-certificate-data": _b64(cert.read_bytes()), "client-key-data": _b64(key.read_bytes())},
            }
        ],
        "contexts": [{"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": USER_NAME}}],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(config, indent=2) + "\n")
    tmp.replace(path)  # a reader never sees half a file
    return path


def _load(path: Path) -> dict:
    text = path.read_text()
    try:
        return json.loads(text)
    except ValueError:
        import yaml  # a kubeconfig from elsewhere may be YAML

        return yaml.safe_load(text) or {}


def _pem(entry: dict, key: str, base: Path) -> bytes:
    """`<key>-data` (base64) or the file `<key>` (relative to the kubeconfig's directory)."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return (base / entry[key]).read_bytes()
    raise ControlPlaneError(f"kubeconfig entry has neither {key}-data nor {key}")


def read_credentials(path: Path, context: str | None = None) -> Credentials:
    """The server, CA and client certificate of a kubeconfig's context (default: current-context)."""
    config = _load(path)
    name = context or config.get("current-context")
    if not name:
        raise ControlPlaneError(f"{path}: no context given and no current-context")

    def named(kind: str, wanted: str) -> dict:
        for item in config.get(kind) or []:
            if item.get("name") == wanted:
                return item
        raise ControlPlaneError(f"{path}: no {kind[:-1]} named {wanted!r}")

    ctx = named("contexts", name)["context"]
    cluster, user = named("clusters", ctx["cluster"])["cluster"], named("users", ctx["user"])["user"]
    base = path.parent
    return Credentials(
        server=cluster["server"],
        ca=_pem(cluster, "certificate-authority", base),
        cert=_pem(user, "client-certificate", base),
        key=_pem(user, "client-key", base),
    )
