"""Rules for single config values: patterns, limits and pure predicates (no config reading, no errors).

istio_canary/release/settings.py applies them key by key; the `canary` tool reuses the tag rules. ASCII only: every
pattern uses [0-9], never \\d, and numbers are bounded before int() sees them.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from typing import Any

from istio_canary.release.names import DNS_LABEL

# Bounded: Python refuses int() of over 4300 digits, and no setting needs more than 18.
INT = re.compile(r"0|[1-9][0-9]{0,17}")
# An image tag MAJOR.MINOR.PATCH, optional leading v; a `-suffix` marks a pre-release.
# ASCII digits only ([0-9], never \d: 6.1 followed by a full-width 6 is not a tag), at most 9 per part, 128 characters in all
# (the OCI limit for a tag).
SEMVER_TAG = re.compile(r"v?(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})(-[0-9A-Za-z.-]+)?")
MAX_TAG_LENGTH = 128
# canaryVersion and gaVersion: an OCI tag that is also a Kubernetes label value, since the pods carry it as their
# `version` label (Istio's destination_version): letters, digits, `_ . -`, at most 63, a letter or digit at each end.
VERSION_TAG = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")
VERSION_TAG_RULE = "letters, digits, '.', '_' and '-', at most 63 characters, a letter or digit at each end, no '..'"
# A tag that moves with every push: a commit holding it would not say which build runs.
MOVING_TAGS = ("latest",)
# Three numbers somewhere: a semver or glob version key names one build, not a line (`6.9` follows 6.9.x).
FULL_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")
IMAGE_REPO = re.compile(r"[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9-]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+")
GKE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
GCP_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
GCP_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
GCP_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
MACHINE_TYPE = re.compile(r"[a-z][a-z0-9]*-[a-z0-9-]+")
ISTIO_VERSION = re.compile(r"1\.([0-9]{1,4})\.([0-9]{1,4})")
CHART_VERSION = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")
PROMETHEUS_URL_RULE = "an http(s) URL with a host and a valid port, such as http://127.0.0.1:9090, or empty"
# A GCE machine type's vCPU count: <family>-<kind>-<N>[-suffix] or [<family>-]custom-<N>-<MiB>[-ext].
MACHINE_VCPUS = re.compile(
    r"(?:[a-z][a-z0-9]*-)?custom-([0-9]{1,4})-[0-9]+(-ext)?|[a-z][a-z0-9]*-[a-z]+-([0-9]{1,4})(-[a-z0-9]+)?"
)
SHARED_CORE_CUSTOM = re.compile(r"[a-z][a-z0-9]*-custom-(micro|small|medium)-[0-9]+")
MIN_VCPUS = 2
# An image reference that names a version: repository[:tag][@sha256:digest], at least one of the two.
AGENT_IMAGE = re.compile(
    r"[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9-]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})"
)
# A repository the agent clones: https, a host, a path; no user info (the token comes from a secret).
GIT_REPO = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9._~/-]+")
# Istio's own sizing guide: istiod plus sidecars do not fit on shared-core machines.
TOO_SMALL_MACHINES = ("f1-micro", "g1-small", "e2-micro", "e2-small", "e2-medium")
MIN_ISTIO_MINOR = 24  # base chart templates its CRDs and v1 networking APIs are served


def shown(value: Any) -> str:
    """A value as an error message shows it: repr, cut at 80 characters (a 5000-digit weight is not news)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def parse_semver(tag: str) -> tuple[int, int, int, str] | None:
    """(major, minor, patch, pre-release suffix or "") of a version tag such as v6.9.1-rc.1; None otherwise."""
    match = SEMVER_TAG.fullmatch(tag) if len(tag) <= MAX_TAG_LENGTH else None
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3)), (match.group(4) or "")[1:]


