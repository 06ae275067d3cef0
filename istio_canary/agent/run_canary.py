"""The agent's `canary` commands, run in-process as a person would run them: each call reads its --json answer
from its own thread's stdout (the judgments and follow-ups of several stacks run them at once), and an exit code
is named for the skipped-work counter."""

from __future__ import annotations

import io
import json
import sys
import threading
from typing import Any, TextIO


class _ThreadStdout(io.TextIOBase):
    """sys.stdout while the agent runs `canary` commands in-process from several threads: each call captures its
    own thread's output (contextlib.redirect_stdout swaps one global, so two threads would read each other's)."""

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self.local = threading.local()

    def _target(self) -> TextIO:
        return getattr(self.local, "buffer", None) or self.fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()


_STDOUT_LOCK = threading.Lock()


def _thread_stdout() -> _ThreadStdout:
    with _STDOUT_LOCK:
        if not isinstance(sys.stdout, _ThreadStdout):
            sys.stdout = _ThreadStdout(sys.stdout)
        return sys.stdout


def _canary(args: list[str]) -> tuple[int, dict[str, Any]]:
    """Run a `canary` command in-process; its exit code and its --json object."""
    from istio_canary.cli import main

    out, stdout = io.StringIO(), _thread_stdout()
    stdout.local.buffer = out
    try:
        code = main([*args, "--json"])
    finally:
        stdout.local.buffer = None
    try:
        data = json.loads(out.getvalue() or "{}")
    except ValueError:
        data = {}
    return code, data if isinstance(data, dict) else {}


def _exit_name(code: int) -> str:
    from istio_canary.exits import BY_CODE

    return BY_CODE[code].name if code in BY_CODE else f"exit-{code}"
