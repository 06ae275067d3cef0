"""A stand-in for GitHub's pull-request REST API on 127.0.0.1, for an agent that talks to GitHub with githubkit.

It records every request and holds each one to GitHub's published request schema: githubkit's request-body
models are generated from GitHub's OpenAPI description (githubkit_schemas, API version 2026-03-10), and the
stand-in validates with them in pydantic's strict mode, as GitHub's own validator does (no "true" for true, no 5
for "5"), plus what the models cannot say: GitHub types none of these fields as nullable (githubkit's Missing[]
lets None through; GitHub answers "nil is not a string"), and a key the schema does not list is refused
("... is not a permitted key"; GitHub itself ignores most unknown keys, so this is stricter on purpose: a
misspelled `bdy` is a bug). A body that does not conform gets 422, a body that is not JSON 400, a missing or
wrong token 401, an unknown route or repository 404, all with GitHub's error shape. Answers are complete
enough for githubkit's response models (PullRequest, PullRequestSimple, IssueComment), checked in
tests/integration/test_testbed_githost.py.

With `origin` (a bare repository, real git) it also does what GitHub checks against the repository: the head
and base branches must exist there (a branch never pushed is 422 `head invalid`), the head must have commits
the base lacks ("No commits between main and x"), one open pull request per head and base ("A pull request
already exists for acme:x."), and `merge()` merges for real (a merge commit or a squash on the base branch in
origin), as someone pressing the button would.

The githubkit calls verified against it (githubkit 0.16.1; the token is sent as `Authorization: token ...`):

    from githubkit import GitHub
    from githubkit.exception import RequestFailed

    gh = GitHub("test-token", base_url=host.url)  # http://127.0.0.1:<port>; githubkit adds the trailing /
    open_prs = gh.rest.pulls.list("acme", "istio-canary", head="acme:canary/60", state="open").parsed_data
    pr = gh.rest.pulls.create(
        "acme", "istio-canary", title="canary: 60%", head="canary/60", base="main", body="..."
    ).parsed_data                       # pr.number, pr.html_url, pr.state, pr.head.ref, pr.title, pr.body
    gh.rest.issues.create_comment("acme", "istio-canary", pr.number, body="still failing: ...")
    gh.rest.pulls.update("acme", "istio-canary", pr.number, body="...", state="closed")
    gh.rest.pulls.get("acme", "istio-canary", pr.number).parsed_data   # .merged, .state, .head.sha
    gh.rest.issues.list_comments("acme", "istio-canary", pr.number).parsed_data
    # A refusal raises RequestFailed: exc.response.status_code == 422, exc.response.json()["errors"]

Things to know that GitHub does too:
- `head` in pulls.list must be `owner:branch`; a bare `branch` is ignored and every open pull comes back
  (https://github.com/PyGithub/PyGithub/issues/1566).
- githubkit validates bodies itself before sending (`rest_api_validate_body=True`); the stand-in's check is
  the one that still holds for `gh.request(...)`, `data={...}` with validation off, or another client.
- githubkit's HTTP cache revalidates every GET (`Cache-Control: no-cache` + If-None-Match); the stand-in sends
  GitHub's ETag and Cache-Control and answers 304 when nothing changed, so a cached list is never stale.
- githubkit's default `auto_retry` sleeps inside the call: a 5xx is retried three times after 1, 4 and 9 s
  (14 s), and a rate limit (403/429 with X-RateLimit-Remaining: 0) once after sleeping until X-RateLimit-Reset
  (up to an hour; 60 s when the reset is already past, since a zero timedelta is falsy). A loop with an interval
  wants `GitHub(token, base_url=..., auto_retry=False)` or its own bounded retry function. `inject()` makes the
  stand-in fail the next requests (502, or 403 with rate-limit headers) to test exactly that.

Faults a client must survive (each for the next `times` requests, before authentication): `hang()` reads the
request and never answers; `drip()` sends the real answer a byte at a time (the body, or the headers too);
`answer()` sends any status and body (an HTML page with 200, a JSON object where a list belongs, items missing
fields, a body of any size). `http=` picks the server's HTTP: "1.0" (the default: HTTP/1.0, one request per
connection), "1.1" (keep-alive) or "close" (HTTP/1.1 with `Connection: close`); a dripped body over "1.0" or
"close" has no Content-Length and ends only when the connection does.
- Keep the `GitHub` object referenced: `GitHub(token).rest.pulls.list(...)` on a temporary fails with "GitHub
  client has already been collected" (githubkit's namespaces hold the client weakly).
- Version 2026-03-10 (what githubkit 0.16.1 sends; the only schema package installed) has no
  `merge_commit_sha` or `assignee` on a pull request: read merges from git, not from that field. The stand-in
  answers each version with its own fields.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

from githubkit_schemas.latest.models import (
    ReposOwnerRepoIssuesIssueNumberCommentsPostBody,
    ReposOwnerRepoPullsPostBody,
    ReposOwnerRepoPullsPullNumberPatchBody,
)
from pydantic import BaseModel, ValidationError

from testkit.servers import _QuietServer

HTTP_VARIANTS = ("1.0", "1.1", "close")  # HTTP/1.0; HTTP/1.1 keep-alive; HTTP/1.1 with `Connection: close`
API_VERSIONS = ("2022-11-28", "2026-03-10")  # X-GitHub-Api-Version values GitHub accepts (absent: 2022-11-28)
# Fields GitHub's 2026-03-10 description no longer has (githubkit 0.16.1 sends that version): its PullRequest
# has no merge_commit_sha or assignee, its Repository no has_downloads. Answers to that version leave them out.
REMOVED_IN_2026 = ("assignee", "merge_commit_sha", "has_downloads")
DOCS = "https://docs.github.com/rest"
GIT_TIMEOUT_S = 30
JOIN_TIMEOUT_S = 5.0
JSON_TYPES = {"string_type": "a string", "bool_type": "a boolean", "int_type": "an integer", "float_type": "a number"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Request:
    """One request the stand-in received and what it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    body: Any = None  # the parsed JSON, None without a body
    status: int = 0
    error: str = ""  # the message of a refusal
    response_headers: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """A header, case-insensitively."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Comment:
    """An issue comment on a pull request."""

    id: int
    issue: int
    body: str
    user: str
    created_at: str


@dataclass
class Pull:
    """A pull request as the stand-in keeps it."""

    number: int
    title: str
    body: str | None
    head: str  # the branch name
    base: str
    user: str
    draft: bool = False
    maintainer_can_modify: bool = False
    state: str = "open"
    merged: bool = False
    merge_commit_sha: str | None = None
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    closed_at: str | None = None
    merged_at: str | None = None


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour: `hang` (read the request, answer nothing), `drip` (the real answer, a byte at
    a time `seconds` apart) or `answer` (this status and body, whatever was asked)."""

    kind: str
    seconds: float = 0.0
    drip_headers: bool = False
    status: int = 200
    body: bytes = b""
    content_type: str = ""


