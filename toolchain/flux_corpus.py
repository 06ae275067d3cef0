"""A seeded corpus of tag-policy questions, and the same question put to Flux's libraries and to our Python.

`corpus(seed, size)` draws requests in the reference's protocol (toolchain/fluxpolicy/main.go): versions (v prefix,
leading zeros, pre-releases, build metadata, 1, 2 and 4 parts, numbers past 2^64), ranges from Masterminds'
grammar (every operator including => =< ~>, x X * wildcards, partial versions, pre-releases on partials, hyphen
ranges, commas, ||, whitespace variants) with some garbage, Go float syntax corners, and tag lists with filters and
extract templates for the three Flux policies. The same seed gives the same corpus.

`flux(ref, request)` and `ours(impl, request)` answer a request in one normal form (a tuple), so they compare with
==. `impl` is anything with the names of istio_canary.release.semverrange and istio_canary.release.tagpolicy the port offers (parse_version,
Constraint, RangeError, TagPolicy, NoTagError, parse_float): the current modules, or an adapter over older code.
`deliberate(ref, request, answer)` says which of our documented differences (toolchain/flux_cases.DELIBERATE) a
request falls under, given Flux's answer, and what our answer is then.
"""

from __future__ import annotations

import math
import random
from typing import Any

from toolchain.fluxref import FluxReference

Answer = tuple[Any, ...]
MAX_TAG_LENGTH = 128  # OCI's limit on a tag: longer ones are passed over (the tag-too-long difference)

_OPS = ["", "", "", "=", "!=", ">", "<", ">=", "=>", "<=", "=<", "~", "~>", "^", ">", ">=", "<", "^", "~"]
_BAD_OPS = ["==", "=~", "<>", "!", ">>"]
_X = ["x", "X", "*"]
_PRE = [
    "rc.1",
    "rc.2",
    "0",
    "alpha",
    "alpha.1",
    "beta.2",
    "rc1-with-hyphen",
    "x.Y.0",
    "alpha.01",
    "beta.-1",
    "a..b",
    "",
    "SNAPSHOT",
    "z",
    "1",
    "01a",
    "rc.10",
    "rc.9",
]
_BUILD = ["meta", "001", "a.b", "", "a+b", "build.123", "sha.e8fc5e5"]
_FLOATS = [
    "1e5",
    ".5",
    "5.",
    "+1",
    "-0",
    "0x1p3",
    "0x1P-2",
    "0x1.8p1",
    "0x10",
    "0X1p0",
    "1_000",
    "1__000",
    "_1",
    "1_",
    "0b101",
    "0o17",
    "inf",
    "+Inf",
    "-infinity",
    "Infinity",
    "NaN",
    "nan",
    "+nan",
    "-NaN",
    "1e400",
    "-1e400",
    "1e-400",
    " 1",
    "1 ",
    "",
    "1e",
    "e5",
    "0x",
    "1.2.3",
    "\u0661",  # an Arabic-Indic digit one
    "00012",
    "4e1_0",
    "0x_1p0",
    "1.5e+3",
    "-.5e-2",
    "9007199254740993",
    "0.1",
    "1606364286",
    "-62",
    "3.2008658570411086",
    "0x1p-1074",
    "0x1p1024",
    "1E5",
    "+.e1",
    "0.",
    "-",
    "+",
    "1e+",
    "0x1.fffffffffffffp1023",
    "2.2250738585072011e-308",
]
_FILTERS = [
    r"^main-[a-f0-9]+-(?P<ts>[0-9]+)$",
    r"^v?(?P<version>[0-9]+\.[0-9]+\.[0-9]+)$",
    r"^(?P<num>\d+)$",
    r"^rel-(.*)$",
    r"^test-(.*)$",
    r"(\d+)",
    r"^[0-9]+$",
    r"^v",
    r"^(?P<a>[a-z]+)-(?P<b>[0-9]+)$",
    "[[:digit:]]+",
    r"(?i)^V(\d+)",
    r"\pN+",
    r"(?<ts>[0-9]+)",
    r"(?=x)",
    r"(a)\1",
    "[=",
    r"^(?P<x>[0-9]+)\.(?P<x>[0-9]+)$",
    r"\Ab",
    r"^.{0,3}$",
    "(?s).*",
    r"\b[0-9]{10}\b",
    r"1.0.0-rc\.(?P<num>[0-9]+)",
    r"^(?P<tag>[0-9]+\.[0-9]+\.[a-z0-9]+[^-debug])",
    r"^(?P<date>\d{4}-\d{2}-\d{2})",
    r"-(?P<n>[0-9]+)$",
    r"^(\d+)\.(\d+)",
    "^$",
    r"(?P<01>[0-9]+)",
    "a|",
    r"\d+(",
]
_EXTRACTS = [
    "$1",
    "${1}",
    "$ts",
    "${ts}",
    "$version",
    "$2",
    "$0",
    "$1x",
    "${1}x",
    "$$",
    "$$1",
    "$",
    "${",
    "${ts",
    "$num-$1",
    "prefix-$1",
    "$10",
    "$01",
    "$a$b",
    "${a}.${b}",
    "$missing",
    "$n",
    "$date",
    "$tag",
    "$x",
]
_WORDS = ["latest", "stable", "xenial", "zesty", "artful", "main", "", "-", "v", "1.0.0.0", "dev-0.2.0"]


