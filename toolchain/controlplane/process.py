"""Finding, starting, watching and stopping the control plane's server processes.

A server runs in a session of its own (a Ctrl-C meant for the caller does not reach it), appends its output
to one log file, is waited for with a bounded readiness probe, and is always stopped: SIGTERM, a bounded
wait, then SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .common import TOOLCHAIN_CACHE, ControlPlaneError

# A readiness probe: (ready?, what it saw). OSError/ValueError count as "not yet".
Probe = Callable[[], tuple[bool, object]]


def find_binary(name: str) -> str:
    """$ISTIO_CANARY_<NAME>, else the newest toolchain cache build, else PATH."""
    env_name = "ISTIO_CANARY_" + name.upper().replace("-", "_")
    if os.environ.get(env_name):
        return os.environ[env_name]
    built = sorted(
        (d / name for d in TOOLCHAIN_CACHE.glob(f"{name}-v*") if not d.name.endswith(".tmp")),
        key=lambda p: p.parent.name,
    )
    built = [p for p in built if os.access(p, os.X_OK)]
    if built:
        return str(built[-1])
    found = shutil.which(name)
    if found:
        return found
    raise ControlPlaneError(f"{name} not found (${env_name}, {TOOLCHAIN_CACHE}/{name}-v*/, PATH): run make toolchain")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Logs:
    """One append-only log file per server name in a directory; kept open while the server runs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._open: dict[str, IO[bytes]] = {}

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def open(self, name: str) -> IO[bytes]:
        """The log of `name`, opened for appending (a restart keeps the earlier output)."""
        self.close(name)
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = open(self.path(name), "ab")  # noqa: SIM115 - closed by close()
        self._open[name] = handle
        return handle

    def close(self, name: str | None = None) -> None:
        """Close one log, or all of them."""
        for key in [name] if name else list(self._open):
            handle = self._open.pop(key, None)
            if handle is not None:
                handle.close()

    def tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a server's log ("" when there is none)."""
        try:
            return "\n".join(self.path(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(argv: list[str], log: IO[bytes], cwd: Path) -> subprocess.Popen:
    """Start a server in a new session, stdout and stderr to `log`, no stdin."""
    return subprocess.Popen(
        argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )


def wait_ready(name: str, proc: subprocess.Popen, probe: Probe, timeout: float, logs: Logs) -> None:
    """Poll `probe` until it says ready; raise (with the log tail) if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ControlPlaneError(f"{name} exited with {proc.returncode} while starting:\n{logs.tail(name)}")
        try:
            ok, last = probe()
            if ok:
                return
        except (OSError, ValueError) as err:
            last = err
        time.sleep(0.25)
    raise ControlPlaneError(f"{name} not ready after {timeout:.0f}s (last: {last}):\n{logs.tail(name)}")


def stop(proc: subprocess.Popen | None, timeout: float, *, kill: bool = False) -> None:
    """Stop and reap a server: SIGKILL at once if `kill`, else SIGTERM and SIGKILL after `timeout` s."""
    if proc is None:
        return
    if proc.poll() is None:
        if kill:
            proc.kill()
        else:
            proc.terminate()
            try:
                proc.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                proc.kill()
    proc.wait(timeout)
