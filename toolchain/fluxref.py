"""The Flux reference: toolchain/fluxpolicy (Go, Flux's own semver libraries) built once and asked over a pipe.

`build()` compiles toolchain/fluxpolicy into the toolchain cache, one directory per hash of what determines the
binary (Go version, go.mod, go.sum, main.go): `<cache>/fluxpolicy-<hash>/fluxpolicy`. A warm cache reuses it in
milliseconds; a cold one takes a few seconds with the modules in the module cache (offline), or downloads the two
modules through GOPROXY first. The build goes to a temporary directory renamed into place when complete, under a
lock, so two sessions never see half a binary.

`FluxReference` is one long-lived process answering JSON lines (the protocol is in main.go): `ask(request)`
returns the answer or raises FluxReferenceError after `timeout` seconds. The tests and bench/bench_flux_agreement.py
share it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from toolchain.controlplane.common import TOOLCHAIN_CACHE

SOURCE = Path(__file__).resolve().parent / "fluxpolicy"
BUILD_TIMEOUT_S = 600  # a cold module download and compile on the shared 2-core machine takes ~10 s
FILES = ("go.mod", "go.sum", "main.go")


class FluxReferenceError(RuntimeError):
    """The reference cannot be built, did not answer in time, or died; the message says which, with Go's output."""


def go_binary() -> str | None:
    """`go` on PATH, or None."""
    return shutil.which("go")


def _stamp(go: str, env: dict[str, str]) -> str:
    version = subprocess.run(
        [go, "env", "GOVERSION", "GOOS", "GOARCH"], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    digest = hashlib.sha256(version.encode())
    for name in FILES:
        digest.update(name.encode() + b"\0" + (SOURCE / name).read_bytes())
    return digest.hexdigest()[:16]


def build(cache: Path | None = None) -> Path:
    """The reference binary, built if the cache lacks this exact one; FluxReferenceError when Go is missing or fails."""
    go = go_binary()
    if go is None:
        raise FluxReferenceError("go not found on PATH: the Flux reference (toolchain/fluxpolicy) needs Go >= 1.26")
    env = {
        **os.environ,
        # The same settings as toolchain/build.sh: the module's own Go, no cgo, go.sum as committed.
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
        "GOFLAGS": "-trimpath -buildvcs=false -mod=readonly",
    }
    root = cache or TOOLCHAIN_CACHE
    root.mkdir(parents=True, exist_ok=True)
    try:
        stamp = _stamp(go, env)
    except (OSError, subprocess.SubprocessError) as exc:
        raise FluxReferenceError(f"`go env` failed: {exc}") from None
    out = root / f"fluxpolicy-{stamp}"
    binary = out / "fluxpolicy"
    if binary.is_file():
        return binary
    with (root / ".fluxpolicy.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session building the same binary: wait, then reuse it
        if binary.is_file():
            return binary
        tmp = root / f"fluxpolicy-{stamp}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            done = subprocess.run(
                [go, "build", "-o", str(tmp / "fluxpolicy"), "."],
                cwd=SOURCE,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FluxReferenceError(f"go build of toolchain/fluxpolicy took over {BUILD_TIMEOUT_S} s") from None
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FluxReferenceError(f"go build of toolchain/fluxpolicy failed:\n{done.stderr[-4000:]}")
        tmp.rename(out)
    return binary


class FluxReference:
    """One reference process; `ask` is one request and its answer. Use as a context manager (it stops the process)."""

    def __init__(self, binary: Path, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._proc = subprocess.Popen(
            [str(binary)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self._pending = b""

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request, wait at most `timeout` seconds for its line."""
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
        except OSError as exc:
            raise FluxReferenceError(f"the reference died ({exc}): {self._stderr()}") from None
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FluxReferenceError(f"no answer within {self.timeout} s to {request!r}")
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    raise FluxReferenceError(f"the reference ended (exit {proc.poll()}): {self._stderr()}")
                self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _stderr(self) -> str:
        proc = self._proc
        if proc.poll() is None or proc.stderr is None:
            return ""
        return proc.stderr.read().decode(errors="replace")[-2000:]

    def close(self) -> None:
        """Close stdin (the process ends at EOF); kill it if it has not ended within 5 s."""
        proc = self._proc
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