class Refusal(Exception):
    """An error answer: status and GitHub's JSON body."""

    def __init__(self, status: int, message: str, docs: str = DOCS, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "documentation_url": docs, "status": str(status)}
        if errors is not None:
            self.body["errors"] = errors


def schema_errors(model: type[BaseModel], body: object) -> list[str]:
    """Why `body` does not conform to GitHub's request schema for `model`, in GitHub's words; [] when it does."""
    if not isinstance(body, dict):
        return [f"{json.dumps(body)[:80]} is not an object."]
    problems = []
    known = {info.alias or name for name, info in model.model_fields.items()}
    problems += [f'"{key}" is not a permitted key.' for key in body if key not in known]
    problems += [
        f"For 'properties/{key}', nil is not {_json_type(model, key)}." for key, v in body.items() if v is None
    ]
    try:
        model.model_validate_json(json.dumps(body), strict=True)
    except ValidationError as exc:
        seen = set()
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else ""
            if "literal[<UNSET>]" in error["loc"] or key in seen:
                continue  # the Missing[] branch of a union: the other branch's error says it
            seen.add(key)
            if error["type"] == "missing":
                problems.append(f'"{key}" wasn\'t supplied.')
            elif error["input"] is None:
                continue  # said above
            elif error["type"] in JSON_TYPES:
                problems.append(
                    f"For 'properties/{key}', {json.dumps(error['input'])} is not {JSON_TYPES[error['type']]}."
                )
            else:
                problems.append(f"For 'properties/{key}', {json.dumps(error['input'])} is not valid: {error['msg']}.")
    return problems


