"""Turn the Kubernetes objects of a mock run into plain manifests, as `kubectl apply` would see them.

Shared by the offline validators (tests/unit/test_manifests.py, test_checkov.py) and scripts/dump_manifests.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pulumi
import yaml

from testkit.mocks import Registered, config, run_program

K8S_PREFIX = "kubernetes:"
# Helm releases are whole charts, not objects; the provider and components are Pulumi-only.
NOT_OBJECTS = ("kubernetes:helm.sh/",)
MANIFEST_KEYS = ("apiVersion", "kind", "metadata", "spec")


def api_version_kind(typ: str) -> tuple[str, str]:
    """`kubernetes:apps/v1:Deployment` -> ("apps/v1", "Deployment"); the core group has no prefix."""
    package, group_version, kind = typ.split(":")
    if package != "kubernetes" or "/" not in group_version:
        raise ValueError(f"not a Kubernetes object type: {typ}")
    group, version = group_version.rsplit("/", 1)
    return (version if group == "core" else f"{group}/{version}"), kind


def whole_numbers(value: Any) -> Any:
    """Mocks return every number as a float; give back ints where the float is whole (9898.0 -> 9898)."""
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def revealed(value: Any) -> Any:
    """Secret values as the plain values Kubernetes receives (the mocks see them wrapped in Pulumi's secret marker)."""
    if isinstance(value, dict):
        if value.get(pulumi.runtime.rpc._special_sig_key) == pulumi.runtime.rpc._special_secret_sig:
            return revealed(value["value"])
        return {key: revealed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [revealed(item) for item in value]
    return value


def is_object(resource: Registered) -> bool:
    """True for a Kubernetes object the program creates (not a Helm release, provider, component or `.get`)."""
    return (
        resource.custom
        and not resource.read
        and resource.typ.startswith(K8S_PREFIX)
        and not resource.typ.startswith(NOT_OBJECTS)
    )


def to_manifest(resource: Registered) -> dict[str, Any]:
    """One registered object as apiVersion/kind/metadata/spec (plus any other top-level fields it has)."""
    api_version, kind = api_version_kind(resource.typ)
    inputs = whole_numbers(revealed(resource.inputs))
    # The SDK also sends apiVersion/kind as inputs; if they disagree with the type token, the provider
    # would create something other than what the program's code says.
    for key, derived in (("apiVersion", api_version), ("kind", kind)):
        if inputs.get(key, derived) != derived:
            raise ValueError(f"{resource.name}: {key} {inputs[key]!r} disagrees with type {resource.typ}")
    rest = {key: value for key, value in inputs.items() if key not in MANIFEST_KEYS}
    manifest = {"apiVersion": api_version, "kind": kind, "metadata": inputs.get("metadata") or {}}
    if "spec" in inputs:
        manifest["spec"] = inputs["spec"]
    return manifest | rest


def manifests(resources: Iterable[Registered]) -> list[dict[str, Any]]:
    """The manifests of every Kubernetes object among the registered resources, in registration order."""
    return [to_manifest(resource) for resource in resources if is_object(resource)]


def stack_manifests(**overrides: Any) -> list[dict[str, Any]]:
    """Run the whole stack under mocks with config overrides and return its manifests."""
    return manifests(run_program(config(**overrides)).resources)


def file_name(manifest: dict[str, Any]) -> str:
    """A stable, unique file name: <namespace>-<kind>-<name>.yaml (cluster-scoped objects without namespace)."""
    metadata = manifest["metadata"]
    parts = [metadata.get("namespace"), manifest["kind"].lower(), metadata["name"]]
    return "-".join(part for part in parts if part) + ".yaml"


def write_manifests(directory: Path, items: Iterable[dict[str, Any]]) -> list[Path]:
    """Write one YAML file per manifest into directory (created if needed); return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for manifest in items:
        path = directory / file_name(manifest)
        if path in written:
            raise ValueError(f"two objects map to {path.name}")
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        written.append(path)
    return written
