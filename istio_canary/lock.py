"""One writer per repository: the `canary` commands that edit and commit the stack file hold this lock.

Contract: `RepoLock(repo)` takes an exclusive, non-blocking `flock` on `<git dir>/istio-canary.lock` and
writes its pid there; a second taker gets LockError naming that pid. The kernel drops the lock when the
process ends however it ends (SIGKILL included), so a crash never leaves a stale lock; the file itself stays.
The whole repository is locked, not one stack file: two stacks committing at once would race on git's index.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Self

LOCK_NAME = "istio-canary.lock"


class LockError(RuntimeError):
    """Another process holds the lock."""


class RepoLock:
    """Held from construction until close() (or the end of the process)."""

    def __init__(self, git_dir: Path) -> None:
        self.path = git_dir / LOCK_NAME
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            self.close()
            raise LockError(
                f"another canary command is running (pid {holder}) in this repository; try again when it ends"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def close(self) -> None:
        """Release the lock (closing the descriptor drops the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