def _number(rng: random.Random, odd: float = 0.3) -> str:
    roll = rng.random()
    if roll >= odd:
        return str(rng.choice([0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 20, 40]))
    if roll < odd / 2:
        return rng.choice(["00", "01", "007", "010", "2025", "07", "03"])
    return rng.choice(
        [
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
            "4294967296",
            "2147483648",
            "9223372036854775808",
        ]
    )


def version_text(rng: random.Random, *, sane: float = 0.6) -> str:
    """A tag that is usually a version: 3 parts most of the time, sometimes 1, 2 or 4, pre-releases and builds."""
    parts = 3 if rng.random() < sane else rng.choice([1, 2, 3, 4])
    text = ".".join(_number(rng) for _ in range(parts))
    if rng.random() < 0.35:
        text += "-" + rng.choice(_PRE)
    if rng.random() < 0.12:
        text += "+" + rng.choice(_BUILD)
    roll = rng.random()
    if roll < 0.3:
        text = "v" + text
    elif roll < 0.33:
        text = rng.choice(["V", " ", "\n", "b", "vv", "=", "1.2-", "x."]) + text
    elif roll < 0.35:
        text += rng.choice([" ", ".", "p", "\n", "+"])
    if rng.random() < 0.01:
        text = "1.0.0-" + "a" * rng.choice([249, 250, 251, 300])
    return text


def _partial(rng: random.Random) -> str:
    parts = rng.choice([1, 2, 3, 3, 3])
    words = []
    for _ in range(parts):
        words.append(rng.choice(_X) if rng.random() < 0.15 else _number(rng, 0.08))
    text = ".".join(words)
    if rng.random() < 0.15:
        text += "-" + rng.choice(_PRE[:10])
    if rng.random() < 0.03:
        text += "+" + rng.choice(_BUILD)
    if rng.random() < 0.1:
        text = "v" + text
    return text


def _comparator(rng: random.Random) -> str:
    op = rng.choice(_BAD_OPS) if rng.random() < 0.02 else rng.choice(_OPS)
    return op + rng.choice(["", "", "", " ", "  "]) + _partial(rng)


