"""The one HTTP client of the release tool: an overall deadline, a size cap, no cross-host redirects, no
credentials in anything it prints.

Prometheus, the registry, acceptance checks and Slack all go through `request()`. Contract:
- the whole exchange (name lookup, connect, TLS, headers, body, every redirect) ends by `timeout` seconds,
  however slowly a server drips bytes and whether or not it keeps the connection open; an operation of
  several requests (a paged listing) shares one `Deadline` instead (see istio_canary/deadline.py);
- at most `max_bytes` of body are read; more is an error, never a truncated answer read as a whole one;
- redirects are followed only to the same scheme://host:port and only for GET (a POST turned into a GET
  would be reported as sent); anything else is an error;
- user:password@ in a URL becomes an Authorization: Basic header and is stripped from the URL;
- every failure is one `HttpError` whose message names the URL as `redact(url)`: scheme://host[:port].
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import re
import socket
import ssl
import urllib.parse
from dataclasses import dataclass

from istio_canary.deadline import DEADLINE, TOO_BIG, Deadline, HttpError

__all__ = [  # DEADLINE, TOO_BIG, Deadline and HttpError live in istio_canary/deadline.py; callers use them from here
    "DEADLINE",
    "TOO_BIG",
    "Deadline",
    "HttpError",
    "Response",
    "Target",
    "basic_auth",
    "is_loopback",
    "parse_url",
    "redact",
    "request",
    "scrub",
]

MAX_REDIRECTS = 3
_CHUNK = 65536


@dataclass(frozen=True)
class Response:
    """Status, headers (lower-case names) and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes


def redact(url: str) -> str:
    """`scheme://host[:port]` of a URL: what may be shown anywhere (paths and user info can hold tokens)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<malformed URL>"
    if not parts.scheme or not host:
        return "<malformed URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def scrub(text: str) -> str:
    """`text` with the user info of every URL in it replaced by `***@` (for tool output we did not write,
    such as git's stderr naming a remote like https://x-access-token:TOKEN@github.com/...)."""
    return _USERINFO.sub("***@", text)


def is_loopback(host: str) -> bool:
    """localhost or a loopback address: plain http there cannot be read by anyone else."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Target:
    """A checked URL split into what the connection needs; credentials kept apart from the URL."""

    scheme: str
    host: str
    port: int
    path: str  # path + query, never empty
    username: str | None
    password: str | None

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def parse_url(url: str) -> Target:
    """Split and check an http(s) URL with a host and a valid port; raise HttpError (without the URL's secrets)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise HttpError(f"{redact(url)}: malformed URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"{redact(url)}: not an http(s) URL with a host")
    if not url.isascii() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise HttpError(f"{redact(url)}: the URL has spaces, control or non-ASCII characters")
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (443 if parts.scheme == "https" else 80),
        path=path,
        username=urllib.parse.unquote(parts.username) if parts.username is not None else None,
        password=urllib.parse.unquote(parts.password) if parts.password is not None else None,
    )


def basic_auth(username: str, password: str | None) -> str:
    """The Authorization header value for user info taken from a URL."""
    return "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()


def request(
    url: str,
    *,
    max_bytes: int,
    timeout: float | None = None,
    deadline: Deadline | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
) -> Response:
    """One HTTP exchange under the contract in the module docstring; any status is returned, not raised.

    `timeout` starts a deadline for this request alone; `deadline` is an operation's, shared with its other
    requests (exactly one of the two)."""
    if (timeout is None) == (deadline is None):
        raise ValueError("request() takes a timeout or a deadline")
    if deadline is None:
        assert timeout is not None
        with Deadline(timeout) as own:
            return request(url, max_bytes=max_bytes, deadline=own, method=method, headers=headers, data=data)
    target = parse_url(url)
    first = target
    for _ in range(MAX_REDIRECTS + 1):
        response = _exchange(target, method, headers or {}, data, deadline, max_bytes, redact(url))
        if response.status not in (301, 302, 303, 307, 308):
            return response
        location = response.headers.get("location", "")
        if method != "GET":
            raise HttpError(f"{redact(url)} answered {method} with a redirect (HTTP {response.status}); not followed")
        nxt = parse_url(urllib.parse.urljoin(f"{target.scheme}://{_netloc(target)}{target.path}", location))
        if nxt.origin != first.origin:
            raise HttpError(f"{redact(url)} redirected to another host ({redact(location)}); not followed")
        target = Target(nxt.scheme, nxt.host, nxt.port, nxt.path, first.username, first.password)
    raise HttpError(f"{redact(url)}: more than {MAX_REDIRECTS} redirects")


def _netloc(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port}"


def _exchange(
    target: Target,
    method: str,
    headers: dict[str, str],
    data: bytes | None,
    deadline: Deadline,
    max_bytes: int,
    shown: str,
) -> Response:
    sent = dict(headers)
    if target.username is not None and "Authorization" not in sent:
        sent["Authorization"] = basic_auth(target.username, target.password)
    sock: socket.socket | None = None
    try:
        raw = deadline.connect(target.host, target.port, shown)
        sock = raw
        # Watched from before TLS: the handshake is a read that can drip like any other.
        with deadline.watching(raw):
            conn: http.client.HTTPConnection
            if target.scheme == "https":
                context = ssl.create_default_context()
                sock = context.wrap_socket(raw, server_hostname=target.host)
                conn = http.client.HTTPSConnection(target.host, target.port, context=context)
            else:
                conn = http.client.HTTPConnection(target.host, target.port)
            conn.sock = sock  # ours, connected under the deadline; http.client must not open another
            try:
                conn.request(method, target.path, body=data, headers=sent)
                answer = conn.getresponse()
                body = _read(answer, max_bytes, shown)
            finally:
                conn.close()
            if deadline.cut:
                raise deadline.error(shown)
            return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, body)
    except HttpError:
        raise
    except OSError as exc:  # refused, reset, DNS, TLS; a socket timeout; or the deadline's shutdown
        if deadline.cut or isinstance(exc, TimeoutError):
            raise deadline.error(shown) from None
        raise HttpError(f"{shown} is unreachable: {_reason(exc)}") from None
    except (http.client.HTTPException, ValueError) as exc:  # bad status line, truncated body, bad header
        if deadline.cut:
            raise deadline.error(shown) from None
        raise HttpError(f"{shown} sent a broken HTTP answer ({type(exc).__name__})") from None
    finally:
        if sock is not None:
            sock.close()


def _read(answer: http.client.HTTPResponse, max_bytes: int, shown: str) -> bytes:
    """The whole body, or HttpError past `max_bytes` (never more than one chunk beyond it is held)."""
    body = bytearray()
    while chunk := answer.read1(_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise HttpError(f"{shown} sent more than {max_bytes} bytes; not read", TOO_BIG)
    if answer.length:  # the server closed before the Content-Length it announced
        raise http.client.IncompleteRead(bytes(body), answer.length)
    return bytes(body)


def _reason(exc: BaseException) -> str:
    """An OS error's reason without anything from the request (no URL, no header)."""
    return getattr(exc, "strerror", None) or type(exc).__name__
