"""How `pulumi config set` writes a plain value into a stack file, so the `canary` tool writes the same text.

Pulumi keeps every config value as a string and, on each `pulumi config set`, writes the whole stack file
again through Go's YAML encoder (gopkg.in/yaml.v3), comments kept. A value whose text is not in the encoder's
form (`false`, `0`, `'6.9.0'`) is rewritten then, so a one-key change would touch unrelated lines. A stack file
in this form is one Pulumi keeps byte for byte; the tool's own edits write it too, so mixing both never
rewrites a neighbour (tests/engine/test_config_set.py checks both against the real CLI).

The encoder's rules for a string: plain when its text reads back as that string (not a null, bool, int,
float, timestamp or base-60 number, YAML 1.1's `yes`/`on`/... included) and the emitter allows a plain scalar
there; double-quoted when it would read back as another type; single-quoted when only the emitter objects
(a leading indicator such as `@` or `- `, `: ` or ` #` inside, surrounding spaces).
"""

from __future__ import annotations

import json
import re

# yaml.v3's resolve(): the texts that read as null or bool (YAML 1.1's bools are quoted too, for old readers).
_NULL_OR_BOOL = {"", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE"}
_OLD_BOOLS = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"}
_SPECIAL_FLOATS = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN"}
# Numbers as yaml.v3 reads them after dropping `_`: Go's ParseInt with base 0 (0x, 0o, 0b, a leading-0 octal),
# YAML-style floats, and 0b/0o forms with a sign.
_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|0[bB][01]+|[0-9]+)")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:[Tt ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]{1,9})?(?:Z|[-+][0-9]{1,2}(?::?[0-9]{2})?)?)?"
)
_INDICATORS = set("#,[]{}&*!|>'\"%@`")
_FLOW = set(",?[]{}")


def reads_as_other_type(text: str) -> bool:
    """Would a plain `text` read back as something other than that string (in yaml.v3, Pulumi's reader)?"""
    if text in _NULL_OR_BOOL or text in _OLD_BOOLS or text in _SPECIAL_FLOATS:
        return True
    if text[:1] == ".":  # a float like .5 (Go's ParseFloat)
        return _FLOAT.fullmatch(text) is not None
    if text[:1] not in set("0123456789+-"):
        return False  # yaml.v3 reads such a text as a string without trying numbers
    bare = text.replace("_", "")
    return bool(_TIMESTAMP.fullmatch(text) or _INT.fullmatch(bare) or _FLOAT.fullmatch(bare) or _BASE60.fullmatch(text))


def _plain_allowed(text: str) -> bool:
    """The emitter's test for a plain scalar as a block mapping's value (libyaml's analyze_scalar)."""
    if not text or text != text.strip(" ") or text.startswith(("---", "...")):
        return False
    if any(not (ch == " " or ch.isprintable()) or ch in "\t\r\n" for ch in text):
        return False
    first, second = text[0], text[1:2]
    if first in _INDICATORS or (first in "?:-" and second in ("", " ")):
        return False
    for i, ch in enumerate(text):
        after = text[i + 1 : i + 2]
        if ch == ":" and after in ("", " "):
            return False
        if ch == "#" and i > 0 and text[i - 1] == " ":
            return False
    return True


def scalar(value: str | int | bool) -> str:
    """The YAML text `pulumi config set <key> <value>` writes for a plain value (ints and bools as strings)."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if "\n" in text:
        raise ValueError("a multi-line value has no one-line form")
    if reads_as_other_type(text):
        return json.dumps(text, ensure_ascii=False)
    if _plain_allowed(text):
        return text
    if all(ch == " " or ch.isprintable() for ch in text):
        return "'" + text.replace("'", "''") + "'"
    return json.dumps(text, ensure_ascii=False)
