"""Versions and ranges exactly as Flux's semver image policy reads them.

Flux's image-reflector-controller parses a tag with fluxcd/pkg/version.ParseVersion (three dot-separated parts,
then Masterminds/semver v3's lenient parser: a `v` prefix and leading zeros are fine, so CalVer tags such as
`v2025.07.03` are versions) and checks it against a Masterminds range. This module is that behaviour in Python,
pinned to the versions Flux pins (Masterminds/semver v3.5.0, fluxcd/pkg/version v0.16.0), so that a range pasted
from an ImagePolicy picks the same tag here. The patterns below are Masterminds' own grammar, run by RE2, the
engine family of Go's regexp: the same leftmost-first matches, and linear time on any range a stack holds.

Ranges in a sentence: comparators (`=`, `!=`, `>`, `<`, `>=`/`=>`, `<=`/`=<`, `~`/`~>`, `^`, or none) on full or
partial versions with `x`, `X` or `*` wildcards, joined by spaces or commas (and) and `||` (or), hyphen ranges
`1.2 - 1.4`. Pre-releases are candidates only within an `||` alternative that names one (`>=0.1 || 2.1.0-rc.1`
admits `2.1.0-rc.2` but not `3.0.0-rc.1`), unless the caller includes them everywhere.
tests/unit/test_flux_cases.py holds the libraries' own cases and tests/integration/test_flux_reference.py runs a
seeded corpus against the Go libraries themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import re2

from istio_canary.release.semver import Version, loose_version

MAX_RANGE_LENGTH = 512  # bytes; Masterminds' MaxConstraintLen
MAX_ALTERNATIVES = 32  # `||` groups; Masterminds' MaxConstraintGroups

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is our PolicyError, not a line on stderr


def _re(pattern: str) -> re2._Regexp:
    return re2.compile(pattern, _OPTIONS)


# A version inside a range: parts may be wildcards (and the class also admits `|`, as Masterminds' does; such a
# part then fails as a version, so `1|2` is an error, not a number).
_CV = (
    r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?"
    r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
)
_OPS = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^"  # the empty alternative is "no operator"
_ONE = _re(rf"^\s*({_OPS})\s*({_CV})\s*$")
_HYPHEN = _re(rf"\s*({_CV})\s+-\s+({_CV})\s*")
_FIND = _re(rf"({_OPS})\s*({_CV})")
_VALID = _re(rf"^(\s*({_OPS})\s*({_CV})\s*)((?:\s+|,\s*)({_OPS})\s*({_CV})\s*)*$")


class RangeError(ValueError):
    """A range Flux (Masterminds) refuses; the message says which part."""


def _is_x(part: str) -> bool:
    return part in ("x", "X", "*")


@dataclass(frozen=True)
class _Comparator:
    op: str
    bound: Version
    text: str  # as written, for messages
    minor_dirty: bool
    patch_dirty: bool
    dirty: bool

    def check(self, v: Version, with_pre: bool) -> bool:
        if v.prerelease and not with_pre:
            return False
        return _CHECKS[self.op](v, self)


def _comparator(text: str) -> _Comparator:
    match = _ONE.search(text)
    if match is None:
        raise RangeError(f"{text.strip()!r} is not a comparator such as >=1.2.3, ~1.2, ^1 or 1.x")
    op, written = match.group(1) or "", match.group(2) or ""
    major, minor, patch, pre = (match.group(i) or "" for i in (3, 4, 5, 6))
    version_text, dirty, minor_dirty, patch_dirty = written, False, False, False
    if _is_x(major) or not major:
        version_text, dirty = f"0.0.0{pre}", True
    elif _is_x(minor[1:]) or not minor:
        version_text, dirty, minor_dirty = f"{major}.0.0{pre}", True, True
    elif _is_x(patch[1:]) or not patch:
        version_text, dirty, patch_dirty = f"{major}{minor}.0{pre}", True, True
    bound = loose_version(version_text)
    if bound is None:
        raise RangeError(f"{text.strip()!r}: {written!r} is not a version (digits, or x X * for a whole part)")
    return _Comparator(op, bound, written, minor_dirty, patch_dirty, dirty)


def _not_equal(v: Version, c: _Comparator) -> bool:
    if c.dirty:
        if c.bound.major != v.major:
            return True
        if c.bound.minor != v.minor and not c.minor_dirty:
            return True
        if c.minor_dirty:
            return False
        if c.bound.patch != v.patch and not c.patch_dirty:
            return True
        if c.patch_dirty:
            if v.prerelease or c.bound.prerelease:
                return Version(0, 0, 0, v.prerelease).compare(Version(0, 0, 0, c.bound.prerelease)) != 0
            return False
    return v.compare(c.bound) != 0


def _greater(v: Version, c: _Comparator) -> bool:
    if not c.dirty:
        return v.compare(c.bound) > 0
    if v.major != c.bound.major:
        return v.major > c.bound.major
    if c.minor_dirty:
        return False
    if c.patch_dirty:
        return v.minor > c.bound.minor
    return v.compare(c.bound) > 0


def _less_or_equal(v: Version, c: _Comparator) -> bool:
    if not c.dirty:
        return v.compare(c.bound) <= 0
    if v.major > c.bound.major:
        return False
    return not (v.major == c.bound.major and v.minor > c.bound.minor and not c.minor_dirty)


def _tilde(v: Version, c: _Comparator) -> bool:
    if v.compare(c.bound) < 0:
        return False
    b = c.bound
    if b.major == b.minor == b.patch == 0 and not c.minor_dirty and not c.patch_dirty:
        return True  # `~0`, `~*`: anything from 0.0.0 up
    if v.major != b.major:
        return False
    return v.minor == b.minor or c.minor_dirty


def _tilde_or_equal(v: Version, c: _Comparator) -> bool:
    return _tilde(v, c) if c.dirty else v.compare(c.bound) == 0


def _caret(v: Version, c: _Comparator) -> bool:
    b = c.bound
    if v.compare(b) < 0:
        return False
    if b.major > 0 or c.minor_dirty:
        return v.major == b.major
    if v.major > 0:
        return False
    if b.minor > 0 or c.patch_dirty:
        return v.minor == b.minor
    if v.minor > 0:
        return False
    return v.patch == b.patch


# Pre-releases are screened in _Comparator.check before any of these runs.
_CHECKS: dict[str, Callable[[Version, _Comparator], bool]] = {
    "": _tilde_or_equal,
    "=": _tilde_or_equal,
    "!=": _not_equal,
    ">": _greater,
    "<": lambda v, c: v.compare(c.bound) < 0,
    ">=": lambda v, c: v.compare(c.bound) >= 0,
    "=>": lambda v, c: v.compare(c.bound) >= 0,
    "<=": _less_or_equal,
    "=<": _less_or_equal,
    "~": _tilde,
    "~>": _tilde,
    "^": _caret,
}


def _rewrite_hyphens(text: str) -> str:
    """`1.2 - 1.4` -> `>= 1.2, <= 1.4 `, textually, as Masterminds does before splitting on `||`."""
    out = text
    for match in list(_HYPHEN.finditer(text)):
        out = out.replace(match.group(0), f">= {match.group(1)}, <= {match.group(11)} ", 1)
    return out


@dataclass(frozen=True)
class Constraint:
    """A parsed range: alternatives (or) of comparators (and), and which alternatives name a pre-release."""

    text: str
    alternatives: tuple[tuple[_Comparator, ...], ...]
    names_prerelease: tuple[bool, ...]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        if len(text.encode()) > MAX_RANGE_LENGTH:
            raise RangeError(f"a range of at most {MAX_RANGE_LENGTH} bytes")
        alternatives_text = _rewrite_hyphens(text).split("||")
        if len(alternatives_text) > MAX_ALTERNATIVES:
            raise RangeError(f"at most {MAX_ALTERNATIVES} alternatives joined by ||")
        alternatives, names_pre = [], []
        for alternative in alternatives_text:
            if _VALID.search(alternative) is None:
                shown = alternative.strip() or "(empty)"
                raise RangeError(
                    f"{shown!r} is not comparators joined by spaces or commas, e.g. >=1.2.3 <2, ~1.4, ^1, 1.x, 1.2 - 1.4"
                )
            found = [m.group(0) for m in _FIND.finditer(alternative)] or [alternative]
            comparators = tuple(_comparator(one) for one in found)
            alternatives.append(comparators)
            names_pre.append(any(c.bound.prerelease for c in comparators))
        return cls(text, tuple(alternatives), tuple(names_pre))

    def check(self, version: Version, *, include_prereleases: bool = False) -> bool:
        """Does `version` satisfy some alternative? A pre-release only where that alternative names one."""
        return any(
            all(c.check(version, include_prereleases or names_pre) for c in comparators)
            for comparators, names_pre in zip(self.alternatives, self.names_prerelease, strict=True)
        )
