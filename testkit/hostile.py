"""A hostile HTTP server on 127.0.0.1 for deadline and size tests (and bench/bench_images.py): it speaks
keep-alive HTTP/1.1, HTTP/1.0 or HTTP/1.1 with `Connection: close`, over plain TCP or TLS, and can hang before
its headers (with TLS: before the handshake), drip its headers or body one byte at a time, send an endless
body, or answer garbage. Every wait is on the server's stop event, so leaving the `serve()` block ends every
connection within a fraction of a second.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KEEP_ALIVE, HTTP10, CLOSE = "keep-alive", "http/1.0", "close"
VARIANTS = (KEEP_ALIVE, HTTP10, CLOSE)
HANG, DRIP_HEADERS, DRIP_BODY, HUGE, GARBAGE = "hang", "drip-headers", "drip-body", "huge", "garbage"
FAULTS = (HANG, DRIP_HEADERS, DRIP_BODY, HUGE, GARBAGE)
HUGE_BYTES = 1024**3  # what a HUGE answer offers: far past any cap of the clients under test
GARBAGE_ANSWER = b"\x00\xff\xfeSSH-2.0-not-http\r\n\r\n"
_CHUNK = 65536
_MAX_HEAD = 65536


@dataclass(frozen=True)
class Reply:
    """What to answer one request: a whole `body`, or `stream` (chunks made on demand, for answers too big to
    hold) with `length` as its Content-Length (None: none is sent; keep-alive then uses chunked encoding).
    `fault` overrides the server's for this answer; `delay` seconds pass before anything is sent."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: Callable[[], Iterable[bytes]] | None = None
    length: int | None = None
    fault: str | None = None
    delay: float = 0.0


Handler = Callable[[str], Reply]  # the request's path (with its query) -> the answer


@dataclass
class Served:
    """The running server: its base URL, every request path it read, and the body bytes it managed to send."""

    url: str
    paths: list[str] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # per answer

    @property
    def bytes_sent(self) -> int:
        return sum(self.sent)


def always(reply: Reply) -> Handler:
    """A handler that gives every request the same answer."""
    return lambda _path: reply


