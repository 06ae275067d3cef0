"""Read and edit a `Pulumi.<stack>.yaml` so that one traffic step changes exactly one line.

Contract of the editor: `set()` rewrites only the characters of one scalar value (or appends one line for a
key the file lacks); every other byte (comments, order, quoting, a BOM, CRLF line endings, `---`/`...`
markers) stays as it was. After each edit the text is parsed again, and the edit is refused unless the
result equals the old document with exactly that one value changed. A file the editor cannot handle that
way (a multi-line value, a flow-style `config`, a stray CR) is refused with ConfigError and nothing is
written. `save()` writes through a temporary file and a rename, so a crash leaves the old file or the new
one, never half of one; it refuses a symlink, which would send the edit outside the repository.

Validation is the Pulumi program's own (stacks.settings.parse), so a file the tool writes is one the
preview accepts. Only `rollback_view()` is lenient: a rollback needs just the weight.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import YAMLError

from components.names import workload
from stacks.settings import PROJECT, AppSettings, ConfigError, ReleaseSettings, parse, parse_weight, schema

# What `canary rollback` validates: the app's identity, versions, weight and every `analysis*` key (the checks
# and their thresholds). A typo elsewhere in the stack (an unknown key, a bad gcp:project) must not block an
# emergency rollback.
RELEASE_KEYS = (
    "namespace",
    "appName",
    "image",
    "gaVersion",
    "canaryVersion",
    "canaryWeight",
    "canarySteps",
    "canaryTagPolicy",
    "prometheusUrl",
)


def is_release_key(key: str, known: Iterable[str]) -> bool:
    """Does `canary rollback` validate this key? (`known`: the schema's keys; a misspelled one is not.)"""
    return key in RELEASE_KEYS or (key.startswith("analysis") and key in known)


BOM = "\ufeff"
# Line breaks YAML or Python count that a line-by-line edit would not: refused rather than guessed at.
_ODD_BREAKS = re.compile(r"\r(?!\n)|[\x85\u2028\u2029\x0b\x0c\x1c-\x1e]")
_PLAIN_SAFE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]*")


@dataclass(frozen=True)
class ReleaseView:
    """The validated release-relevant part of a stack: app identity/versions/weight and the release rules."""

    app: AppSettings
    release: ReleaseSettings

    @property
    def ga_workload(self) -> str:
        """Name of the GA Deployment (the Istio `destination_workload` label)."""
        return workload(self.app.name, "ga")

    @property
    def canary_workload(self) -> str:
        """Name of the canary Deployment."""
        return workload(self.app.name, "canary")


