"""Image tag policies as Flux's ImagePolicy has them: which registry tag is the newest one a line may move to.

A policy is `<kind>:<argument>` plus an optional tag filter and extract template, and picks what Flux's
image-reflector-controller picks from the same tags:
- `semver:<range>`: the highest version in a Masterminds range (istio_canary/release/semverrange.py; tags need three parts).
- `numerical:asc|desc`: every value is a number (Go's float syntax); asc picks the highest. A value that is not
  a number fails the policy, as in Flux: the filter must leave numbers only.
- `alphabetical:asc|desc`: byte order (RFC 3339 timestamps); asc picks the last.
- `glob:<pattern>` (ours, not Flux's): release versions matching an fnmatch pattern, highest first.
The filter is a Go/RE2 regular expression a tag must match (`^main-[a-f0-9]+-(?P<ts>[0-9]+)`); the extract
template (`$ts`, `${ts}`, `$1`, `$$`) is expanded as Go's Regexp.Expand does and names the part the policy orders;
two tags with the same extracted value: the later one in the listing stands for it, as in Flux.

Differences from Flux, on purpose (docs/release.md lists them with the reasons):
- `imagePrereleases: true` admits pre-releases in every alternative of a range (Flux has no such switch).
- An extract naming a group the filter lacks is refused when the stack is read (Go expands it to "", and then
  every tag has the same value).
- numerical: `inf`, `nan`, `infinity` and numbers beyond float64 fail the policy like any non-number (Go would
  order them, and NaN's place depends on the listing order).
- A filter of more than 256 characters is refused.

Contract: `TagPolicy.parse(...)` raises PolicyError (one message, naming what is wrong) or returns a policy whose
methods are pure: `latest(tags)` is Flux's pick, `newest(tags, current)` that pick when it is newer than the
running tag by the policy's own order; both raise NoTagError where Flux's policy fails on these tags.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import re2

from istio_canary.release.gosyntax import expand, group_number, parse_float, template_groups
from istio_canary.release.rules import MAX_TAG_LENGTH
from istio_canary.release.semver import Version, parse_version
from istio_canary.release.semverrange import Constraint, RangeError

KINDS = ("semver", "glob", "numerical", "alphabetical")
ORDERS = ("asc", "desc")
MAX_FILTER_LENGTH = 256
_FILTER_OPTIONS = re2.Options()
_FILTER_OPTIONS.log_errors = False
# Flux's ImageRepository stores a scan's tags minus its exclusionList, whose default drops cosign's signature tags
# (`sha256-<digest>.sig`); its policies never see them. Without this, alphabetical:asc would pick a signature.
DEFAULT_EXCLUSIONS = (r"^.*\.sig$",)
_EXCLUDED = re2.compile("|".join(f"(?:{pattern})" for pattern in DEFAULT_EXCLUSIONS), _FILTER_OPTIONS)


def scanned(tags: Iterable[str]) -> list[str]:
    """The tags Flux's ImageRepository keeps from a listing (its default exclusionList), in listing order."""
    return [tag for tag in tags if _EXCLUDED.search(tag) is None]


class PolicyError(ValueError):
    """A policy, range, filter or extract template that cannot work; the message says what would."""


class NoTagError(ValueError):
    """The registry's tags make the policy fail as Flux's would (numerical over a value that is not a number)."""


