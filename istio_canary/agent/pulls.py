"""Pull requests through the Git host's API, with githubkit (generated from GitHub's own API description).

One error type: PullError. Only the calls the agent needs: is a pull request for this branch open, open one,
retitle one (an image proposal updated in place).

Every call is bounded whatever the server does: githubkit's client gets explicit connect/read timeouts (each
also cut to what is left of the operation), and a watchdog shuts the connection's socket down when the
operation's overall deadline passes, so a server that accepts and never answers, or drips its headers or
body a byte at a time (with or without Content-Length, over HTTP/1.0 or `Connection: close`), ends the call
at the deadline. Bodies are capped in bytes and never compressed (no zip bomb). Every non-2xx answer, and
every answer that is not the JSON shape the call needs (an HTML page with 200, an object where a list
belongs, a missing or mistyped field), is a PullError naming the call; the message never names the token.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

from istio_canary.agent.pull_transport import Capped, Operation, PullError
from istio_canary.httpclient import scrub

GITHUB_API = "https://api.github.com"
CONNECT_S = 5.0  # a TCP (+TLS) handshake with GitHub takes well under a second
READ_S = 10.0  # the longest silence between two reads
DEADLINE_S = 20.0  # one whole operation (redirects included): a third of the shortest sensible interval
MAX_BYTES = 4 << 20  # a page of 30 pull requests is ~0.5 MB; the agent's pod has 512 Mi


def owner_repo(repo_url: str) -> tuple[str, str]:
    """`https://github.com/acme/shop.git` -> ("acme", "shop")."""
    path = urllib.parse.urlsplit(repo_url).path.strip("/").removesuffix(".git")
    parts = path.split("/")
    if len(parts) < 2 or not all(parts[-2:]):
        raise PullError(f"cannot tell owner/repo from {urllib.parse.urlsplit(repo_url).path!r}")
    return parts[-2], parts[-1]


@dataclass(frozen=True)
class Pull:
    """An open pull request: its number (for updates) and its page."""

    number: int
    url: str


class PullRequests:
    """The repository's pull requests."""

    def __init__(
        self,
        repo_url: str,
        token: str,
        api_url: str = GITHUB_API,
        *,
        deadline_s: float = DEADLINE_S,
        connect_s: float = CONNECT_S,
        read_s: float = READ_S,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        from githubkit import GitHub

        self.owner, self.repo = owner_repo(repo_url)
        self.deadline_s, self.max_bytes = deadline_s, max_bytes
        self._operation: Operation | None = None
        # auto_retry=False: githubkit would sleep 1+4+9 s on a 5xx (or until a rate-limit reset) inside one
        # iteration; the loop retries at the next interval instead. http_cache=False: every answer is fresh
        # (the agent asks a few times an interval; a cache is one more thing a hostile answer could poison).
        self.github: Any = GitHub(
            token,
            base_url=api_url.rstrip("/") + "/",
            auto_retry=False,
            http_cache=False,
            timeout=httpx.Timeout(connect=connect_s, read=read_s, write=read_s, pool=connect_s),
            event_hooks={"request": [self._on_request], "response": [self._on_response]},
        )

    # --- the bounds, as httpx event hooks (they run before any byte of a body is read) --------------------

    def _on_request(self, request: httpx.Request) -> None:
        operation = self._operation
        if operation is None:  # a call that did not come through _call: nothing to bound it by
            raise PullError("request outside an operation")
        left = operation.remaining()
        if left <= 0:
            raise PullError(f"no complete answer within {operation.seconds:g}s")
        timeouts = dict(request.extensions.get("timeout") or {})
        for phase in ("connect", "read", "write", "pool"):
            value = timeouts.get(phase)
            timeouts[phase] = left if value is None else min(value, left)
        request.extensions["timeout"] = timeouts
        request.extensions["trace"] = operation.trace
        request.headers["Accept-Encoding"] = "identity"  # a byte cap on the wire is a byte cap in memory

    def _on_response(self, response: httpx.Response) -> None:
        operation = self._operation
        assert operation is not None  # set by _call around every request
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise PullError(f"answer is {encoding}-encoded though none was asked for")
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise PullError(f"answer is larger than {self.max_bytes} bytes ({length})")
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = Capped(response.stream, operation, self.max_bytes)

    # --- one operation --------------------------------------------------------------------------------------

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        """`call` within one overall deadline; its JSON, or PullError for anything else."""
        from githubkit.exception import GitHubException, RequestFailed

        operation = self._operation = Operation(self.deadline_s)
        try:
            response = call(*args, **kwargs)
        except RequestFailed as exc:
            raise PullError(f"{what}: {_refusal(exc.response.raw_response)}") from None
        except (GitHubException, PullError, httpx.HTTPError, OSError) as exc:
            if operation.expired.is_set() or operation.remaining() <= 0:
                raise PullError(f"{what}: no complete answer within {self.deadline_s:g}s") from None
            raise PullError(f"{what}: {_cause(exc)}") from None
        finally:
            operation.end()
            self._operation = None
        if operation.expired.is_set():  # whatever arrived, it may be a truncated answer
            raise PullError(f"{what}: no complete answer within {self.deadline_s:g}s")
        raw: httpx.Response = response.raw_response
        try:
            return raw.json()
        except ValueError:
            kind = raw.headers.get("Content-Type", "no Content-Type").split(";")[0]
            raise PullError(f"{what}: answer {raw.status_code} is not JSON ({kind}): {_peek(raw.content)}") from None

    def open_for(self, branch: str) -> Pull | None:
        """The open pull request from `branch`, or None."""
        what = "list pull requests"
        pulls = self._call(
            what,
            self.github.rest.pulls.list,
            self.owner,
            self.repo,
            head=f"{self.owner}:{branch}",
            state="open",
        )
        if not isinstance(pulls, list):
            raise PullError(f"{what}: expected a JSON list, got {_kind(pulls)}")
        for item in pulls:
            head = item.get("head") if isinstance(item, dict) else None
            ref = head.get("ref") if isinstance(head, dict) else None
            if not isinstance(ref, str):
                raise PullError(f"{what}: an item has no head.ref: {_peek(item)}")
            if ref == branch:  # GitHub ignores a malformed head filter and lists every open pull request
                return _pull(what, item)
        return None

    def update(self, number: int, title: str, body: str) -> None:
        """Retitle and rewrite the body of pull request `number`."""
        what = "update a pull request"
        answer = self._call(
            what,
            self.github.rest.pulls.update,
            self.owner,
            self.repo,
            number,
            title=title,
            body=body,
        )
        _pull(what, answer)

    def create(self, branch: str, base: str, title: str, body: str) -> str:
        """Open a pull request from `branch` into `base`; its URL."""
        what = "open a pull request"
        answer = self._call(
            what,
            self.github.rest.pulls.create,
            self.owner,
            self.repo,
            title=title,
            head=branch,
            base=base,
            body=body,
        )
        return _pull(what, answer).url


def _pull(what: str, item: object) -> Pull:
    """A pull request from its JSON, or PullError naming what is missing."""
    if not isinstance(item, dict):
        raise PullError(f"{what}: expected a pull request object, got {_kind(item)}")
    number, url = item.get("number"), item.get("html_url")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise PullError(f"{what}: the pull request has no valid number: {_peek(number)}")
    if not isinstance(url, str):
        raise PullError(f"{what}: pull request #{number} has no html_url")
    return Pull(number, url)


def _refusal(response: httpx.Response) -> str:
    """`502 Bad Gateway: Server Error`: the status and GitHub's own message when it sent one."""
    reason = response.reason_phrase or ""
    try:
        data = response.json()
    except ValueError:
        data = None
    message = data.get("message") if isinstance(data, dict) else None
    detail = _peek(message) if isinstance(message, str) else _peek(response.content)
    return f"{response.status_code} {reason}: {detail}".replace(" : ", ": ")


def _cause(exc: BaseException) -> str:
    """The root error's type and first line: `ConnectError: [Errno 111] Connection refused`."""
    root: BaseException = exc
    while True:
        inner = getattr(root, "exc", None) or root.__cause__
        if not isinstance(inner, BaseException) or inner is root:
            break
        root = inner
    if isinstance(root, PullError):  # raised by a bound (size, encoding) inside the call
        return str(root)
    text = str(root).splitlines()[0] if str(root) else ""
    return scrub(f"{type(root).__name__}: {text}"[:200])


def _kind(value: object) -> str:
    names: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def _peek(value: object, limit: int = 120) -> str:
    """A short, one-line, printable glimpse of an answer for an error message."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = " ".join(text.split())
    text = "".join(c if c.isprintable() else "?" for c in text)
    return scrub(text[:limit] + ("..." if len(text) > limit else ""))
