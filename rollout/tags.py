"""Which image tag is the next canary: `canaryTagPolicy` matching and semantic-version ordering."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

# A released tag: MAJOR.MINOR.PATCH, optional leading v; a `-suffix` marks a pre-release.
_VERSION = re.compile(r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?")


def version_of(tag: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a release tag; None for pre-releases, builds and non-version tags."""
    match = _VERSION.fullmatch(tag)
    if not match or match.group(4):
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def matches(policy: str, tag: str) -> bool:
    """Does a release tag satisfy `semver:6.x`, `semver:6.9.x` or `glob:6.9.*`? Pre-releases never do."""
    version = version_of(tag)
    if version is None:
        return False
    kind, _, pattern = policy.partition(":")
    if kind == "glob":
        return fnmatch.fnmatchcase(tag, pattern)
    if kind == "semver":
        fixed = pattern.split(".")[:-1]  # "6.9.x" -> ["6", "9"]
        return all(int(part) == version[i] for i, part in enumerate(fixed))
    raise ValueError(f"unknown tag policy {policy!r}")


def newest(policy: str, tags: Iterable[str], current: str) -> str | None:
    """The highest release tag matching `policy` that is newer than `current`, or None."""
    floor = version_of(current) or (-1, -1, -1)
    best: tuple[tuple[int, int, int], bool, str] | None = None
    for tag in tags:
        version = version_of(tag)
        if version is None or version <= floor or not matches(policy, tag):
            continue
        # Same version as `6.9.1` and `v6.9.1`: prefer the spelling without the v, like the current tags.
        key = (version, not tag.startswith("v"), tag)
        if best is None or key > best:
            best = key
    return best[2] if best else None