def _json_type(model: type[BaseModel], key: str) -> str:
    annotation = str(model.model_fields[key].annotation) if key in model.model_fields else ""
    for python, json_type in (
        ("bool", "a boolean"),
        ("int", "an integer"),
        ("str", "a string"),
        ("Literal", "a string"),
    ):
        if python in annotation:
            return json_type
    return "a value"


class GitHost:
    """GitHub's pull-request API for one repository `owner/repo`, on 127.0.0.1, answering a client that sends
    `token`. `origin`: the bare repository the pulls' branches live in (checked and merged there)."""

    def __init__(
        self,
        owner: str = "acme",
        repo: str = "istio-canary",
        *,
        token: str = "test-token",
        origin: Path | None = None,
        user: str = "canary-agent",
        http: str = "1.0",
    ) -> None:
        if http not in HTTP_VARIANTS:
            raise ValueError(f"http must be one of {HTTP_VARIANTS}, not {http!r}")
        self.http = http
        self.owner = owner
        self.repo = repo
        self.token = token
        self.origin = origin
        self.user = user
        self.requests: list[Request] = []
        self.pulls: dict[int, Pull] = {}
        self.comments: list[Comment] = []
        self._next_number = 1
        self._next_comment = 1
        self._injected: list[tuple[int, Any, dict[str, str]]] = []
        self._faults: list[Fault] = []
        self._stopping = threading.Event()  # ends a hanging or dripping fault when the stand-in closes
        self._lock = threading.RLock()
        host = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0" if http == "1.0" else "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                split = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=split.path,
                    query=parse_qs(split.query, keep_blank_values=True),
                    headers=dict(self.headers.items()),
                    raw=self.rfile.read(length),
                )
                fault = host._take_fault()
                if fault is not None:
                    host._misbehave(self, request, fault)
                    return
                status, headers, body = host._handle(request)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if http == "close":
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer  # http.server's method naming

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

        self._server = _QuietServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="githost", daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- what a test calls ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving; idempotent."""
        self._stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=JOIN_TIMEOUT_S)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_pulls(self, head: str | None = None) -> list[Pull]:
        """Open pull requests, oldest first, optionally of one head branch."""
        with self._lock:
            return [p for p in self.pulls.values() if p.state == "open" and head in (None, p.head)]

    def refused(self) -> list[Request]:
        """Requests answered with an error status."""
        with self._lock:
            return [r for r in self.requests if r.status >= 400]

    def calls(self, method: str, path_suffix: str = "") -> list[Request]:
        """Requests with this method whose path ends with `path_suffix`."""
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    def inject(self, status: int, times: int = 1, message: str = "Server Error", headers: dict | None = None) -> None:
        """Answer the next `times` requests (after auth) with `status` and GitHub's error shape: an outage (502),
        a rate limit (403 with `{"X-RateLimit-Remaining": "0", ...}`), whatever the test needs."""
        with self._lock:
            body = {"message": message, "documentation_url": DOCS, "status": str(status)}
            self._injected += [(status, body, dict(headers or {}))] * times

    def hang(self, times: int = 1, seconds: float = 60.0) -> None:
        """The next `times` requests are read and never answered: the connection stays open, silent, for
        `seconds` (or until close()), as an API behind a stuck proxy does."""
        with self._lock:
            self._faults += [Fault("hang", seconds=seconds)] * times

    def drip(self, times: int = 1, every: float = 0.2, headers: bool = False) -> None:
        """The next `times` requests get their real answer one byte every `every` seconds: the body only, or
        with `headers` the status line and headers too. Over HTTP/1.0 and `Connection: close` the body has no
        Content-Length (it ends when the connection does), the framing that outlives a per-read timeout."""
        with self._lock:
            self._faults += [Fault("drip", seconds=every, drip_headers=headers)] * times

    def answer(
        self, status: int, body: bytes, content_type: str = "application/json; charset=utf-8", times: int = 1
    ) -> None:
        """The next `times` requests get exactly this answer, whatever they asked: an HTML page with 200 (a
        captive portal, a proxy's error page), a JSON object where a list belongs, items missing fields, a body
        of any size."""
        with self._lock:
            self._faults += [Fault("answer", status=status, body=body, content_type=content_type)] * times

    def merge(self, number: int, method: str = "merge", delete_branch: bool = False) -> str:
        """Merge an open pull request into its base in `origin` as GitHub's button does (`merge`: a merge commit
        "Merge pull request #n from owner/branch"; `squash`: one commit "title (#n)"); return the new base sha."""
        if self.origin is None:
            raise RuntimeError("merge() needs the GitHost's origin repository")
        with self._lock:
            pull = self.pulls[number]
            if pull.state != "open":
                raise RuntimeError(f"pull request #{number} is {pull.state}")
            with tempfile.TemporaryDirectory(prefix="githost-merge-") as tmp:
                work = Path(tmp) / "work"
                _git(None, "clone", "-q", "-b", pull.base, str(self.origin), str(work))
                identity = [
                    "-c",
                    "user.name=GitHub",
                    "-c",
                    "user.email=noreply@github.com",
                    "-c",
                    "commit.gpgsign=false",
                ]
                if method == "squash":
                    _git(work, *identity, "merge", "-q", "--squash", f"origin/{pull.head}")
                    _git(
                        work, *identity, "commit", "-q", "-m", f"{pull.title} (#{number})\n\n{pull.body or ''}".strip()
                    )
                elif method == "merge":
                    message = f"Merge pull request #{number} from {self.owner}/{pull.head}\n\n{pull.title}"
                    _git(work, *identity, "merge", "-q", "--no-ff", "-m", message, f"origin/{pull.head}")
                else:
                    raise ValueError(f"method must be merge or squash, not {method!r}")
                _git(work, "push", "-q", "origin", f"HEAD:refs/heads/{pull.base}")
                sha = _git(work, "rev-parse", "HEAD").strip()
            if delete_branch:
                _git(self.origin, "update-ref", "-d", f"refs/heads/{pull.head}")
            stamp = _now()
            pull.state, pull.merged, pull.merge_commit_sha = "closed", True, sha
            pull.merged_at = pull.closed_at = pull.updated_at = stamp
            return sha

    def close_pull(self, number: int) -> None:
        """Close a pull request without merging (someone pressed Close)."""
        with self._lock:
            pull = self.pulls[number]
            pull.state, pull.closed_at, pull.updated_at = "closed", _now(), _now()

    # --- faults ---------------------------------------------------------------------------------------------

    def _take_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _misbehave(self, handler: BaseHTTPRequestHandler, request: Request, fault: Fault) -> None:
        """Answer `request` as `fault` says, writing the bytes by hand so the framing is the variant's own."""
        with self._lock:
            self.requests.append(request)
        handler.close_connection = True  # whatever happens, this connection is not reused
        if fault.kind == "hang":
            request.error = "hang"
            self._stopping.wait(fault.seconds)
            return
        if fault.kind == "answer":
            status, headers, body = fault.status, {"Content-Type": fault.content_type}, fault.body
        else:
            status, headers, body = self._handle(request)
        request.status, request.error = status, request.error or fault.kind
        keep_alive = self.http == "1.1"
        version = "HTTP/1.0" if self.http == "1.0" else "HTTP/1.1"
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [f"{version} {status} {phrase}"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        if keep_alive or fault.kind == "answer":
            lines.append(f"Content-Length: {len(body)}")
        if self.http == "close":
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        try:
            if fault.kind == "answer":
                handler.wfile.write(head + body)
                return
            slow = head + body if fault.drip_headers else body
            if not fault.drip_headers:
                handler.wfile.write(head)
            for i in range(len(slow)):
                if self._stopping.wait(fault.seconds):
                    return
                handler.wfile.write(slow[i : i + 1])
                handler.wfile.flush()
        except OSError:  # the client gave up (its deadline): that is what the fault is for
            return

    # --- the API ----------------------------------------------------------------------------------------

    def _handle(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(request)
            try:  # on record even when it is refused before its body is read (401, 404)
                request.body = json.loads(request.raw) if request.raw else None
            except (ValueError, UnicodeDecodeError):
                request.body = None
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "X-GitHub-Media-Type": "github.v3; format=json",
                "X-GitHub-Request-Id": hashlib.sha1(str(len(self.requests)).encode()).hexdigest()[:20].upper(),
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": str(max(0, 5000 - len(self.requests))),
                "X-RateLimit-Reset": str(int(time.time()) + 3600),
                "X-RateLimit-Resource": "core",
            }
            try:
                status, answer, extra = self._route(request)
            except Refusal as refusal:
                status, answer, extra = refusal.status, refusal.body, {}
                request.error = str(refusal)
            except Exception as exc:  # noqa: BLE001 - a bug in the stand-in: answer 500 and keep it on record
                status, answer, extra = 500, {"message": f"stand-in error: {exc!r}", "status": "500"}, {}
                request.error = repr(exc)
            headers.update(extra)
            if request.header("X-GitHub-Api-Version") == "2026-03-10":
                answer = _without(answer, REMOVED_IN_2026)
            body = json.dumps(answer, indent=None).encode()
            if request.method == "GET" and status == 200:
                etag = 'W/"' + hashlib.sha256(body).hexdigest() + '"'
                headers.update({"ETag": etag, "Cache-Control": "private, max-age=60, s-maxage=60"})
                headers["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
                if request.header("If-None-Match") == etag:
                    status, body = 304, b""
            request.status, request.response_headers = status, headers
            return status, headers, body

    def _route(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        self._authenticate(request)
        version = request.header("X-GitHub-Api-Version")
        if version is not None and version not in API_VERSIONS:
            raise Refusal(400, f"API version {version} is not supported.", f"{DOCS}/about-the-rest-api/api-versions")
        if self._injected:
            return self._injected.pop(0)
        match = re.fullmatch(r"/repos/([^/]+)/([^/]+)/(pulls|issues)(?:/([0-9]+))?(/comments)?", request.path)
        if not match or (match[1].lower(), match[2].lower()) != (self.owner.lower(), self.repo.lower()):
            raise Refusal(404, "Not Found")
        kind, number, comments = match[3], match[4], match[5]
        route = (request.method, kind, number is not None, comments is not None)
        if route == ("GET", "pulls", False, False):
            return self._list(request)
        if route == ("POST", "pulls", False, False):
            return self._create(request)
        if kind == "pulls" and number and not comments and request.method in ("GET", "PATCH"):
            pull = self._pull(int(number))
            if request.method == "PATCH":
                self._update(request, pull)
            return 200, self._pull_json(pull), {}
        if kind == "issues" and number and comments and request.method in ("GET", "POST"):
            pull = self._pull(int(number))
            if request.method == "GET":
                return 200, [self._comment_json(c) for c in self.comments if c.issue == pull.number], {}
            return self._comment(request, pull)
        raise Refusal(404, "Not Found")

    def _authenticate(self, request: Request) -> None:
        value = request.header("Authorization")
        if not value:
            raise Refusal(401, "Requires authentication")
        scheme, _, credential = value.partition(" ")
        if scheme.lower() not in ("token", "bearer") or credential.strip() != self.token:
            raise Refusal(401, "Bad credentials")

    def _body(self, request: Request, model: type[BaseModel], docs: str) -> dict[str, Any]:
        try:
            body = json.loads(request.raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise Refusal(400, "Problems parsing JSON", docs) from None
        problems = schema_errors(model, body)
        if problems:
            raise Refusal(422, "Invalid request.\n\n" + "\n".join(problems), docs)
        return body

    def _pull(self, number: int) -> Pull:
        pull = self.pulls.get(number)
        if pull is None:
            raise Refusal(404, "Not Found")
        return pull

    def _list(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        query = {key: values[-1] for key, values in request.query.items()}
        state = query.get("state", "open")
        pulls = [p for p in self.pulls.values() if state == "all" or p.state == state]
        owner, colon, branch = query.get("head", "").partition(":")
        if colon:  # GitHub ignores a head without "owner:"
            pulls = [p for p in pulls if owner.lower() == self.owner.lower() and p.head == branch]
        if "base" in query:
            pulls = [p for p in pulls if p.base == query["base"]]
        pulls.sort(key=lambda p: p.number, reverse=query.get("direction", "desc") == "desc")
        per_page = min(100, max(1, _int(query.get("per_page"), 30)))
        page = max(1, _int(query.get("page"), 1))
        last = max(1, -(-len(pulls) // per_page))
        answer = [self._pull_json(p, simple=True) for p in pulls[(page - 1) * per_page : page * per_page]]
        headers = {}
        if page < last:  # GitHub's pagination: githubkit's paginate() follows rel="next"
            keep = {key: value for key, value in query.items() if key != "page"}
            link = f"{self.url}{request.path}?{urlencode({**keep, 'per_page': per_page})}"
            headers["Link"] = f'<{link}&page={page + 1}>; rel="next", <{link}&page={last}>; rel="last"'
        return 200, answer, headers

    def _create(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        docs = f"{DOCS}/pulls/pulls#create-a-pull-request"
        body = self._body(request, ReposOwnerRepoPullsPostBody, docs)
        if "title" not in body and "issue" not in body:
            raise Refusal(422, 'Invalid request.\n\n"title" wasn\'t supplied.', docs)
        if "issue" in body:
            raise Refusal(422, "Validation Failed", docs, [_error("issue", "custom", "not supported by the stand-in")])
        owner, colon, head = body["head"].rpartition(":")
        if colon and owner.lower() != self.owner.lower():
            raise Refusal(422, "Validation Failed", docs, [_error("head", "invalid")])
        base = body["base"]
        self._check_branches(head, base, docs)
        if any(p.state == "open" and p.head == head and p.base == base for p in self.pulls.values()):
            message = f"A pull request already exists for {self.owner}:{head}."
            raise Refusal(422, "Validation Failed", docs, [_error(None, "custom", message)])
        pull = Pull(
            number=self._next_number,
            title=body.get("title", ""),
            body=body.get("body"),
            head=head,
            base=base,
            user=self.user,
            draft=body.get("draft", False),
            maintainer_can_modify=body.get("maintainer_can_modify", False),
        )
        self._next_number += 1
        self.pulls[pull.number] = pull
        answer = self._pull_json(pull)
        return 201, answer, {"Location": answer["url"]}

    def _update(self, request: Request, pull: Pull) -> None:
        docs = f"{DOCS}/pulls/pulls#update-a-pull-request"
        body = self._body(request, ReposOwnerRepoPullsPullNumberPatchBody, docs)
        if "base" in body:
            self._check_branches(pull.head, body["base"], docs)
        if body.get("state") == "open" and pull.state == "closed":
            if pull.merged:
                raise Refusal(422, "Validation Failed", docs, [_error("state", "custom", "merged pulls stay closed")])
            if self.open_pulls(pull.head):
                message = f"A pull request already exists for {self.owner}:{pull.head}."
                raise Refusal(422, "Validation Failed", docs, [_error(None, "custom", message)])
        for key in ("title", "body", "base", "maintainer_can_modify"):
            if key in body:
                setattr(pull, key, body[key])
        if "state" in body and body["state"] != pull.state:
            pull.state = body["state"]
            pull.closed_at = _now() if pull.state == "closed" else None
        pull.updated_at = _now()

    def _comment(self, request: Request, pull: Pull) -> tuple[int, Any, dict[str, str]]:
        docs = f"{DOCS}/issues/comments#create-an-issue-comment"
        body = self._body(request, ReposOwnerRepoIssuesIssueNumberCommentsPostBody, docs)
        comment = Comment(self._next_comment, pull.number, body["body"], self.user, _now())
        self._next_comment += 1
        self.comments.append(comment)
        answer = self._comment_json(comment)
        return 201, answer, {"Location": answer["url"]}

    # --- git ------------------------------------------------------------------------------------------------

    def _check_branches(self, head: str, base: str, docs: str) -> None:
        if self.origin is None:
            return
        if self._sha(base) is None:
            raise Refusal(422, "Validation Failed", docs, [_error("base", "invalid")])
        if self._sha(head) is None:
            raise Refusal(422, "Validation Failed", docs, [_error("head", "invalid")])
        if self._ahead(base, head) == 0:
            raise Refusal(
                422, "Validation Failed", docs, [_error(None, "custom", f"No commits between {base} and {head}")]
            )

    def _sha(self, branch: str) -> str | None:
        """The branch's commit in origin (a made-up stable sha without origin), None if there is no such branch."""
        if self.origin is None:
            return hashlib.sha1(branch.encode()).hexdigest()
        result = subprocess.run(
            ["git", "--git-dir", str(self.origin), "rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
        return result.stdout.strip() if result.returncode == 0 else None

    def _ahead(self, base: str, head: str) -> int:
        """Commits on head that base lacks (1 without origin)."""
        if self.origin is None:
            return 1
        return int(_git(self.origin, "rev-list", "--count", f"refs/heads/{base}..refs/heads/{head}"))

    def _diff_stats(self, pull: Pull) -> tuple[int, int, int, int]:
        """commits, additions, deletions, changed files of head against the merge base."""
        if self.origin is None or self._sha(pull.head) is None or self._sha(pull.base) is None:
            return 1, 1, 1, 1
        commits = self._ahead(pull.base, pull.head)
        numstat = _git(self.origin, "diff", "--numstat", f"refs/heads/{pull.base}...refs/heads/{pull.head}")
        rows = [line.split("\t") for line in numstat.splitlines() if line]
        additions = sum(int(r[0]) for r in rows if r[0].isdigit())
        deletions = sum(int(r[1]) for r in rows if r[1].isdigit())
        return commits, additions, deletions, len(rows)

    # --- answers, shaped as GitHub's ------------------------------------------------------------------------

    def _user_json(self, login: str, kind: str = "User") -> dict[str, Any]:
        api = f"{self.url}/users/{login}"
        uid = int(hashlib.sha1(login.encode()).hexdigest()[:7], 16)
        return {
            "login": login,
            "id": uid,
            "node_id": f"U_{uid:x}",
            "avatar_url": f"{self.url}/avatars/{login}",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.url}/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": kind,
            "user_view_type": "public",
            "site_admin": False,
        }

    def _repo_json(self) -> dict[str, Any]:
        api = f"{self.url}/repos/{self.owner}/{self.repo}"
        html = f"{self.url}/{self.owner}/{self.repo}"
        templated = {
            "keys_url": "/keys{/key_id}",
            "collaborators_url": "/collaborators{/collaborator}",
            "issue_events_url": "/issues/events{/number}",
            "assignees_url": "/assignees{/user}",
            "branches_url": "/branches{/branch}",
            "blobs_url": "/git/blobs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "trees_url": "/git/trees{/sha}",
            "statuses_url": "/statuses/{sha}",
            "commits_url": "/commits{/sha}",
            "git_commits_url": "/git/commits{/sha}",
            "comments_url": "/comments{/number}",
            "issue_comment_url": "/issues/comments{/number}",
            "contents_url": "/contents/{+path}",
            "compare_url": "/compare/{base}...{head}",
            "archive_url": "/{archive_format}{/ref}",
            "issues_url": "/issues{/number}",
            "pulls_url": "/pulls{/number}",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "labels_url": "/labels{/name}",
            "releases_url": "/releases{/id}",
        }
        plain = ["forks", "teams", "hooks", "events", "tags", "languages", "stargazers", "contributors"]
        plain += ["subscribers", "subscription", "merges", "downloads", "deployments"]
        rid = int(hashlib.sha1(f"{self.owner}/{self.repo}".encode()).hexdigest()[:8], 16)
        open_count = sum(1 for p in self.pulls.values() if p.state == "open")
        stamp = "2024-01-01T00:00:00Z"
        return {
            "id": rid,
            "node_id": f"R_{rid:x}",
            "name": self.repo,
            "full_name": f"{self.owner}/{self.repo}",
            "private": True,
            "owner": self._user_json(self.owner, "Organization"),
            "html_url": html,
            "description": None,
            "fork": False,
            "url": api,
            **{key: api + suffix for key, suffix in templated.items()},
            **{f"{name}_url": f"{api}/{name}" for name in plain},
            "created_at": stamp,
            "updated_at": stamp,
            "pushed_at": stamp,
            "git_url": f"git://127.0.0.1/{self.owner}/{self.repo}.git",
            "ssh_url": f"git@127.0.0.1:{self.owner}/{self.repo}.git",
            "clone_url": self.origin.as_uri() if self.origin else f"{html}.git",
            "svn_url": html,
            "mirror_url": None,
            "homepage": None,
            "language": "Python",
            "size": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "has_issues": True,
            "has_projects": False,
            "has_downloads": True,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "open_issues_count": open_count,
            "license": None,
            "allow_forking": False,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "private",
            "forks": 0,
            "open_issues": open_count,
            "watchers": 0,
            "default_branch": "main",
        }

    def _pull_json(self, pull: Pull, simple: bool = False) -> dict[str, Any]:
        api = f"{self.url}/repos/{self.owner}/{self.repo}"
        html = f"{self.url}/{self.owner}/{self.repo}/pull/{pull.number}"
        url = f"{api}/pulls/{pull.number}"
        head_sha = self._sha(pull.head) or hashlib.sha1(pull.head.encode()).hexdigest()  # a deleted branch
        base_sha = self._sha(pull.base) or hashlib.sha1(pull.base.encode()).hexdigest()
        owner, repo = self._user_json(self.owner, "Organization"), self._repo_json()
        links = {
            "self": url,
            "html": html,
            "issue": f"{api}/issues/{pull.number}",
            "comments": f"{api}/issues/{pull.number}/comments",
            "review_comments": f"{url}/comments",
            "review_comment": f"{api}/pulls/comments{{/number}}",
            "commits": f"{url}/commits",
            "statuses": f"{api}/statuses/{head_sha}",
        }
        answer: dict[str, Any] = {
            "url": url,
            "id": 1000 + pull.number,
            "node_id": f"PR_{1000 + pull.number:x}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": links["issue"],
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self._user_json(pull.user, "Bot" if pull.user.endswith("[bot]") else "User"),
            "body": pull.body,
            "created_at": pull.created_at,
            "updated_at": pull.updated_at,
            "closed_at": pull.closed_at,
            "merged_at": pull.merged_at,
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "labels": [],
            "milestone": None,
            "draft": pull.draft,
            "commits_url": links["commits"],
            "review_comments_url": links["review_comments"],
            "review_comment_url": links["review_comment"],
            "comments_url": links["comments"],
            "statuses_url": links["statuses"],
            "head": {
                "label": f"{self.owner}:{pull.head}",
                "ref": pull.head,
                "sha": head_sha,
                "user": owner,
                "repo": repo,
            },
            "base": {
                "label": f"{self.owner}:{pull.base}",
                "ref": pull.base,
                "sha": base_sha,
                "user": owner,
                "repo": repo,
            },
            "_links": {name: {"href": href} for name, href in links.items()},
            "author_association": "MEMBER",
            "auto_merge": None,
            "active_lock_reason": None,
        }
        if simple:
            return answer
        commits, additions, deletions, changed = self._diff_stats(pull) if pull.state == "open" else (0, 0, 0, 0)
        return {
            **answer,
            "merged": pull.merged,
            "mergeable": True if pull.state == "open" else None,
            "rebaseable": True if pull.state == "open" else None,
            "mergeable_state": "clean" if pull.state == "open" else "unknown",
            "merged_by": self._user_json(self.owner) if pull.merged else None,
            "comments": sum(1 for c in self.comments if c.issue == pull.number),
            "review_comments": 0,
            "maintainer_can_modify": pull.maintainer_can_modify,
            "commits": commits,
            "additions": additions,
            "deletions": deletions,
            "changed_files": changed,
        }

    def _comment_json(self, comment: Comment) -> dict[str, Any]:
        api = f"{self.url}/repos/{self.owner}/{self.repo}"
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id:x}",
            "url": f"{api}/issues/comments/{comment.id}",
            "html_url": f"{self.url}/{self.owner}/{self.repo}/pull/{comment.issue}#issuecomment-{comment.id}",
            "body": comment.body,
            "user": self._user_json(comment.user),
            "created_at": comment.created_at,
            "updated_at": comment.created_at,
            "issue_url": f"{api}/issues/{comment.issue}",
            "author_association": "MEMBER",
            "performed_via_github_app": None,
        }


def _int(text: str | None, default: int) -> int:
    """A query parameter as GitHub reads a number: anything that is not one is the default."""
    return int(text) if text and text.isdigit() else default


def _without(value: Any, keys: tuple[str, ...]) -> Any:
    """`value` with `keys` removed from every object in it."""
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def _error(field_name: str | None, code: str, message: str | None = None) -> dict[str, Any]:
    """One item of a 422's `errors`, as GitHub writes it."""
    item: dict[str, Any] = {"resource": "PullRequest", "code": code}
    if field_name:
        item["field"] = field_name
    if message:
        item["message"] = message
    return item


def _git(repo: Path | None, *args: str) -> str:
    command = ["git", *(["-C", str(repo)] if repo else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()[:500]}")
    return result.stdout
