"""Reads and validates the app's shape keys (`appPort`, `appLivenessPath`, ...) into an AppShape.

Split from istio_canary/release/settings.py, which calls `read(reader, replicas)` with its collecting reader: every bad key is
still reported at once, with the others. Podinfo's values are Pulumi.yaml's defaults, so a stack that sets none
of these renders exactly what it rendered before they existed.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Protocol

from istio_canary.release.app_shape import AppShape

# Istio picks the protocol by the port name; request metrics (what the analysis judges) exist for these only.
PORT_NAME = re.compile(r"(http|http2|grpc|grpc-web)(-[a-z0-9]([-a-z0-9]*[a-z0-9])?)?")
# The sidecar's own ports: an app listening on one would collide with Envoy or the agent in the pod.
ISTIO_PORTS = frozenset({15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090})
HTTP_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,255}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
CPU = re.compile(r"([1-9][0-9]{0,5})m|(0|[1-9][0-9]{0,3})(\.[0-9]{1,3})?")
MEMORY = re.compile(r"([1-9][0-9]{0,8})(Ki|Mi|Gi|Ti|k|M|G|T)?")
MEMORY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
MEMORY_UNITS["Ti"] = 2**40
MAX_LIST = 64
MAX_ITEM = 1024
MAX_PATHS = 10


class Reader(Protocol):
    """What istio_canary/release/settings.py's reader offers (it collects errors instead of raising)."""

    errors: list[str]
    raw: Any  # the stack's own values, without defaults

    def text(self, key: str) -> str: ...
    def integer(self, key: str, low: int, high: int) -> int: ...
    def array(self, key: str) -> Any: ...
    def fail(self, key: str, value: Any, allowed: str) -> None: ...


def _strings(reader: Reader, key: str, rule: str) -> tuple[str, ...]:
    value = reader.array(key)
    if (
        not isinstance(value, list)
        or len(value) > MAX_LIST
        or not all(isinstance(item, str) and len(item) <= MAX_ITEM and item.isprintable() for item in value)
    ):
        reader.fail(key, value, rule)
        return ()
    return tuple(value)


def cpu_millis(value: str) -> Decimal:
    """`250m` -> 250, `1.5` -> 1500."""
    return Decimal(value[:-1]) if value.endswith("m") else Decimal(value) * 1000


def memory_bytes(value: str) -> int:
    """`256Mi` -> 268435456."""
    match = MEMORY.fullmatch(value)
    assert match is not None
    return int(match.group(1)) * MEMORY_UNITS[match.group(2) or ""]


def _resources(reader: Reader) -> dict[str, str]:
    found: dict[str, str] = {}
    rules = {
        "appCpuRequest": (CPU, "a CPU quantity such as 100m or 0.5"),
        "appCpuLimit": (CPU, "a CPU quantity such as 1000m or 2"),
        "appMemoryRequest": (MEMORY, "a memory quantity such as 64Mi or 1Gi"),
        "appMemoryLimit": (MEMORY, "a memory quantity such as 256Mi or 1Gi"),
    }
    for key, (pattern, rule) in rules.items():
        value = reader.text(key)
        if not pattern.fullmatch(value) or (pattern is CPU and cpu_millis(value) == 0):
            reader.fail(key, value, rule)
        else:
            found[key] = value
    for kind, measure in (("Cpu", cpu_millis), ("Memory", memory_bytes)):
        request, limit = f"app{kind}Request", f"app{kind}Limit"
        if {request, limit} <= set(found) and measure(found[request]) > measure(found[limit]):
            # Blame the key this stack set (a low limit, or a high request); both set: the request.
            if limit in reader.raw and request not in reader.raw:
                reader.fail(limit, found[limit], f"at least {request} ({found[request]})")
            else:
                reader.fail(request, found[request], f"at most {limit} ({found[limit]})")
    return {key: found.get(key, "1") for key in rules}


def _env(reader: Reader) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for item in _strings(reader, "appEnv", "a list of NAME=value strings"):
        name, equals, value = item.partition("=")
        if not equals or not ENV_NAME.fullmatch(name):
            reader.fail("appEnv", item, "NAME=value with NAME a C identifier (letters, digits, _)")
        elif name in {seen for seen, _ in pairs}:
            reader.fail("appEnv", item, f"each name once ({name} is set twice)")
        else:
            pairs.append((name, value))
    return tuple(pairs)


def _paths(reader: Reader) -> tuple[str, ...]:
    rule = f"at most {MAX_PATHS} different absolute paths such as /data or /tmp"
    paths = _strings(reader, "appWritablePaths", rule)
    for path in paths:
        if not path.startswith("/") or path == "/" or ".." in path.split("/") or " " in path:
            reader.fail("appWritablePaths", path, rule)
            return ()
    if len(paths) > MAX_PATHS or len(set(paths)) != len(paths):
        reader.fail("appWritablePaths", list(paths), rule)
        return ()
    return paths


def read(reader: Reader, replicas: int) -> AppShape:
    """The AppShape of this stack; bad values are added to the reader's errors (defaults stand in)."""
    port = reader.integer("appPort", 1, 65535)
    if port in ISTIO_PORTS:
        reader.fail("appPort", port, "a port the Istio sidecar does not use (not 15000-15090's reserved ones)")
    port_name = reader.text("appPortName")
    if len(port_name) > 15 or not PORT_NAME.fullmatch(port_name):
        reader.fail(
            "appPortName",
            port_name,
            "http, http2, grpc or grpc-web, optionally -<suffix>, at most 15 characters (Istio reports requests, "
            "which the analysis judges, only for these protocols)",
        )
    probes = {}
    for key in ("appLivenessPath", "appReadinessPath"):
        path = reader.text(key)
        if path and not HTTP_PATH.fullmatch(path):
            reader.fail(key, path, "an HTTP path such as /healthz, or empty for no probe")
        probes[key] = path
    resources = _resources(reader)
    max_replicas = reader.integer("appMaxReplicas", 0, 100)
    if max_replicas and max_replicas < replicas:
        reader.fail("appMaxReplicas", max_replicas, f"0 (no autoscaler) or at least replicas ({replicas})")
    return AppShape(
        port=port,
        port_name=port_name,
        liveness_path=probes["appLivenessPath"],
        readiness_path=probes["appReadinessPath"],
        command=_strings(reader, "appCommand", "a list of strings, or [] for the image's entrypoint"),
        args=_strings(reader, "appArgs", "a list of strings, or [] for the image's default arguments"),
        env=_env(reader),
        user=reader.integer("appUser", 1, 2147483647),
        writable_paths=_paths(reader),
        cpu_request=resources["appCpuRequest"],
        memory_request=resources["appMemoryRequest"],
        cpu_limit=resources["appCpuLimit"],
        memory_limit=resources["appMemoryLimit"],
        max_replicas=max_replicas,
        target_cpu_percent=reader.integer("appTargetCpuPercent", 1, 100),
    )
