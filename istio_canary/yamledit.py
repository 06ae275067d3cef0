"""Byte-exact edits of one YAML value: the text editor under istio_canary/stackfile.py.

Contract: `with_value(text, doc, key, value)` returns new text in which only the characters of the value
of `config.<key>` changed (or one line was added for a key the file lacks), and its parse; every other byte
(comments, order, other values' quoting, CRLF, `---`/`...`) stays. The new value is written as Pulumi's own
`config set` writes it (istio_canary/pulumiform.py: every value a string, `"60"`), so a later `pulumi config set`
of another key leaves the line alone. The result is parsed again and refused with EditError unless it equals
the old document with exactly that one value changed (to the value's text). `write_atomically` replaces a file
through a temporary file and a rename. One error type: EditError.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import YAMLError

from istio_canary import pulumiform, safeload

BOM = "\ufeff"
# Line breaks YAML or Python count that a line-by-line edit would not: refused rather than guessed at.
ODD_BREAKS = re.compile(r"\r(?!\n)|[\x85\u2028\u2029\x0b\x0c\x1c-\x1e]")


class EditError(ValueError):
    """The text is not a stack file the editor can change one value of."""


def plain(node: Any) -> Any:
    """A ruamel tree as plain Python values (for comparing two parses)."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node if node is None or isinstance(node, bool | int | float) else str(node)


# The one way to write a whole number that every YAML reader takes the same: decimal digits, no leading zero.
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)")


class _Constructor(RoundTripConstructor):
    """Round-trip loading, but an integer not written in plain decimal digits stays its text. `0x3C`, `0o74`,
    `074`, `+60`, `6_0` and `1:00` are all 60 to some YAML reader and a string or another number to another
    (ruamel reads YAML 1.2, Pulumi's Go reader 1.1's octals and base 60): the validator names such a value
    instead of the tool stepping from a number Pulumi would not see. An integer Python refuses to convert
    (over 4300 digits) stays its text too, and `rollback` can still repair it."""

    def construct_yaml_int(self, node: Any) -> Any:
        if not _DECIMAL.fullmatch(str(node.value)):
            return str(node.value)
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return str(node.value)


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)


def load(text: str) -> CommentedMap:
    """Parse a stack file's text (round trip: positions of keys and values kept); EditError if it is not one, or
    if it is over a limit of istio_canary/safeload.py (size, nesting, alias expansion): anyone can write such a file."""
    try:
        doc = safeload.round_trip(text, _Constructor)
    except safeload.LimitError as exc:
        raise EditError(str(exc)) from None
    except YAMLError as exc:
        raise EditError(f"not valid YAML: {str(exc)[:300]}") from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise EditError("expected a mapping with a `config:` key")
    config = doc.get("config")
    if config is not None and not isinstance(config, CommentedMap):
        raise EditError("`config:` must be a mapping")
    return doc


def _scalar_end(line: str, col: int) -> int | None:
    """End column of the one-line scalar starting at `col`, or None when it does not end on this line."""
    if col >= len(line):
        return None
    quote = line[col]
    if quote == '"':
        i = col + 1
        while i < len(line):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] == '"':
                return i + 1
            i += 1
        return None
    if quote == "'":
        i = col + 1
        while i < len(line):
            if line[i] == "'":
                if line[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                return i + 1
            i += 1
        return None
    if quote in "|>&!*[{":  # block scalar, anchor, tag, alias, flow collection: not a value to rewrite
        return None
    comment = re.search(r"\s#", line[col:])
    end = col + (comment.start() if comment else len(line) - col)
    return len(line[:end].rstrip())


def _replaced(text: str, config: CommentedMap, full: str, value: str) -> str:
    line_no, col = config.lc.value(full)
    lines = text.split("\n")
    line = lines[line_no]
    end = _scalar_end(line.rstrip("\r"), col)
    if end is None or isinstance(config[full], CommentedMap | CommentedSeq):
        raise EditError(f"{full} is not a one-line value; edit it by hand")
    lines[line_no] = line[:col] + pulumiform.scalar(value) + line[end:]
    return "\n".join(lines)


def _appended(text: str, doc: CommentedMap, full: str, value: str) -> str:
    """The text with `  <full>: <value>` after the last line of the config block (added if missing)."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split("\n")
    config = doc.get("config")
    entry = f"{full}: {pulumiform.scalar(value)}"
    if isinstance(config, CommentedMap) and config:
        last_key = list(config)[-1]
        indent = config.lc.key(last_key)[1]
        at = config.lc.key(last_key)[0] + 1
        while at < len(lines) and lines[at].strip() and not lines[at].lstrip().startswith("#"):
            if len(lines[at]) - len(lines[at].lstrip(" ")) <= indent and not lines[at].lstrip().startswith("-"):
                break
            at += 1
        eol = "\r" if newline == "\r\n" else ""
        if at == len(lines) and eol and not lines[at - 1].endswith("\r"):
            lines[at - 1] += eol  # after a last line with no line break: give it the file's own (CRLF)
            eol = ""  # and the new last line none, as before
        elif at == len(lines):
            eol = ""
        lines.insert(at, " " * indent + entry + eol)
        return "\n".join(lines)
    if "config" in doc:
        line_no = doc.lc.key("config")[0]
        if lines[line_no].rstrip("\r").rstrip() != "config:":
            raise EditError("`config:` is written inline; edit it by hand")
        eol = "\r" if lines[line_no].endswith("\r") else ""
        lines.insert(line_no + 1, "  " + entry + eol)
        return "\n".join(lines)
    body = text if not text or text.endswith("\n") else text + newline
    return f"{body}config:{newline}  {entry}{newline}"


def with_value(text: str, doc: CommentedMap, full: str, value: int | str) -> tuple[str, CommentedMap]:
    """`text` with `config.<full>` set to `value` (as Pulumi writes it: a string), and its parse; EditError
    (nothing changed) otherwise."""
    value = str(value)
    if "\n" in value or "\r" in value:
        raise EditError(f"{full}: a value with a line break cannot be one line; edit it by hand")
    config = doc.get("config")
    if isinstance(config, CommentedMap) and full in config:
        new_text = _replaced(text, config, full, value)
    else:
        new_text = _appended(text, doc, full, value)
    new_doc = load(new_text)
    expected = plain(doc)
    expected.setdefault("config", {})
    expected["config"] = {**(expected["config"] or {}), full: value}
    if plain(new_doc) != expected:
        raise EditError(f"cannot change {full} without touching other values; edit it by hand")
    return new_text, new_doc


def read_text(path: Path) -> str | None:
    """A file's text as written (BOM and CRLF kept), or None when it cannot be read as UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` through a temporary file in the same directory and a rename."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def off_pulumi_form(text: str, doc: CommentedMap) -> list[tuple[str, str, str]]:
    """Every one-line value under `config:` not written as `pulumi config set` writes it: (key, the text in the
    file, Pulumi's text). Pulumi's next `config set`, of any key, rewrites each of these lines too. Secrets and
    lists are Pulumi's own structures and are not judged here."""
    config = doc.get("config")
    if not isinstance(config, CommentedMap):
        return []
    lines = text.split("\n")
    found = []
    for key, value in config.items():
        if isinstance(value, CommentedMap | CommentedSeq):
            continue
        line_no, col = config.lc.value(key)
        line = lines[line_no].rstrip("\r")
        end = _scalar_end(line, col)
        if end is None:
            continue
        written = line[col:end]
        if isinstance(value, bool):
            value = "true" if value else "false"
        expected = pulumiform.scalar("" if value is None else str(value))
        if written != expected:
            found.append((str(key), written, expected))
    return found
