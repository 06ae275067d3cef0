"""The stack an action works on: the repository, the stack file, its validated release view, and the repository
lock when the action writes; with the commits the action made."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from istio_canary import gitops
from istio_canary.actions.errors import Refused
from istio_canary.lock import LockError, RepoLock
from istio_canary.stackfile import StackFile, StackView


@dataclass(frozen=True)
class Recorded:
    """The commits an action made (after a push, the ones pushed), and the last one's subject and message (a PR's
    title and body, so a workflow need not read them back from git)."""

    commits: tuple[str, ...] = ()
    subject: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"commits": list(self.commits), "subject": self.subject, "message": self.message}


@dataclass
class Context:
    """The repository, the stack file, its validated release view, and the repository lock when writing.

    A context manager: leaving it releases the lock, so one process can run several commands (the tests do).
    """

    repo: Path
    stack_name: str
    stack: StackFile
    view: StackView
    invalid_weight: object = None  # rollback only: the unreadable weight that is being repaired
    for_rollback: bool = False  # validate as a rollback does: only the release keys, any weight
    lock: RepoLock | None = None
    commits: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # each commit's full message, for --json

    def recorded(self) -> Recorded:
        """The commits this run made: ids, and the last one's subject and message."""
        last = self.messages[-1] if self.messages else None
        return Recorded(tuple(self.commits), last.splitlines()[0] if last else None, last)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lock:
            self.lock.close()


def repository(directory: Path) -> Path:
    """The work tree holding `directory` (-C) (the directory itself when it is in none: reading needs no git)."""
    start = directory.resolve()
    try:
        return gitops.toplevel(start)
    except gitops.GitError:
        return start


def load(directory: Path, stack_name: str, *, write: bool, for_rollback: bool = False) -> Context:
    """Find the repository; for a command that writes, take the lock before anything is read, so the
    clean-tree check and the file a step is computed from are the ones it commits over."""
    start = directory.resolve()
    try:
        repo = gitops.toplevel(start)
    except gitops.GitError:
        if write:
            raise Refused(f"{start} is not inside a git work tree") from None
        repo = start
    lock = None
    if write:
        try:
            lock = RepoLock(gitops.git_dir(repo))
        except LockError as exc:
            raise Refused(str(exc)) from None
    try:
        if write:
            gitops.require_clean(repo)
        stack = StackFile.for_stack(repo, stack_name)
        invalid = None
        if for_rollback:
            view, invalid = stack.rollback_view()
        else:
            view = stack.view()
        if write:
            stack.check_writable()
    except BaseException:
        if lock:
            lock.close()
        raise
    return Context(repo, stack_name, stack, view, invalid, for_rollback, lock)
