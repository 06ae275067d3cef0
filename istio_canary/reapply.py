"""A release commit re-made on top of a main that moved: the same one-value edits of the stack file, never a
rebase of whatever the commit holds.

Every commit the `canary` commands make changes one stack file by one or a few values (`canaryWeight: 10 ->
0`, `canaryShape: header -> ""`). When the push of such a commit is rejected because someone pushed first,
the command fetches the new main and re-makes the commit on it: it reads which values the commit changed
(from its parent's file to its own, and proves that setting exactly those values in the parent's file gives
the commit's file byte for byte), then sets the same values in the new main's file with the same editor and
validation. The new main must still hold each value as the commit found it (or already the value it sets:
nothing to re-make), and the release the commit was made for (`canaryVersion`, `gaVersion`) must not have
changed; otherwise Conflict, and nothing is pushed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from istio_canary import gitops
from istio_canary.release.settings import PROJECT, ConfigError
from istio_canary.stackfile import StackFile

# The release a commit was made for: a commit about canary 6.9.0 is not re-made where the canary runs 7.0.0.
RELEASE = ("canaryVersion", "gaVersion")
_UNSET = object()


class Conflict(Exception):
    """The new main changed what the commit changes (or the release it is about): not re-made."""


@dataclass(frozen=True)
class Edit:
    """One value a commit sets: `key` (no project prefix) from `old` to `new`."""

    key: str
    old: Any
    new: int | str


@dataclass(frozen=True)
class Remade:
    """A commit re-made on the new main (`new` None: the new main already had its values)."""

    old: str
    new: str | None
    message: str


def onto(repo: Path, tip: str, commits: list[str], stack_file: Path, *, rollback: bool) -> list[Remade]:
    """Re-make `commits` (oldest first, each a one-file edit of `stack_file`) one on another, starting on `tip`."""
    relative = str(stack_file.resolve().relative_to(repo.resolve()))
    base, remade = tip, []
    for commit_id in commits:
        edits, found = _edits(repo, commit_id, relative)
        new_text = _apply(repo, base, relative, edits, found, rollback=rollback)
        message, author, email = gitops.message_and_author(repo, commit_id)
        if new_text is None:
            remade.append(Remade(commit_id, None, message))
            continue
        base = gitops.commit_on(repo, base, relative, new_text, message, (author, email))
        remade.append(Remade(commit_id, base, message))
    return remade


def _edits(repo: Path, commit_id: str, relative: str) -> tuple[list[Edit], dict[str, Any]]:
    """The values `commit_id` changes, and all values its parent's file held; Conflict unless the commit is
    exactly those one-value edits of the one file."""
    if gitops.changed_paths(repo, commit_id) != [relative]:
        raise Conflict(f"{commit_id[:12]} changes more than {relative}; it is not re-made automatically")
    before, after = _stack(repo, f"{commit_id}^", relative), _stack(repo, commit_id, relative)
    old, new = before.values(), after.values()
    if set(old) - set(new):
        raise Conflict(f"{commit_id[:12]} removes {_key(min(set(old) - set(new)))}; not a one-value edit")
    edits = []
    for key in sorted(new):
        if key in old and _same(old[key], new[key]):
            continue
        value = new[key]
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise Conflict(f"{commit_id[:12]} sets {_key(key)} to a {type(value).__name__}; not a one-value edit")
        edits.append(Edit(key, old.get(key, _UNSET), value))
    try:
        for edit in edits:
            before.set(edit.key, edit.new)
    except ConfigError as exc:
        raise Conflict(f"{commit_id[:12]}: {exc}") from None
    if before.render() != after.render():
        raise Conflict(f"{commit_id[:12]} is not the tool's one-value edit of {relative}; not re-made automatically")
    return edits, old


def _apply(
    repo: Path, base: str, relative: str, edits: list[Edit], found: dict[str, Any], *, rollback: bool
) -> bytes | None:
    """The file at `base` with `edits` made; None when it already holds them all."""
    with tempfile.TemporaryDirectory(prefix="canary-reapply-") as scratch:
        stack = _stack(repo, base, relative, Path(scratch))
        now = stack.values()
        for key in RELEASE:
            if key not in {e.key for e in edits} and not _same(now.get(key, _UNSET), found.get(key, _UNSET)):
                raise Conflict(
                    f"origin's main changed {_key(key)} to {_shown(now.get(key, _UNSET))} "
                    f"(this commit was made for {_shown(found.get(key, _UNSET))})"
                )
        todo = []
        for edit in edits:
            value = now.get(edit.key, _UNSET)
            if _same(value, edit.new):
                continue
            if not _same(value, edit.old):
                raise Conflict(
                    f"origin's main changed {_key(edit.key)} to {_shown(value)} "
                    f"(this commit changes it from {_shown(edit.old)} to {_shown(edit.new)})"
                )
            todo.append(edit)
        if not todo:
            return None
        try:
            for edit in todo:
                stack.set(edit.key, edit.new)
            stack.save(rollback=rollback)
        except ConfigError as exc:
            raise Conflict(f"on origin's main: {exc}") from None
        return stack.path.read_bytes()


def _stack(repo: Path, rev: str, relative: str, scratch: Path | None = None) -> StackFile:
    """The stack file as it is at `rev`, beside that revision's Pulumi.yaml (its schema), in a scratch
    directory (a fresh temporary one unless given; only for reading then)."""
    content = gitops.blob(repo, rev, relative)
    if content is None:
        raise Conflict(f"{relative} does not exist at {rev[:12]}")
    with tempfile.TemporaryDirectory(prefix="canary-reapply-") as own:
        where = scratch or Path(own)
        path = where / Path(relative).name
        path.write_bytes(content)
        project = gitops.blob(repo, rev, str(Path(relative).parent / "Pulumi.yaml").removeprefix("./"))
        if project is not None:
            (where / "Pulumi.yaml").write_bytes(project)
        try:
            return StackFile(path)
        except ConfigError as exc:
            raise Conflict(f"at {rev[:12]}: {exc}") from None


def _same(a: object, b: object) -> bool:
    """Equal values, a quoted "60" and a bare 60 alike (`pulumi config set` writes the first)."""
    if a is _UNSET or b is _UNSET:
        return a is b
    return a == b or (not isinstance(a, dict | list) and not isinstance(b, dict | list) and str(a) == str(b))


def _key(key: str) -> str:
    return f"{PROJECT}:{key}"


def _shown(value: object) -> str:
    return "(unset)" if value is _UNSET else str(value)
