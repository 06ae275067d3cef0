"""One operation's overall deadline, for every request the operation makes (redirects, the pages of a listing,
a token fetch), and the HTTP client's one error type.

Why a watchdog and not socket timeouts: a socket timeout restarts with every byte, so a server that drips one
byte a second never trips it. When the deadline passes, a timer thread shuts down every socket the operation
has open, which wakes whatever read or write waits on it. It shuts down its own duplicate of each socket
(`watching`): http.client lets go of its reference when the server says it will close the connection
(HTTP/1.0, `Connection: close`) while the body is still being read from it, so cutting the connection's own
socket attribute stopped holding for exactly those servers. Name lookups and connects are bounded too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self

DEADLINE = "deadline"  # HttpError.kind: the deadline passed
TOO_BIG = "too-big"  # HttpError.kind: the answer was larger than the cap


class HttpError(RuntimeError):
    """The request failed: unreachable, too slow, too big, redirected elsewhere, or not HTTP. `kind` is DEADLINE,
    TOO_BIG or empty, for callers that word an operation's own message (a whole listing's deadline)."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class Deadline:
    """`seconds` from now, for one operation. Use it as a context manager: leaving it stops the watchdog."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self._cut = threading.Event()
        self._lock = threading.Lock()
        self._watched: set[socket.socket] = set()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop the watchdog (a finished operation leaves no thread behind)."""
        self._timer.cancel()

    @property
    def cut(self) -> bool:
        """The deadline passed and the watchdog shut the operation's sockets down."""
        return self._cut.is_set()

    @property
    def expired(self) -> bool:
        return self.cut or time.monotonic() >= self.end

    def left(self, shown: str) -> float:
        """Seconds left; HttpError (DEADLINE) when none are."""
        left = self.end - time.monotonic()
        if left <= 0 or self.cut:
            raise self.error(shown)
        return left

    def error(self, shown: str) -> HttpError:
        return HttpError(f"{shown} did not answer within {self.seconds:g}s", DEADLINE)

    def _expire(self) -> None:
        self._cut.set()
        with self._lock:
            watched = list(self._watched)
        for sock in watched:
            _shut(sock)

    @contextlib.contextmanager
    def watching(self, sock: socket.socket) -> Iterator[None]:
        """While the block runs, the deadline shuts `sock` down, whoever holds it by then (a duplicate is kept:
        shutting a duplicate down ends the connection itself, and wakes every read or write on it)."""
        twin = sock.dup()
        with self._lock:
            self._watched.add(twin)
        try:
            if self.cut:  # passed between the duplicate and its registration
                _shut(twin)
            yield
        finally:
            with self._lock:
                self._watched.discard(twin)
            twin.close()

    def connect(self, host: str, port: int, shown: str) -> socket.socket:
        """A TCP connection to host:port, looked up and connected within the time left."""
        error: OSError | None = None
        for family, kind, proto, address in self._addresses(host, port, shown):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.left(shown))  # a connect waits once: this bounds it
                sock.connect(address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
            except HttpError:
                sock.close()
                raise
        assert error is not None
        raise error

    def _addresses(self, host: str, port: int, shown: str) -> list[tuple[socket.AddressFamily, int, int, tuple]]:
        """Where host:port is. An IP address needs no lookup; a name is looked up in a daemon thread so that a
        resolver that does not answer costs the deadline, not the resolver's own retries (the thread ends when
        the resolver gives up; nothing waits for it)."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 0, (host, port))]
        found: list[object] = []

        def look_up() -> None:
            try:
                found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            except OSError as exc:
                found.append(exc)

        thread = threading.Thread(target=look_up, daemon=True, name="canary-dns")
        thread.start()
        thread.join(self.left(shown))
        if not found:
            raise self.error(shown)
        if isinstance(found[0], OSError):
            raise found[0]
        infos = found[0]
        assert isinstance(infos, list)
        return [(family, kind, proto, address) for family, kind, proto, _, address in infos]


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed, or never connected
        sock.shutdown(socket.SHUT_RDWR)
