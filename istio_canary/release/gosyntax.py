"""Go's text rules that Flux's image policies apply, in Python: strconv.ParseFloat (the numerical policy) and
regexp's Expand (filterTags.extract). Each follows the Go source's behaviour on the corners (underscores between
digits, hex floats with a mandatory p exponent, `$1x` naming the group "1x", `$$`), and
tests/integration/test_flux_reference.py asks Go itself about a seeded corpus of both.
"""

from __future__ import annotations

import math
import re
import unicodedata

import re2

# Go's strconv.ParseFloat syntax: decimal with an optional exponent, or hex with a mandatory p exponent; `_`
# between digits (checked apart, as Go does). Specials are matched before these.
_DECIMAL = re.compile(r"[+-]?(?:[0-9_]*[0-9][0-9_]*\.?[0-9_]*|[0-9_]*\.[0-9_]*[0-9][0-9_]*)(?:[eE][+-]?[0-9][0-9_]*)?")
_HEX = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F_]*[0-9a-fA-F][0-9a-fA-F_]*\.?[0-9a-fA-F_]*|[0-9a-fA-F_]*\.[0-9a-fA-F_]*[0-9a-fA-F][0-9a-fA-F_]*)"
    r"[pP][+-]?[0-9][0-9_]*"
)
_SPECIAL = re.compile(r"[+-]?(?:inf|infinity)|nan", re.IGNORECASE)


def _underscores_ok(text: str) -> bool:
    """Go's rule: `_` only between digits (a base prefix counts as a digit), never first or last."""
    text = text[1:] if text[:1] in "+-" else text
    saw, i, hexadecimal = "^", 0, False
    if len(text) >= 2 and text[0] == "0" and text[1].lower() in "box":
        i, saw, hexadecimal = 2, "0", text[1].lower() == "x"
    for ch in text[i:]:
        if ch.isascii() and (ch.isdigit() or (hexadecimal and ch.lower() in "abcdef")):
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def parse_float(text: str) -> float | None:
    """Go's strconv.ParseFloat(text, 64) for finite values; None where Go errs or the value is inf or NaN."""
    if _SPECIAL.fullmatch(text):
        return None  # Go reads these; a policy ordering them is never what a build number meant
    hexadecimal = _HEX.fullmatch(text) is not None
    if not hexadecimal and _DECIMAL.fullmatch(text) is None:
        return None
    if "_" in text and not _underscores_ok(text):
        return None
    plain = text.replace("_", "")
    try:
        value = float.fromhex(plain) if hexadecimal else float(plain)
    except (OverflowError, ValueError):
        return None
    return value if math.isfinite(value) else None  # Go: out of range


def _template_name(template: str) -> tuple[str, str] | None:
    """Go's regexp extract(): the name after a `$` (`name` or `{name}`) and the rest; None when malformed."""
    brace = template.startswith("{")
    body = template[1:] if brace else template
    end = 0
    while end < len(body) and (body[end].isalpha() or unicodedata.category(body[end]) == "Nd" or body[end] == "_"):
        end += 1
    if end == 0:
        return None
    if brace:
        if end >= len(body) or body[end] != "}":
            return None
        return body[:end], body[end + 1 :]
    return body[:end], body[end:]


def group_number(name: str) -> int | None:
    """A group number as Go reads it: ASCII digits, no leading zero, below 1e8; None for a name."""
    if not name.isascii() or not name.isdigit() or (name[0] == "0" and len(name) > 1) or len(name) > 9:
        return None
    return int(name)


def template_groups(template: str) -> list[str]:
    names, rest = [], template
    while "$" in rest:
        rest = rest.split("$", 1)[1]
        if rest.startswith("$"):
            rest = rest[1:]
            continue
        found = _template_name(rest)
        if found is not None:
            names.append(found[0])
            rest = found[1]
    return names


def expand(template: str, match: re2._Match) -> str:
    """Go's Regexp.ExpandString as Flux uses it: `$name`, `${name}`, `$1`, `$$`; an unmatched group is ""."""
    out, rest = [], template
    while "$" in rest:
        before, rest = rest.split("$", 1)
        out.append(before)
        if rest.startswith("$"):
            out.append("$")
            rest = rest[1:]
            continue
        found = _template_name(rest)
        if found is None:
            out.append("$")
            continue
        name, rest = found
        number = group_number(name)
        if number is None:
            number = match.re.groupindex.get(name)
        if number is not None and number <= match.re.groups:
            out.append(match.group(number) or "")
    out.append(rest)
    return "".join(out)