def range_text(rng: random.Random) -> str:
    """A range from Masterminds' grammar, with a little garbage."""
    alternatives = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        if rng.random() < 0.15:
            text = f"{_partial(rng)}{rng.choice([' - ', '  -  ', ' -', '-'])}{_partial(rng)}"
            if rng.random() < 0.3:
                text += rng.choice([" ", ", "]) + _comparator(rng)
        else:
            seps = [" ", ", ", ",", "  ", " ,"]
            text = rng.choice(seps).join(_comparator(rng) for _ in range(rng.choice([1, 1, 2, 2, 3])))
        if rng.random() < 0.15:
            text = rng.choice([" ", "\t", "  "]) + text + rng.choice([" ", "", "\t"])
        alternatives.append(text)
    text = rng.choice(["||", " || ", "  ||  ", "|| "]).join(alternatives)
    roll = rng.random()
    if roll < 0.04:
        text = rng.choice(["foo", "1.2.3.4", ">= bar", "||", "", " ", "1|2", "\uff11.2.3", ">=1.0 ||", "*-*", "x1"])
    elif roll < 0.08:
        cut = rng.randrange(len(text) + 1)
        text = text[:cut] + rng.choice(["|", "-", "~", " ", "x", "a", ",", "||", "=", "..", "+"]) + text[cut:]
    elif roll < 0.1:  # long: past our 200 characters (most within Masterminds' 512 and 32 alternatives)
        count = rng.choice([33, 40]) if rng.random() < 0.2 else min(32, (200 // (len(text) + 4)) + 1)
        text = " || ".join([text] * count)
    return text


def _tag(rng: random.Random, kind: str) -> str:
    roll = rng.random()
    if (kind == "semver" and roll < 0.7) or roll < 0.2:
        return version_text(rng, sane=0.85)
    if (kind == "numerical" and roll < 0.6) or roll < 0.3:
        return rng.choice(_FLOATS) if rng.random() < 0.3 else str(rng.randrange(0, 2_000_000_000))
    if roll < 0.5:
        return f"main-{rng.randrange(16**7):07x}-{rng.randrange(1_600_000_000, 1_700_000_000)}"
    if roll < 0.6:
        return f"{rng.randrange(1990, 2030)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T00-20-00Z"
    if roll < 0.7:
        return f"1.0.0-rc.{rng.randrange(12)}"
    if roll < 0.8:
        return rng.choice(["test-", "rel-", "foo-", "v", "dev-"]) + version_text(rng)
    if roll < 0.82:
        return "t" * rng.choice([127, 128, 129, 200])
    return rng.choice(_WORDS)


def _tags(rng: random.Random, kind: str) -> list[str]:
    tags = [_tag(rng, kind) for _ in range(rng.choice([0, 1, 2, 3, 5, 8, 12]))]
    if tags and rng.random() < 0.3:  # the same tag twice, or the same value spelled twice
        tags.insert(rng.randrange(len(tags) + 1), rng.choice(tags))
    if tags and rng.random() < 0.2:
        pick = rng.choice(tags)
        tags.append(pick[1:] if pick.startswith("v") else "v" + pick)
    return tags


def _ties(rng: random.Random, kind: str) -> list[str]:
    """Tags the policy ranks equal, in a random order: which one wins is the tie rule (semver: the first of the
    highest; numerical: the last; a filter's value: the last tag with it)."""
    if kind == "numerical":
        base = rng.choice(["1", "10", "1606364286", "0", "5"])
        pool = [base, base + ".0", "0" + base, base + "e0", "+" + base, base + ".00", f"{float(base):.1e}"]
        pool += [f"rel-{base}", f"main-abc-{base}", f"main-def-0{base}"]
    else:
        major, minor, patch = rng.choice([(1, 0, 0), (1, 2, 3), (0, 1, 0), (2025, 7, 3)])
        plain = f"{major}.{minor}.{patch}"
        padded = f"{major:02d}.{minor:02d}.{patch:02d}"
        pool = [plain, "v" + plain, padded, "v" + padded, plain + "+a", plain + "+b", "v" + plain + "+build.1"]
        pool += [plain + "-rc.1", plain + "-rc.1+x", f"test-{plain}", f"test-v{plain}", f"{major}.{minor}.{patch + 1}"]
    return [rng.choice(pool) for _ in range(rng.choice([2, 3, 5, 8]))]


def _latest(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["semver", "semver", "semver", "numerical", "alphabetical"])
    if kind == "semver":
        policy = "semver:" + (
            range_text(rng) if rng.random() < 0.85 else rng.choice(["*", ">=0.0.0-0", "1.x", "^1.x-0"])
        )
    else:
        policy = f"{kind}:{rng.choice(['asc', 'desc'])}"  # the CRD's enum: asc|desc
    tags = _tags(rng, kind) if rng.random() < 0.8 else _ties(rng, kind)
    request: dict[str, Any] = {"op": "latest", "policy": policy, "tags": tags}
    if rng.random() < 0.45:
        request["filter"] = rng.choice(_FILTERS)
        request["extract"] = rng.choice(_EXTRACTS) if rng.random() < 0.5 else ""
    return request


def corpus(seed: int, size: int) -> list[dict[str, Any]]:
    """`size` requests drawn with `seed`: a third latest, the rest versions, ranges, checks, compares, floats."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for _ in range(size):
        roll = rng.random()
        if roll < 0.12:
            out.append({"op": "version", "text": version_text(rng)})
        elif roll < 0.25:
            out.append({"op": "constraint", "range": range_text(rng)})
        elif roll < 0.50:
            out.append({"op": "check", "range": range_text(rng), "version": version_text(rng, sane=0.9)})
        elif roll < 0.58:
            out.append({"op": "compare", "a": version_text(rng, sane=0.95), "b": version_text(rng, sane=0.95)})
        elif roll < 0.66:
            text = rng.choice(_FLOATS) if rng.random() < 0.7 else version_text(rng)
            out.append({"op": "parsefloat", "text": text})
        else:
            out.append(_latest(rng))
    return out


def _float_form(value: float) -> Answer:
    if math.isnan(value):
        return ("ok", "NaN")
    return ("ok", value, math.copysign(1.0, value))  # -0 and 0 differ in sign only


def flux(ref: FluxReference, request: dict[str, Any]) -> Answer:
    """Flux's answer to `request` in the normal form."""
    got = ref.ask(request)
    op = request["op"]
    if op == "version":
        return ("ok", got["major"], got["minor"], got["patch"], got["pre"]) if got["ok"] else ("refused",)
    if op == "constraint":
        return ("ok",) if got["ok"] else ("refused",)
    if op == "check":
        return ("ok", got["result"]) if got["ok"] else (f"{got['what']}-refused",)
    if op == "compare":
        return ("ok", got["result"]) if got["ok"] else ("version-refused",)
    if op == "parsefloat":
        return _float_form(float(got["value"])) if got["ok"] else ("refused",)
    if op == "latest":
        return ("tag", got["tag"]) if got["ok"] else (got["kind"],)
    raise ValueError(f"unknown op {op!r}")


def ours(impl: Any, request: dict[str, Any]) -> Answer:
    """Our answer to `request` in the normal form, from `impl` (istio_canary.release.semverrange + istio_canary.release.tagpolicy names)."""
    op = request["op"]
    if op == "version":
        v = impl.parse_version(request["text"])
        return ("ok", v.major, v.minor, v.patch, v.prerelease) if v is not None else ("refused",)
    if op in ("constraint", "check"):
        try:
            constraint = impl.Constraint.parse(request["range"])
        except impl.RangeError:
            return ("refused",) if op == "constraint" else ("range-refused",)
        if op == "constraint":
            return ("ok",)
        v = impl.parse_version(request["version"])
        return ("ok", bool(constraint.check(v))) if v is not None else ("version-refused",)
    if op == "compare":
        a, b = impl.parse_version(request["a"]), impl.parse_version(request["b"])
        return ("ok", a.compare(b)) if a is not None and b is not None else ("version-refused",)
    if op == "parsefloat":
        value = impl.parse_float(request["text"])
        return _float_form(value) if value is not None else ("refused",)
    if op == "latest":
        try:
            policy = impl.TagPolicy.parse(request["policy"], request.get("filter", ""), request.get("extract", ""))
        except impl.NoTagError:
            raise
        except ValueError:
            return ("invalid",)
        try:
            tag = policy.latest(request["tags"])
        except impl.NoTagError:
            return ("fail",)
        return ("tag", tag) if tag is not None else ("empty",)
    raise ValueError(f"unknown op {op!r}")


def _template_names(template: str) -> list[str]:
    """The group names/numbers a Go Expand template refers to ($name, ${name}; `$$` is a dollar)."""
    names, rest = [], template
    while "$" in rest:
        rest = rest.split("$", 1)[1]
        if rest.startswith("$"):
            rest = rest[1:]
            continue
        brace = rest.startswith("{")
        body = rest[1:] if brace else rest
        end = 0
        while end < len(body) and (body[end].isalnum() or body[end] == "_"):
            end += 1
        if end == 0 or (brace and body[end : end + 1] != "}"):
            continue  # malformed: Go copies the `$` as text
        names.append(body[:end])
        rest = body[end + 1 :] if brace else body[end:]
    return names


def deliberate(ref: FluxReference, request: dict[str, Any], answer: Answer) -> tuple[str, Answer] | None:
    """(reason id, our answer) when `request` is one of our deliberate differences and Flux answers otherwise."""
    op = request["op"]
    if op == "parsefloat" and answer[0] == "ok" and (answer[1] == "NaN" or math.isinf(answer[1])):
        return ("numerical-not-finite", ("refused",))
    if op != "latest" or answer == ("invalid",):
        return None
    pattern, extract = request.get("filter", ""), request.get("extract", "")
    if extract:
        groups = ref.ask({"op": "groups", "filter": pattern})
        if groups["ok"]:
            names = set(groups["names"])
            for name in _template_names(extract):
                number = int(name) if name.isascii() and name.isdigit() and (name == "0" or name[0] != "0") else None
                if (number is not None and number > groups["count"]) or (number is None and name not in names):
                    return ("extract-missing-group", ("invalid",))
    if any(len(tag) > MAX_TAG_LENGTH for tag in request["tags"]):
        shorter = {**request, "tags": [tag for tag in request["tags"] if len(tag) <= MAX_TAG_LENGTH]}
        shorter_answer = flux(ref, shorter)
        nested = deliberate(ref, shorter, shorter_answer)  # the shorter listing may hold another difference
        ours = nested[1] if nested else shorter_answer
        if ours != answer:
            return ("tag-too-long", ours)
    if request["policy"].startswith("numerical:") and answer[0] == "tag":
        if pattern or extract:
            values = [
                item["value"]
                for item in ref.ask({"op": "filter", "filter": pattern, "extract": extract, "tags": request["tags"]})[
                    "items"
                ]
            ]
        else:
            values = list(request["tags"])
        for value in values:
            parsed = ref.ask({"op": "parsefloat", "text": value})
            if parsed["ok"] and parsed["value"] in ("+Inf", "-Inf", "NaN"):
                return ("numerical-not-finite", ("fail",))
    return None