def version_tag_problem(tag: str) -> str | None:
    """Why `tag` cannot be a version key whatever the policy (the image reference and the pods' label), or None.
    `..` is refused too: the agent's proposal branches name the version, and Git refuses `..` in a branch."""
    if tag.lower() in MOVING_TAGS:
        return f"{tag} moves with every push, so no commit could say which build runs"
    if not VERSION_TAG.fullmatch(tag) or ".." in tag:
        return f"an image tag also labels the pods: {VERSION_TAG_RULE}"
    return None


def dns_name(value: str, *, wildcard: bool = False) -> bool:
    if wildcard and value.startswith("*."):
        value = value[2:]
    labels = value.split(".")
    return (
        len(value) <= 253
        and len(labels) >= 2
        and all(len(label) <= 63 and DNS_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def too_small(machine_type: str) -> bool:
    """Shared-core, or fewer vCPUs than istiod plus sidecars need (n1-standard-1, e2-custom-1-1024)."""
    if machine_type in TOO_SMALL_MACHINES or SHARED_CORE_CUSTOM.fullmatch(machine_type):
        return True
    sized = MACHINE_VCPUS.fullmatch(machine_type)
    if not sized:
        return False  # a type whose name does not carry its vCPUs (a2-highgpu-1g): GCE is the judge
    return int(sized.group(1) or sized.group(3)) < MIN_VCPUS


def semver_step(state: tuple[str, int, int], char: str) -> tuple[str, int, int] | None:
    """One character through a release tag `v?N.N.N` (N: 0 or up to 9 digits without a leading 0); None is dead.

    States: ("start", 0, 0), ("begin", part, 0) before a part's first digit, ("zero", part, 0) after a lone
    0, ("num", part, digits) inside a number.
    """
    kind, part, digits = state
    if kind == "start" and char == "v":
        return "begin", 0, 0
    if kind in ("start", "begin") and char.isascii() and char.isdigit():
        return ("zero", part, 0) if char == "0" else ("num", part, 1)
    if kind == "num" and char.isascii() and char.isdigit() and digits < 9:
        return "num", part, digits + 1
    if kind in ("zero", "num") and char == "." and part < 2:
        return "begin", part + 1, 0
    return None


def glob_can_match_release(pattern: str) -> bool:
    """Can the fnmatch `pattern` (literals, `*`, `?`) match any release tag? Exact: a search over
    (position in the pattern, state of the tag automaton), where a wildcard tries the only characters a
    release tag can hold (v, 0, another digit, the dot)."""
    start = (0, ("start", 0, 0))
    seen, todo = {start}, [start]
    while todo:
        i, state = todo.pop()
        if i == len(pattern):
            if state[0] in ("zero", "num") and state[1] == 2:
                return True
            continue
        char = pattern[i]
        moves: list[tuple[int, tuple[str, int, int] | None]] = []
        if char == "*":
            moves.append((i + 1, state))
            moves.extend((i, semver_step(state, c)) for c in "v01.")
        elif char == "?":
            moves.extend((i + 1, semver_step(state, c)) for c in "v01.")
        else:
            moves.append((i + 1, semver_step(state, char)))
        for move in moves:
            if move[1] is not None and move not in seen:
                seen.add(move)  # type: ignore[arg-type]
                todo.append(move)  # type: ignore[arg-type]
    return False


def prometheus_url_error(url: str) -> str | None:
    """Why `url` cannot be a Prometheus base URL, or None. User info is refused here: in a stack file it would
    be a committed credential (the CLI takes credentials from the environment instead)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port past 65535 or one that is not a number
    except ValueError:
        return PROMETHEUS_URL_RULE
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not url.isascii()
        or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url)
    ):
        return PROMETHEUS_URL_RULE
    if parts.username is not None or parts.password is not None:
        return "a URL without user:password@ (credentials belong in $PROMETHEUS_URL or $PROMETHEUS_TOKEN, not in Git)"
    return None


def finite_number(value: Any) -> float | None:
    """A finite number >= 0 from YAML or JSON (not a bool, not text), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past float's range
        return None
    return number if math.isfinite(number) and number >= 0 else None
