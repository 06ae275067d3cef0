"""The pull-request client's transport limits: one overall deadline per call, kept by a watchdog that shuts the
call's sockets down when it passes (a hang or a drip ends at the deadline, whatever the server sends), and a byte
cap on every answer's body. PullError is the client's one error type.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx


class PullError(RuntimeError):
    """The Git host refused, could not be reached in time, or answered something that is not what was asked;
    the message names no credential."""


class Operation:
    """One call's overall deadline: the sockets it opened are shut down when it passes, which wakes a read
    that is blocked (a hang) and ends one that keeps getting a byte (a drip)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.expired = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: remember each connection's socket (plain and TLS) as it is made."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sockets.append(sock)
                if self.expired.is_set():  # connected just as the deadline passed
                    self._shutdown()

    def _expire(self) -> None:
        self.expired.set()
        self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed: the call ended on its own
                sock.shutdown(socket.SHUT_RDWR)

    def end(self) -> None:
        self._timer.cancel()


class Capped(httpx.SyncByteStream):
    """A response body read within the operation's deadline and byte cap."""

    def __init__(self, inner: httpx.SyncByteStream, operation: Operation, max_bytes: int) -> None:
        self.inner, self.operation, self.max_bytes = inner, operation, max_bytes

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self.inner:
            seen += len(chunk)
            if seen > self.max_bytes:
                raise PullError(f"answer is larger than {self.max_bytes} bytes")
            if self.operation.remaining() <= 0:
                raise PullError(f"no complete answer within {self.operation.seconds:g}s")
            yield chunk
        if self.operation.expired.is_set():  # read until close, and the watchdog closed it: cut short, not whole
            raise PullError(f"no complete answer within {self.operation.seconds:g}s")

    def close(self) -> None:
        self.inner.close()
