"""Which image tag is the next canary: `canaryTagPolicy` matching and semantic-version ordering."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from stacks.rules import parse_semver

# (major, minor, patch, is_release): 6.9.0 < 6.9.1-rc.1 < 6.9.1, as semver orders them.
Order = tuple[int, int, int, bool]


def order_of(tag: str) -> Order | None:
    """The sort key of any version tag, pre-releases included; None for non-version tags (latest, main-abc)."""
    parsed = parse_semver(tag)
    if parsed is None:
        return None
    major, minor, patch, pre = parsed
    return major, minor, patch, not pre


def version_of(tag: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a release tag; None for pre-releases, builds and non-version tags."""
    order = order_of(tag)
    if order is None or not order[3]:
        return None
    return order[:3]


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
    """The highest release tag matching `policy` that is newer than `current` (a release or a pre-release)."""
    floor = order_of(current) or (-1, -1, -1, False)
    best: tuple[Order, bool, str] | None = None
    for tag in tags:
        order = order_of(tag)
        if order is None or order <= floor or not matches(policy, tag):
            continue
        # Same version as `6.9.1` and `v6.9.1`: prefer the spelling without the v, like the current tags.
        key = (order, not tag.startswith("v"), tag)
        if best is None or key > best:
            best = key
    return best[2] if best else None
