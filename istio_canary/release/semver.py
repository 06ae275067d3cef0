"""Versions exactly as Flux's semver image policy reads a tag: fluxcd/pkg/version.ParseVersion (three dot-separated
parts) over Masterminds/semver v3.5.0's lenient parser (a `v` prefix, leading zeros read, so CalVer tags such as
`v2025.07.03` are versions), and Masterminds' precedence, pre-release identifiers included. semverrange.py holds
the ranges; tests/unit/test_flux_cases.py and tests/integration/test_flux_reference.py check both against Flux.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_VERSION_LENGTH = 256  # bytes; Masterminds' MaxVersionLen
_UINT64 = 1 << 64

# Every tag goes through this one, so it runs on Python's engine (several times faster per call than the RE2
# wrapper's group access): it is unambiguous (dot-separated runs), so no input backtracks, and it reads at most
# MAX_VERSION_LENGTH bytes. fullmatch is Go's `^...$`, which never matches before a final newline.
_LOOSE = re.compile(
    r"v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
)
_NUM = frozenset("0123456789")
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789")


def _uint(text: str) -> int | None:
    """Go's strconv.ParseUint(text, 10, 64): ASCII digits only, below 2**64."""
    if not text or not set(text) <= _NUM:
        return None
    value = int(text)
    return value if value < _UINT64 else None


def _valid_identifiers(text: str, *, numeric_rule: bool) -> bool:
    for part in text.split("."):
        if not part:
            return False
        if set(part) <= _NUM:
            if numeric_rule and len(part) > 1 and part[0] == "0":
                return False
        elif not set(part) <= _ALLOWED:
            return False
    return True


def _compare_identifier(s: str, o: str) -> int:
    if s == o:
        return 0
    if not s:
        return -1
    if not o:
        return 1
    si, oi = _uint(s), _uint(o)
    if si is None and oi is None:
        return 1 if s > o else -1
    if oi is None:  # a number orders before a word
        return -1
    if si is None:
        return 1
    return 1 if si > oi else -1


@dataclass(frozen=True)
class Version:
    """A parsed version; `original` is the text it came from (the tag Flux returns)."""

    major: int
    minor: int
    patch: int
    prerelease: str = ""
    metadata: str = ""
    original: str = ""

    def compare(self, other: Version) -> int:
        """Semantic-version precedence, -1/0/1; build metadata does not count."""
        for mine, theirs in ((self.major, other.major), (self.minor, other.minor), (self.patch, other.patch)):
            if mine != theirs:
                return 1 if mine > theirs else -1
        if self.prerelease == other.prerelease == "":
            return 0
        if not self.prerelease:
            return 1
        if not other.prerelease:
            return -1
        mine_parts, their_parts = self.prerelease.split("."), other.prerelease.split(".")
        for i in range(max(len(mine_parts), len(their_parts))):
            found = _compare_identifier(
                mine_parts[i] if i < len(mine_parts) else "", their_parts[i] if i < len(their_parts) else ""
            )
            if found:
                return found
        return 0


def loose_version(text: str) -> Version | None:
    """Masterminds' NewVersion: `1`, `1.2`, `v1.2.3-rc.1+b5`, leading zeros allowed; None when it refuses."""
    if len(text.encode()) > MAX_VERSION_LENGTH:
        return None
    match = _LOOSE.fullmatch(text)
    if match is None:
        return None
    major = _uint(match.group(1))
    minor = _uint(match.group(2)[1:]) if match.group(2) else 0
    patch = _uint(match.group(3)[1:]) if match.group(3) else 0
    pre, metadata = match.group(5) or "", match.group(8) or ""
    if major is None or minor is None or patch is None:
        return None
    if pre and not _valid_identifiers(pre, numeric_rule=True):
        return None
    if metadata and not _valid_identifiers(metadata, numeric_rule=False):
        return None
    return Version(major, minor, patch, pre, metadata, text)


def parse_version(text: str) -> Version | None:
    """A tag as Flux's semver policy reads it (fluxcd/pkg/version.ParseVersion): three dot-separated parts."""
    if len(text.split(".", 2)) != 3:
        return None
    return loose_version(text)
