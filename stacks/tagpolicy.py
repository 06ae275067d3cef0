"""Image tag policies as Flux's ImagePolicy has them: which registry tag is the newest one a line may move to.

A policy is `<kind>:<argument>` plus an optional tag filter:
- `semver:<range>`: release tags in the range, ordered by semantic-version precedence (the `semver` library's
  comparison). Ranges: comparators `>= > <= < = !=` joined by spaces or commas (and), `||` (or), `~`, `^`,
  x-ranges (`6.x`, `6.9.x`, `6`) and hyphen ranges (`6.1 - 6.4`). A partial upper bound excludes that
  version's pre-releases (`<7` is `<7.0.0-0`); a full one does not (`7.0.0-rc.1` is below `7.0.0`).
  Pre-releases are candidates only when the stack opts in, or when the range itself names one (`>=7.0.0-rc.0`).
- `glob:<pattern>`: release tags (never pre-releases) matching an fnmatch pattern, semver-ordered.
- `numerical:asc|desc`: the value is a number (a build number, a Unix time); asc picks the highest.
- `alphabetical:asc|desc`: plain string order (RFC 3339 timestamps); asc picks the last.
The filter is a regular expression a tag must match (`^main-[a-f0-9]+-(?P<ts>[0-9]+)`); the extract template
(`$ts`, `${ts}`, `$1`) names the part the policy orders. The tag that wins is the whole tag.

Contract: `TagPolicy.parse(...)` raises PolicyError (one message, naming what is wrong) or returns a policy
whose `newest(tags, current)` is pure: the best candidate strictly newer than `current`, or None.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import semver

from stacks.rules import MAX_TAG_LENGTH, parse_semver

KINDS = ("semver", "glob", "numerical", "alphabetical")
ORDERS = ("asc", "desc")
MAX_RANGE_LENGTH = 200
NUMBER = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,30})?")
# One comparator: an operator, then a partial version (x/X/* wildcards) with an optional pre-release.
_COMPARATOR = re.compile(
    r"(?P<op>>=|<=|>|<|==|=|!=|~>|~|\^)?\s*v?"
    r"(?P<major>[0-9]{1,9}|[xX*])(?:\.(?P<minor>[0-9]{1,9}|[xX*])(?:\.(?P<patch>[0-9]{1,9}|[xX*])"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?)?)?"
)
_TEMPLATE = re.compile(r"\$\$|\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)")

Bound = tuple[str, semver.Version]  # (">=", 6.15.0): one comparison the version must pass


class PolicyError(ValueError):
    """A policy, range, filter or extract template that cannot work; the message says what would."""


class NoTagError(ValueError):
    """The registry's tags make the policy fail as Flux's would (numerical over a value that is not a number)."""


def version(text: str) -> semver.Version | None:
    """The semantic version of a tag such as `6.9.1`, `v6.9.1` or `6.10.0-rc.1`; None for anything else."""
    if parse_semver(text) is None:  # ASCII digits, bounded parts, at most 128 characters
        return None
    try:
        return semver.Version.parse(text.removeprefix("v"))
    except ValueError:  # an empty pre-release identifier (`1.0.0-rc..1`), a leading zero in a numeric one
        return None


def _number(part: str | None) -> int | None:
    return None if part is None or part in "xX*" else int(part)


def _comparator(text: str) -> tuple[list[Bound], bool]:
    """The bounds of one comparator and whether it names a pre-release."""
    match = _COMPARATOR.fullmatch(text)
    if not match:
        raise PolicyError(f"{text!r} is not a version comparator such as >=6.15.0, <7, ~6.14 or 6.x")
    op = match["op"] or "="
    parts = [_number(match["major"]), _number(match["minor"]), _number(match["patch"])]
    pre = match["pre"] or ""
    if None in parts and pre:
        raise PolicyError(f"{text!r}: a pre-release needs a full version (7.0.0-rc.1)")
    cut = parts.index(None) if None in parts else 3
    if any(p is not None for p in parts[cut:]):
        raise PolicyError(f"{text!r}: a wildcard is followed by a number")
    known = [p for p in parts[:cut] if p is not None]
    major, minor, patch = [*known, 0, 0, 0][:3]
    low = semver.Version(major, minor, patch, pre or None)
    if len(known) == 3:
        base = {"=": "==", "==": "=="}.get(op, op)
        if base in (">=", ">", "<=", "<", "==", "!="):
            return [(base, low)], bool(pre)
    if op == "!=":
        raise PolicyError(f"{text!r}: != needs a full version")
    if not known:  # `*`, `x`: any version; `<*` or `>*` would be none, which no one means
        if op not in ("=", ">=", "<="):
            raise PolicyError(f"{text!r}: a wildcard alone takes no operator but =, >= or <=")
        return [(">=", semver.Version(0, 0, 0))], False
    # The first version past the partial one (6 -> 7.0.0, 6.9 -> 6.10.0), as `-0`: below its pre-releases.
    past = semver.Version(major + 1, 0, 0, "0") if len(known) == 1 else semver.Version(major, minor + 1, 0, "0")
    if op in ("~", "~>"):
        past = past if len(known) < 3 else semver.Version(major, minor + 1, 0, "0")
        return [(">=", low), ("<", past)], bool(pre)
    if op == "^":
        if major > 0 or len(known) == 1:
            past = semver.Version(major + 1, 0, 0, "0")
        elif minor > 0 or len(known) == 2:
            past = semver.Version(0, minor + 1, 0, "0")
        else:
            past = semver.Version(0, 0, patch + 1, "0")
        return [(">=", low), ("<", past)], bool(pre)
    table: dict[str, list[Bound]] = {
        "=": [(">=", low), ("<", past)],
        ">=": [(">=", low)],
        ">": [(">=", past.replace(prerelease=None))],
        "<": [("<", semver.Version(major, minor, 0, "0") if len(known) == 2 else semver.Version(major, 0, 0, "0"))],
        "<=": [("<", past)],
    }
    return table[op], False


def _hyphen(low: str, high: str) -> tuple[list[Bound], bool]:
    bounds, pre_low = _comparator(">=" + low)
    upper, pre_high = _comparator("<=" + high)
    return bounds + upper, pre_low or pre_high


def parse_range(text: str) -> tuple[tuple[tuple[Bound, ...], ...], bool]:
    """`>=6.15.0 <7 || 8.x` -> alternatives of bounds (or of and), and whether the range names a pre-release."""
    if not text.strip():
        raise PolicyError("an empty range; use * for any version")
    if len(text) > MAX_RANGE_LENGTH or not text.isascii():
        raise PolicyError(f"a range of at most {MAX_RANGE_LENGTH} ASCII characters")
    alternatives: list[tuple[Bound, ...]] = []
    names_pre = False
    for alternative in text.split("||"):
        words = re.sub(r"(>=|<=|==|!=|~>|[<>=~^])\s+", r"\1", alternative.replace(",", " ")).split()
        if not words:
            raise PolicyError(f"{text!r}: an empty alternative around ||")
        bounds: list[Bound] = []
        if len(words) == 3 and words[1] == "-":
            found, pre = _hyphen(words[0], words[2])
            bounds += found
            names_pre |= pre
        else:
            for word in words:
                found, pre = _comparator(word)
                bounds += found
                names_pre |= pre
        alternatives.append(tuple(bounds))
    return tuple(alternatives), names_pre


def _passes(candidate: semver.Version, op: str, bound: semver.Version) -> bool:
    order = candidate.compare(bound)
    return {">=": order >= 0, ">": order > 0, "<=": order <= 0, "<": order < 0, "==": order == 0, "!=": order != 0}[op]


def expand(template: str, match: re.Match[str]) -> str:
    """Go's regexp Expand as Flux uses it: `$name`, `${name}`, `$1`, and `$$` for a dollar."""

    def one(found: re.Match[str]) -> str:
        if found.group(0) == "$$":
            return "$"
        name = found.group(1) or found.group(2)
        value = match.group(int(name) if name.isdigit() else name)
        return value or ""

    return _TEMPLATE.sub(one, template)