def tls_context(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a new self-signed certificate for 127.0.0.1 and localhost, and the certificate's
    file (a client trusts it through SSL_CERT_FILE)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostile test server")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "hostile-cert.pem", directory / "hostile-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


@contextmanager
def serve(
    handler: Handler,
    variant: str = KEEP_ALIVE,
    fault: str | None = None,
    interval: float = 0.5,
    tls: ssl.SSLContext | None = None,
) -> Iterator[Served]:
    """Serve `handler` in `variant` with `fault` applied to every answer; drips send one byte per `interval`.
    With `tls` (tls_context()), the URL is https and HANG hangs before the TLS handshake."""
    if variant not in VARIANTS or (fault is not None and fault not in FAULTS):
        raise ValueError(f"unknown variant {variant!r} or fault {fault!r}")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    stop = threading.Event()
    served = Served(f"{'https' if tls else 'http'}://127.0.0.1:{listener.getsockname()[1]}")
    threads: list[threading.Thread] = []

    def connection(conn: socket.socket) -> None:
        if tls is not None:
            if fault == HANG:  # the client waits in its handshake
                stop.wait()
                conn.close()
                return
            conn.settimeout(5)
            try:
                conn = tls.wrap_socket(conn, server_side=True)
            except OSError:  # the client gave up, or refused our certificate
                conn.close()
                return
        with conn:
            conn.settimeout(0.05)
            pending = b""
            while not stop.is_set():
                request, pending = _read_request(conn, pending, stop)
                if request is None:
                    return
                served.paths.append(request)
                try:
                    done = _answer(conn, handler(request), variant, fault, interval, stop, served)
                except OSError:  # the client hung up: a deadline or a size cap did its work
                    return
                if not done or variant != KEEP_ALIVE:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:  # the accept timeout: look at `stop` again
                continue
            thread = threading.Thread(target=connection, args=(conn,), daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield served
    finally:
        stop.set()
        acceptor.join(timeout=5)
        for thread in threads:
            thread.join(timeout=5)
        listener.close()


def _read_request(conn: socket.socket, pending: bytes, stop: threading.Event) -> tuple[str | None, bytes]:
    """The next request's path (its body read and dropped), or None when the client went away or sent junk."""
    data = pending
    while b"\r\n\r\n" not in data:
        if stop.is_set() or len(data) > _MAX_HEAD:
            return None, b""
        try:
            chunk = conn.recv(_CHUNK)
        except TimeoutError:
            continue
        except OSError:
            return None, b""
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None, b""
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    while len(rest) < length:
        if stop.is_set():
            return None, b""
        try:
            chunk = conn.recv(_CHUNK)
        except TimeoutError:
            continue
        if not chunk:
            return None, b""
        rest += chunk
    return parts[1], rest[length:]


def _answer(
    conn: socket.socket,
    reply: Reply,
    variant: str,
    fault: str | None,
    interval: float,
    stop: threading.Event,
    served: Served,
) -> bool:
    """Send one answer; False when it ended the connection (a fault, or `stop`)."""
    fault = reply.fault or fault
    if reply.delay and stop.wait(reply.delay):
        return False
    if fault == HANG:
        stop.wait()
        return False
    if fault == GARBAGE:
        _send(conn, GARBAGE_ANSWER, stop)
        return False
    stream = reply.stream
    length = reply.length
    if fault == HUGE:
        stream, length = _zeros, (HUGE_BYTES if variant == KEEP_ALIVE else None)
    elif stream is None:
        length = len(reply.body)
    chunked = variant == KEEP_ALIVE and length is None
    head = _head(reply, variant, length, chunked)
    index = len(served.sent)
    served.sent.append(0)
    if fault == DRIP_HEADERS:
        if not _drip(conn, head, interval, stop):
            return False
    elif not _send(conn, head, stop):
        return False
    chunks: Iterable[bytes] = stream() if stream is not None else [reply.body]
    for chunk in chunks:
        if stop.is_set():
            return False
        if fault == DRIP_BODY:
            if not _drip(conn, chunk, interval, stop, served, index):
                return False
            continue
        if not _send(conn, b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk, stop):
            return False
        served.sent[index] += len(chunk)
    return _send(conn, b"0\r\n\r\n", stop) if chunked else True


def _head(reply: Reply, variant: str, length: int | None, chunked: bool) -> bytes:
    version = "HTTP/1.0" if variant == HTTP10 else "HTTP/1.1"
    lines = [f"{version} {reply.status} Hostile", *(f"{k}: {v}" for k, v in reply.headers.items())]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    if variant == CLOSE:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _drip(
    conn: socket.socket,
    data: bytes,
    interval: float,
    stop: threading.Event,
    served: Served | None = None,
    index: int = 0,
) -> bool:
    """Send `data` one byte per `interval`; False when stopped first."""
    for i in range(len(data)):
        if stop.wait(interval):
            return False
        if not _send(conn, data[i : i + 1], stop):
            return False
        if served is not None:
            served.sent[index] += 1
    return True


def _send(conn: socket.socket, data: bytes, stop: threading.Event) -> bool:
    """All of `data`, waiting while the client does not read; False when stopped first. OSError when the client
    hung up."""
    view = memoryview(data)
    while view:
        if stop.is_set():
            return False
        try:
            view = view[conn.send(view) :]
        except TimeoutError:
            continue
    return True


def _zeros() -> Iterator[bytes]:
    block = b"0" * _CHUNK
    for _ in range(HUGE_BYTES // _CHUNK):
        yield block


def tags_page(tags: Iterable[str]) -> bytes:
    """A tags/list answer's body."""
    return b'{"name":"acme/podinfo","tags":[' + b",".join(b'"%s"' % t.encode() for t in tags) + b"]}"


def endless_tags(total: int, tag: bytes = b"ab") -> Callable[[], Iterator[bytes]]:
    """A stream that is one tags/list answer of about `total` bytes of short, valid tags (the most Python
    objects per byte a registry can make a client build)."""

    def stream() -> Iterator[bytes]:
        yield b'{"name":"acme/podinfo","tags":["x"'
        block = b',"' + tag + b'"'
        chunk = block * (_CHUNK // len(block))
        for _ in range(max(total // len(chunk), 1)):
            yield chunk
        yield b"]}"

    return stream