def _plain(node: Any) -> Any:
    """A ruamel tree as plain Python values (for comparing two parses)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
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


def _load(text: str, name: str) -> CommentedMap:
    yaml = YAML()  # round-trip mode: keeps the positions of keys and values
    yaml.Constructor = _Constructor
    try:
        doc = yaml.load(text)
    except YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {str(exc)[:300]}") from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise ConfigError(f"{name}: expected a mapping with a `config:` key")
    config = doc.get("config")
    if config is not None and not isinstance(config, CommentedMap):
        raise ConfigError(f"{name}: `config:` must be a mapping")
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


class StackFile:
    """One stack file, loaded for validation and one-value edits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The schema is the repository's own Pulumi.yaml (beside the stack file, as Pulumi keeps them).
        self.project_file = path.parent / "Pulumi.yaml"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"{path}: stack file not found (is --stack right? is -C the repository?)") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path.name}: not UTF-8 (byte {exc.start}); Pulumi writes stack files as UTF-8"
            ) from None
        self.bom = BOM if text.startswith(BOM) else ""
        self.text = text[len(self.bom) :]
        if _ODD_BREAKS.search(self.text):
            raise ConfigError(f"{path.name}: has a line break other than LF or CRLF; refusing to read it")
        self.original = self.text
        self._replaced_text: str | None = None
        self.doc = _load(self.text, path.name)

    @classmethod
    def for_stack(cls, repo: Path, stack: str) -> StackFile:
        """The file `Pulumi.<stack>.yaml` in the repository root."""
        return cls(repo / f"Pulumi.{stack}.yaml")

    @property
    def config(self) -> CommentedMap:
        """The `config:` mapping (keys with project prefix); empty when the file has none."""
        config = self.doc.get("config")
        return config if config is not None else CommentedMap()

    def values(self) -> dict[str, Any]:
        """Project values without the `istio-canary:` prefix, secrets ({secure: ...}) included as they are."""
        prefix = f"{PROJECT}:"
        return {
            key[len(prefix) :]: _plain(value)
            for key, value in self.config.items()
            if isinstance(key, str) and key.startswith(prefix)
        }

    def provider_values(self, provider: str) -> dict[str, Any]:
        """The `<provider>:` keys (e.g. gcp:project), prefix removed."""
        prefix = f"{provider}:"
        return {k[len(prefix) :]: v for k, v in self.config.items() if isinstance(k, str) and k.startswith(prefix)}

    def raw(self, key: str) -> Any:
        """The raw value of a project key (no prefix), or None when unset."""
        return self.config.get(f"{PROJECT}:{key}")

    def view(self) -> ReleaseView:
        """Validate the whole file with the program's own rules (less where it runs) and return the release view."""
        try:
            settings = parse(
                self.values(), self.provider_values("gcp"), check_environment=False, project_file=self.project_file
            )
        except ConfigError as exc:
            raise ConfigError(f"{self.path.name}: {exc}") from None
        return ReleaseView(app=settings.app, release=settings.release)

    def rollback_view(self) -> tuple[ReleaseView, Any]:
        """The view for `canary rollback`: only RELEASE_KEYS are validated, and a bad weight is tolerated.

        Returns (view, None), or (view at weight 0, the invalid raw weight) when the weight is the only bad
        release value: setting it to 0 is always safe, so a hand-edited 150 must not block it. A secret
        weight is not "invalid" but unreadable: it is refused, since 0 would be a guess about its value.
        """
        known = schema(self.project_file)
        values = {key: value for key, value in self.values().items() if is_release_key(key, known)}
        weight = values.get("canaryWeight")
        bad_weight = None
        if not isinstance(weight, dict | list):
            try:
                parse_weight(weight if weight is not None else 0)
            except ConfigError:
                bad_weight, values["canaryWeight"] = weight, 0
        try:
            settings = parse(values, {}, check_environment=False, project_file=self.project_file)
        except ConfigError as exc:
            raise ConfigError(f"{self.path.name}: {exc}") from None
        return ReleaseView(app=settings.app, release=settings.release), bad_weight

    # --- editing ------------------------------------------------------------------------------------

    def set(self, key: str, value: int | str) -> None:
        """Set a project key like `pulumi config set` (ints bare, a string keeps the key's quoting style).

        Raises ConfigError, changing nothing, when the edit cannot be made as one value on one line.
        """
        self.check_writable()
        full = f"{PROJECT}:{key}"
        config = self.doc.get("config")
        if isinstance(config, CommentedMap) and full in config:
            text = self._replaced(config, full, value)
        else:
            text = self._appended(full, value)
        doc = _load(text, self.path.name)
        expected = _plain(self.doc)
        expected.setdefault("config", {})
        expected["config"] = {**(expected["config"] or {}), full: value}
        if _plain(doc) != expected:
            raise ConfigError(f"{self.path.name}: cannot change {full} without touching other values; edit it by hand")
        self.text, self.doc = text, doc

    def _render(self, value: int | str, style: str) -> str:
        if isinstance(value, int):
            return str(value)
        if style == "'":
            return "'" + value.replace("'", "''") + "'"
        if style == '"' or not _PLAIN_SAFE.fullmatch(value):
            return json.dumps(value)
        return value

    def _replaced(self, config: CommentedMap, full: str, value: int | str) -> str:
        line_no, col = config.lc.value(full)
        lines = self.text.split("\n")
        line = lines[line_no]
        end = _scalar_end(line.rstrip("\r"), col)
        if end is None or isinstance(config[full], CommentedMap | CommentedSeq):
            raise ConfigError(f"{self.path.name}: {full} is not a one-line value; edit it by hand")
        style = line[col] if line[col] in "'\"" else ""
        rendered = self._render(value, style)
        if style == "" and isinstance(value, str) and not isinstance(config[full], str):
            rendered = json.dumps(value)  # `gaVersion: 1.0` was a float: the new text must be a string
        lines[line_no] = line[:col] + rendered + line[end:]
        return "\n".join(lines)

    def _appended(self, full: str, value: int | str) -> str:
        """The text with `  <full>: <value>` after the last line of the config block (added if missing)."""
        newline = "\r\n" if "\r\n" in self.text else "\n"
        lines = self.text.split("\n")
        config = self.doc.get("config")
        entry = f"{full}: {self._render(value, '')}"
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
        if "config" in self.doc:
            line_no = self.doc.lc.key("config")[0]
            if lines[line_no].rstrip("\r").rstrip() != "config:":
                raise ConfigError(f"{self.path.name}: `config:` is written inline; edit it by hand")
            eol = "\r" if lines[line_no].endswith("\r") else ""
            lines.insert(line_no + 1, "  " + entry + eol)
            return "\n".join(lines)
        body = self.text if not self.text or self.text.endswith("\n") else self.text + newline
        return f"{body}config:{newline}  {entry}{newline}"

    def render(self) -> str:
        """The file text as it would be written now (BOM included)."""
        return self.bom + self.text

    def check_writable(self) -> None:
        """Refuse a stack file the tool must not write: a symlink (the edit would land outside the
        repository, or turn a link git tracks into a file) or one with line breaks the editor cannot keep."""
        if self.path.is_symlink():
            raise ConfigError(f"{self.path.name} is a symbolic link; refusing to write through it")
        if _ODD_BREAKS.search(self.text):
            raise ConfigError(f"{self.path.name}: has a line break other than LF or CRLF; refusing to edit it")

    def undo_save(self) -> bool:
        """Put back the text the last save() replaced, but only while the file still holds what that save
        wrote: a newer edit (another process, a person) is never overwritten. True if restored."""
        if self._replaced_text is None or read_text(self.path) != self.render():
            return False
        write_atomically(self.path, self._replaced_text)
        self.text = self.original = self._replaced_text[len(self.bom) :]
        self.doc = _load(self.text, self.path.name)
        self._replaced_text = None
        return True

    def save(self, *, rollback: bool = False) -> bool:
        """Validate (as `rollback_view` does when `rollback`), then write atomically; return False (and write
        nothing) when nothing changed."""
        self.check_writable()
        # Never write a file the tool (or, outside a rollback, the preview) could not read back.
        self.rollback_view() if rollback else self.view()
        if self.text == self.original:
            return False
        write_atomically(self.path, self.render())
        self._replaced_text = self.bom + self.original
        self.original = self.text
        return True


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