def _check_template(template: str, pattern: re.Pattern[str]) -> None:
    for found in _TEMPLATE.finditer(template):
        name = found.group(1) or found.group(2)
        if name is None:
            continue
        if name.isdigit() and int(name) > pattern.groups:
            raise PolicyError(f"extract ${name}: the filter has {pattern.groups} group(s)")
        if not name.isdigit() and name not in pattern.groupindex:
            raise PolicyError(f"extract ${name}: the filter has no group named {name} (write it (?P<{name}>...))")


@dataclass(frozen=True)
class TagPolicy:
    """A parsed policy; build it with TagPolicy.parse."""

    kind: str
    argument: str
    filter: re.Pattern[str] | None = None
    extract: str = ""
    prereleases: bool = False
    ranges: tuple[tuple[Bound, ...], ...] = ()

    @classmethod
    def parse(cls, policy: str, tag_filter: str = "", extract: str = "", prereleases: bool = False) -> TagPolicy:
        """Validate everything at once; PolicyError says what is wrong."""
        kind, colon, argument = policy.partition(":")
        if not colon or kind not in KINDS:
            raise PolicyError(
                "semver:<range> (semver:6.x, semver:>=6.15.0 <7), glob:<pattern>, numerical:asc|desc "
                "or alphabetical:asc|desc"
            )
        compiled: re.Pattern[str] | None = None
        if tag_filter:
            if len(tag_filter) > 256:
                raise PolicyError("a tag filter of at most 256 characters")
            try:
                compiled = re.compile(tag_filter, re.ASCII)
            except re.error as exc:
                raise PolicyError(f"the tag filter is not a regular expression: {exc}") from None
        if extract:
            if compiled is None:
                raise PolicyError("an extract template needs a tag filter with groups to extract from")
            _check_template(extract, compiled)
        ranges: tuple[tuple[Bound, ...], ...] = ()
        if kind == "semver":
            ranges, names_pre = parse_range(argument)
            prereleases = prereleases or names_pre
        elif kind == "glob":
            if not argument or len(argument) > MAX_TAG_LENGTH or not re.fullmatch(r"[A-Za-z0-9_.*?-]+", argument):
                raise PolicyError("glob:<pattern> of letters, digits, . _ - and the wildcards * ?")
        elif argument not in ORDERS:
            raise PolicyError(f"{kind}:asc or {kind}:desc (asc picks the highest)")
        return cls(kind, argument, compiled, extract, prereleases, ranges)

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

    def key(self, tag: str) -> tuple | None:
        """The sort key of an allowed tag (higher is newer), or None when the policy does not allow it."""
        value = self.value(tag)
        if value is None:
            return None
        if self.kind == "numerical":
            if not NUMBER.fullmatch(value):
                return None
            number = Decimal(value)
            return (number if self.argument == "asc" else -number,)
        if self.kind == "alphabetical":
            return (value,) if self.argument == "asc" else (_Reversed(value),)
        parsed = version(value)
        if parsed is None or (parsed.prerelease and not self.prereleases):
            return None
        if self.kind == "glob":
            if parsed.prerelease or not fnmatch.fnmatchcase(value, self.argument):
                return None
        elif not any(all(_passes(parsed, op, bound) for op, bound in bounds) for bounds in self.ranges):
            return None
        return (_Version(parsed),)

    def reads(self, tag: str) -> bool:
        """Can this policy order `tag` (its filter matches and the value is in the policy's scheme)? Range bounds
        do not count: a version a person chose outside the range is still a version the policy can compare."""
        return self.key(tag) is not None  # interim; the Flux port replaces this

    def compare(self, a: str, b: str) -> int | None:
        """-1/0/1 by the policy's own order; None when the policy cannot read one of them."""
        ka, kb = self.key(a), self.key(b)
        if ka is None or kb is None:
            return None
        return (ka > kb) - (ka < kb)

    def latest(self, tags: Iterable[str]) -> str | None:
        """The tag Flux's ImagePolicy would pick from `tags`; None when it finds none."""
        return self.newest(tags, "")  # interim; the Flux port replaces this

    def newest(self, tags: Iterable[str], current: str) -> str | None:
        """The best allowed tag strictly newer than `current` (any candidate when `current` is not allowed)."""
        floor = self.key(current) if self.kind not in ("semver", "glob") else _semver_floor(self, current)
        best: tuple | None = None
        for tag in tags:
            key = self.key(tag)
            if key is None or (floor is not None and not key > floor):
                continue
            # Equal keys (6.9.1 and v6.9.1): prefer the spelling without a v, then the higher string.
            ranked = (key, not tag.startswith("v"), tag)
            if best is None or ranked > best:
                best = ranked
        return best[2] if best else None


def _semver_floor(policy: TagPolicy, current: str) -> tuple | None:
    """For version policies the floor is `current`'s version even if the policy would not pick it now."""
    value = policy.value(current)
    parsed = version(value) if value is not None else None
    return (_Version(parsed),) if parsed is not None else None


class _Version:
    """semver.Version ordered by precedence only (its own ordering), usable inside tuple keys."""

    __slots__ = ("v",)

    def __init__(self, v: semver.Version) -> None:
        self.v = v

    def __lt__(self, other: _Version) -> bool:
        return self.v.compare(other.v) < 0

    def __gt__(self, other: _Version) -> bool:
        return self.v.compare(other.v) > 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Version) and self.v.compare(other.v) == 0

    def __hash__(self) -> int:
        return hash(self.v.finalize_version())


class _Reversed:
    """A string ordered backwards: alphabetical:desc picks the first tag."""

    __slots__ = ("s",)

    def __init__(self, s: str) -> None:
        self.s = s

    def __lt__(self, other: _Reversed) -> bool:
        return self.s > other.s

    def __gt__(self, other: _Reversed) -> bool:
        return self.s < other.s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.s == other.s

    def __hash__(self) -> int:
        return hash(self.s)
