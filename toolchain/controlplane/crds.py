"""Applying CustomResourceDefinitions to an API server and waiting until they are Established."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .common import ControlPlaneError
from .kubeapi import KubeClient

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def load_documents(path: str | Path) -> list[dict]:
    """The non-empty documents of a YAML (PyYAML) or JSON file."""
    text = Path(path).read_text()
    try:
        import yaml  # optional: JSON files work without it
    except ImportError:
        parsed = json.loads(text)
        return parsed if isinstance(parsed, list) else [parsed]
    return [d for d in yaml.safe_load_all(text) if d]


def _established(client: KubeClient, name: str) -> dict[str, str]:
    _, crd = client.request("GET", f"{CRDS}/{name}")
    if not isinstance(crd, dict):
        return {}
    return {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions", [])}


def apply_crds(client: KubeClient, path_or_docs: str | Path | list[dict], timeout: float = 60) -> list[str]:
    """Create the CRDs (YAML/JSON file or list of dicts), update existing ones; wait until Established.

    Returns their names in file order; raises ControlPlaneError on a refused CRD or after `timeout` s."""
    docs = load_documents(path_or_docs) if isinstance(path_or_docs, (str, Path)) else list(path_or_docs)
    names = []
    for doc in docs:
        name = doc["metadata"]["name"]
        status, body = client.request("POST", CRDS, doc)
        if status == 409:  # exists: replace it, at its current resourceVersion
            status, current = client.request("GET", f"{CRDS}/{name}")
            version = current["metadata"]["resourceVersion"]
            doc = {**doc, "metadata": {**doc["metadata"], "resourceVersion": version}}
            status, body = client.request("PUT", f"{CRDS}/{name}", doc)
        if status not in (200, 201):
            raise ControlPlaneError(f"applying CRD {name}: HTTP {status} {body}")
        names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while (conditions := _established(client, name)).get("Established") != "True":
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"CRD {name} not Established after {timeout}s: {conditions}")
            time.sleep(0.2)
    return names