@dataclass(frozen=True)
class TagPolicy:
    """A parsed policy; build it with TagPolicy.parse."""

    kind: str
    argument: str
    filter: re2._Regexp | None = None
    extract: str = ""
    prereleases: bool = False
    constraint: Constraint | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, policy: str, tag_filter: str = "", extract: str = "", prereleases: bool = False) -> TagPolicy:
        """Validate everything at once; PolicyError says what is wrong."""
        kind, colon, argument = policy.partition(":")
        if not colon or kind not in KINDS:
            raise PolicyError(
                "semver:<range> (semver:6.x, semver:>=6.15.0 <7), glob:<pattern>, numerical:asc|desc "
                "or alphabetical:asc|desc"
            )
        compiled = None
        if tag_filter:
            if len(tag_filter) > MAX_FILTER_LENGTH:
                raise PolicyError(f"a tag filter of at most {MAX_FILTER_LENGTH} characters")
            try:
                compiled = re2.compile(tag_filter, _FILTER_OPTIONS)
            except re2.error as exc:
                reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
                raise PolicyError(f"the tag filter is not a Go (RE2) regular expression: {reason}") from None
        if extract:
            if compiled is None:
                raise PolicyError("an extract template needs a tag filter with groups to extract from")
            for name in template_groups(extract):
                number = group_number(name)
                if number is not None and number > compiled.groups:
                    raise PolicyError(f"extract ${name}: the filter has {compiled.groups} group(s)")
                if number is None and name not in compiled.groupindex:
                    raise PolicyError(f"extract ${name}: the filter has no group named {name} (write (?P<{name}>...))")
        constraint = None
        if kind == "semver":
            try:
                constraint = Constraint.parse(argument)
            except RangeError as exc:
                raise PolicyError(str(exc)) from None
        elif kind == "glob":
            if not argument or len(argument) > MAX_TAG_LENGTH or not re.fullmatch(r"[A-Za-z0-9_.*?-]+", argument):
                raise PolicyError("glob:<pattern> of letters, digits, . _ - and the wildcards * ?")
        elif argument not in (*ORDERS, ""):
            raise PolicyError(f"{kind}:asc or {kind}:desc (asc picks the highest)")
        else:
            argument = argument or "asc"  # Flux's default order
        return cls(kind, argument, compiled, extract, prereleases, constraint)

    def __str__(self) -> str:
        return f"{self.kind}:{self.argument}"

    def value(self, tag: str) -> str | None:
        """The part of `tag` this policy orders (all of it without a filter); None when the filter drops it."""
        if len(tag) > MAX_TAG_LENGTH:
            return None
        if self.filter is None:
            return tag
        match = self.filter.search(tag)
        if match is None:
            return None
        return expand(self.extract, match) if self.extract else tag

    def _order_key(self, value: str) -> Version | float | str | None:
        """The value in the policy's scheme (before asc/desc), or None when the scheme cannot read it."""
        if self.kind == "numerical":
            return parse_float(value)
        if self.kind == "alphabetical":
            return value
        return parse_version(value)

    def reads(self, tag: str) -> bool:
        """Can this policy order `tag` (its filter matches and the value is in the policy's scheme)? Range bounds
        do not count: a version a person chose outside the range is still a version the policy can compare."""
        value = self.value(tag)
        return value is not None and self._order_key(value) is not None

    def compare(self, a: str, b: str) -> int | None:
        """-1/0/1 by the policy's own order (desc reversed); None when the policy cannot read one of them."""
        va, vb = self.value(a), self.value(b)
        ka = self._order_key(va) if va is not None else None
        kb = self._order_key(vb) if vb is not None else None
        if ka is None or kb is None:
            return None
        if isinstance(ka, Version) and isinstance(kb, Version):
            return ka.compare(kb)
        found = (ka > kb) - (ka < kb)  # type: ignore[operator]  # same scheme: both floats or both strings
        return -found if self.argument == "desc" else found

    def _allowed(self, version: Version) -> bool:
        if self.kind == "glob":
            return not version.prerelease and fnmatch.fnmatchcase(version.original, self.argument)
        assert self.constraint is not None
        return self.constraint.check(version, include_prereleases=self.prereleases)

    def latest(self, tags: Iterable[str]) -> str | None:
        """The tag Flux's ImagePolicy would pick from `tags`; None when it finds none."""
        if self.filter is None:  # Flux hands the listing itself to the policy: among equals, the order decides
            pairs = [(tag, tag) for tag in tags if self.value(tag) is not None]
        else:  # Flux's filter keeps one tag per value (the later one), in a map: each value once
            found: dict[str, str] = {}
            for tag in tags:
                value = self.value(tag)
                if value is not None:
                    found[value] = tag
            pairs = list(found.items())
        if not pairs:
            return None
        if self.kind in ("semver", "glob"):
            best: tuple[Version, str] | None = None
            for value, tag in pairs:
                version = parse_version(value)
                if version is not None and self._allowed(version) and (best is None or version.compare(best[0]) > 0):
                    best = (version, tag)
            return best[1] if best is not None else None
        if self.kind == "alphabetical":
            return (max if self.argument == "asc" else min)(pairs)[1]
        picked, picked_number = "", 0.0
        for i, (value, tag) in enumerate(pairs):
            number = parse_float(value)
            if number is None:
                raise NoTagError(
                    f"tag {tag!r}: {value!r} is not a finite number, and {self} orders numbers only "
                    "(Flux fails on it too); an imageTagFilter such as ^[0-9]+$ leaves the numbers"
                )
            if i and (number < picked_number if self.argument == "asc" else number > picked_number):
                continue
            picked, picked_number = tag, number
        return picked

    def newest(self, tags: Iterable[str], current: str) -> str | None:
        """Flux's pick when it is newer than `current` by the policy's order; None when nothing is.

        `current` is a floor only where the policy reads it. Alphabetical order compares any two strings, so it
        uses `current` as a floor only while the registry still lists it: a tag of the scheme before (6.9.1 ahead
        of the first timestamp tag) would otherwise hide every new tag.
        """
        listed = list(tags)
        picked = self.latest(listed)
        if picked is None or picked == current:
            return None
        floor = self.reads(current) and (self.kind != "alphabetical" or current in listed)
        if floor and (self.compare(picked, current) or 0) <= 0:
            return None
        return picked
