"""Byte-exact edits of one YAML value: the text editor under rollout/stackfile.py, with no notion of Pulumi.

Contract: `with_value(text, doc, key, value)` returns new text in which only the characters of the value
of `config.<key>` changed (or one line was added for a key the file lacks), and its parse; every other byte
(comments, order, quoting, CRLF, `---`/`...`) stays. The result is parsed again and refused with EditError
unless it equals the old document with exactly that one value changed. `write_atomically` replaces a file
through a temporary file and a rename. One error type: EditError.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import YAMLError

from rollout import safeload

BOM = "\ufeff"
# Line breaks YAML or Python count that a line-by-line edit would not: refused rather than guessed at.
ODD_BREAKS = re.compile(r"\r(?!\n)|[\x85\u2028\u2029\x0b\x0c\x1c-\x1e]")
_PLAIN_SAFE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]*")


class EditError(ValueError):
    """The text is not a stack file the editor can change one value of."""


def plain(node: Any) -> Any:
    """A ruamel tree as plain Python values (for comparing two parses)."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node if node is None or isinstance(node, bool | int | float) else str(node)


class _Constructor(RoundTripConstructor):
    """Round-trip loading, but an integer Python refuses to convert (over 4300 digits) stays its text: the
    validator then names it as a bad value, and `rollback` can still repair it."""

    def construct_yaml_int(self, node: Any) -> Any:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return str(node.value)


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)


def load(text: str) -> CommentedMap:
    """Parse a stack file's text (round trip: positions of keys and values kept); EditError if it is not one, or
    if it is over a limit of rollout/safeload.py (size, nesting, alias expansion): anyone can write such a file."""
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


def render_scalar(value: int | str, style: str) -> str:
    """A value as YAML text: ints bare; a string in the quoting style `style` (' or \" or plain when safe)."""
    if isinstance(value, int):
        return str(value)
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"' or not _PLAIN_SAFE.fullmatch(value):
        return json.dumps(value)
    return value


def _replaced(text: str, config: CommentedMap, full: str, value: int | str) -> str:
    line_no, col = config.lc.value(full)
    lines = text.split("\n")
    line = lines[line_no]
    end = _scalar_end(line.rstrip("\r"), col)
    if end is None or isinstance(config[full], CommentedMap | CommentedSeq):
        raise EditError(f"{full} is not a one-line value; edit it by hand")
    style = line[col] if line[col] in "'\"" else ""
    rendered = render_scalar(value, style)
    if style == "" and isinstance(value, str) and not isinstance(config[full], str):
        rendered = json.dumps(value)  # `gaVersion: 1.0` was a float: the new text must be a string
    lines[line_no] = line[:col] + rendered + line[end:]
    return "\n".join(lines)


def _appended(text: str, doc: CommentedMap, full: str, value: int | str) -> str:
    """The text with `  <full>: <value>` after the last line of the config block (added if missing)."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split("\n")
    config = doc.get("config")
    entry = f"{full}: {render_scalar(value, '')}"
    if isinstance(config, CommentedMap) and config:
        last_key = list(config)[-1]
        indent = config.lc.key(last_key)[1]
        at = config.lc.key(last_key)[0] + 1
        while at < len(lines) and lines[at].strip() and not lines[at].lstrip().startswith("#"):
            if len(lines[at]) - len(lines[at].lstrip(" ")) <= indent and not lines[at].lstrip().startswith("-"):
                break
            at += 1
        eol = "\r" if lines[at - 1].endswith("\r") else ""
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
    """`text` with `config.<full>` set to `value`, and its parse; EditError (nothing changed) otherwise."""
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
