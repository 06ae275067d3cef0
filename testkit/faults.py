"""Hostile servers and fault injectors for the agent's fault soak (tests/integration/test_agent_soak.py,
bench/bench_soak.py): what a hostile or unlucky world does to a release agent, one fault at a time.

    with FaultServer(upstream=host.url) as api:       # a proxy in front of the GitHub stand-in (testkit/githost.py)
        api.fault(HANG, when=is_pull_list)             # accepts, reads the request, never answers
        api.fault(HTML)                                # 200 text/html, for every request
        api.clear()                                    # pass everything through again
    with FaultServer(variant=HTTP10) as slack:         # no upstream: 404 unless a fault matches
        slack.fault(DRIP)                              # every answer drips, HTTP/1.0 (the body ends at close)
    alias_bomb_stack(...), deep_stack(...)             # stack files nobody should expand or recurse into
    PushRace(agent_clone, person_clone).arm()          # a person pushes to main between the agent's commit and push
    leave_index_lock(agent_clone)                      # what a kill during `git checkout` leaves behind

Every server listens on 127.0.0.1 only, every handler ends when the server closes (a hanging or dripping answer
waits on the server's stop event), and `close()` (the context manager's exit) joins the serving thread.
"""

from __future__ import annotations

import http.client
import json
import shlex
import socket
import stat
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Self

from testkit.servers import _QuietServer

__all__ = [
    "BAD_DATA",
    "BAD_DATA_ERROR",
    "CLOSE",
    "DRIP",
    "HANG",
    "HTML",
    "HTTP10",
    "OBJECT",
    "STATUS",
    "FaultServer",
    "LaterInstant",
    "Match",
    "PushRace",
    "Seen",
    "alias_bomb",
    "clone_as_person",
    "deep_nesting",
    "leave_index_lock",
    "peak_rss_kib",
    "person_commit",
    "pull_list",
    "query_mentions",
]

# What a FaultServer does with a request a fault matches.
HANG = "hang"  # read the request, never answer (until the server closes)
HTML = "html"  # 200 with an HTML page (a captive portal, a proxy's login page)
OBJECT = "object"  # 200 with a JSON object where the API promises a list
STATUS = "status"  # an error status (`status=`, 502 by default) with GitHub's error shape
BAD_DATA = "bad_data"  # Prometheus' answer to a query it cannot parse: 400, errorType bad_data
DRIP = "drip"  # the status line and headers at once, then the body one byte every `drip_s`
# How a dripping answer ends its headers: HTTP/1.1 with `Connection: close` and a Content-Length, or HTTP/1.0
# without a length (the body ends when the connection does). Either way http.client drops its socket reference.
CLOSE, HTTP10 = "close", "http/1.0"
DRIP_BYTES = 1 << 16  # never all sent within a test at a byte every few tenths of a second
BAD_DATA_ERROR = "1:1: parse error: unexpected character (injected by the fault soak)"
FORWARD_TIMEOUT_S = 30.0
JOIN_TIMEOUT_S = 5.0
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Unicorn!</h1></body></html>\n"


@dataclass
class Seen:
    """One request the server received, and what it did with it (`pass` or a fault's mode)."""

    method: str
    path: str  # without the query
    query: dict[str, str]  # the last value of each parameter
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)
    answer: str = "pass"

    def param(self, name: str) -> str:
        return self.query.get(name, "")


Match = Callable[[Seen], bool]


@dataclass
class _Fault:
    mode: str
    when: Match
    status: int
    times: int | None  # None: every matching request


class FaultServer:
    """An HTTP server on 127.0.0.1 that forwards every request to `upstream` (answers 404 without one) unless a
    fault added with `fault()` matches it. A DRIP answer comes in `variant` (CLOSE or HTTP10), a byte every
    `drip_s` seconds of `drip_body` (what it would have said, padded so that it never ends within a test)."""

    def __init__(
        self,
        upstream: str | None = None,
        *,
        variant: str = CLOSE,
        drip_s: float = 0.2,
        drip_body: bytes = b"",
        drip_status: int = 200,
    ) -> None:
        if variant not in (CLOSE, HTTP10):
            raise ValueError(f"variant must be {CLOSE!r} or {HTTP10!r}, not {variant!r}")
        self.upstream = urllib.parse.urlsplit(upstream) if upstream else None
        self.variant = variant
        self.drip_s = drip_s
        self.drip_body = (drip_body or b'{"status": "success", "data": []}').ljust(DRIP_BYTES, b" ")
        self.drip_status = drip_status
        self.seen: list[Seen] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive for what passes through, as the real upstream does

            def _answer(self) -> None:
                split = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    method=self.command,
                    path=split.path,
                    query={k: v[-1] for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()},
                    headers=dict(self.headers.items()),
                    body=self.rfile.read(length) if length else b"",
                )
                fault = server._match(seen)
                if fault is None:
                    self._forward(seen)
                else:
                    server._serve_fault(self, fault, seen)

            def _forward(self, seen: Seen) -> None:
                if server.upstream is None:
                    self._send(404, {"Content-Type": "text/plain"}, b"no upstream\n")
                    return
                up = http.client.HTTPConnection(
                    server.upstream.hostname or "127.0.0.1", server.upstream.port, timeout=FORWARD_TIMEOUT_S
                )
                try:
                    skip = {"host", "connection", "keep-alive", "content-length", "accept-encoding"}
                    headers = {k: v for k, v in seen.headers.items() if k.lower() not in skip}
                    up.request(seen.method, self.path, body=seen.body or None, headers=headers)
                    answer = up.getresponse()
                    body = answer.read()
                    passed = {
                        k: v
                        for k, v in answer.getheaders()
                        if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length")
                    }
                    self._send(answer.status, passed, body)
                except OSError as exc:
                    self._send(502, {"Content-Type": "text/plain"}, f"upstream: {exc}\n".encode())
                finally:
                    up.close()

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer  # http.server's naming

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

        self._server = _QuietServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="faults", daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- what a test calls --------------------------------------------------------------------------------

    def fault(
        self, mode: str, when: Match = lambda _seen: True, *, status: int = 502, times: int | None = None
    ) -> None:
        """From now on, answer requests `when` matches with `mode` (the first matching fault wins); `times`: only
        that many of them."""
        if mode not in (HANG, HTML, OBJECT, STATUS, BAD_DATA, DRIP):
            raise ValueError(f"unknown fault {mode!r}")
        with self._lock:
            self._faults.append(_Fault(mode, when, status, times))

    def clear(self) -> None:
        """Pass everything through again (answers already hanging or dripping go on until the server closes)."""
        with self._lock:
            self._faults.clear()

    def faulted(self, mode: str | None = None) -> list[Seen]:
        """Requests answered with a fault (of `mode`)."""
        with self._lock:
            return [s for s in self.seen if s.answer != "pass" and mode in (None, s.answer)]

    def close(self) -> None:
        """Stop serving, end every hanging or dripping answer; idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=JOIN_TIMEOUT_S)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- serving ------------------------------------------------------------------------------------------

    def _match(self, seen: Seen) -> _Fault | None:
        with self._lock:
            self.seen.append(seen)
            for fault in self._faults:
                if fault.times == 0 or not fault.when(seen):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                seen.answer = fault.mode
                return fault
        return None

    def _serve_fault(self, handler: BaseHTTPRequestHandler, fault: _Fault, seen: Seen) -> None:
        handler.close_connection = True
        if fault.mode == HANG:
            self._stop.wait()
            return
        if fault.mode == DRIP:
            self._drip(handler.connection)
            return
        if fault.mode == HTML:
            status, kind, body = 200, "text/html; charset=utf-8", HTML_PAGE
        elif fault.mode == OBJECT:
            status, kind = 200, "application/json; charset=utf-8"
            body = json.dumps({"message": "ok", "total_count": 1, "items": []}).encode()
        elif fault.mode == BAD_DATA:
            status, kind = 400, "application/json"
            body = json.dumps({"status": "error", "errorType": "bad_data", "error": BAD_DATA_ERROR}).encode()
        else:
            status, kind = fault.status, "application/json; charset=utf-8"
            message = {"message": "Server Error", "documentation_url": "https://docs.github.com/rest"}
            body = json.dumps({**message, "status": str(status)}).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)

    def _drip(self, connection: socket.socket) -> None:
        if self.variant == HTTP10:
            head = f"HTTP/1.0 {self.drip_status} OK\r\nContent-Type: application/json\r\n\r\n"
        else:
            head = (
                f"HTTP/1.1 {self.drip_status} OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(self.drip_body)}\r\nConnection: close\r\n\r\n"
            )
        try:
            connection.sendall(head.encode())
            for index in range(len(self.drip_body)):
                if self._stop.wait(self.drip_s):
                    return
                connection.sendall(self.drip_body[index : index + 1])
        except OSError:  # the client gave up: what a deadline that holds does
            return


# --- matchers -----------------------------------------------------------------------------------------------


def pull_list(seen: Seen) -> bool:
    """GitHub's `GET /repos/{owner}/{repo}/pulls`: the agent's lookup of an open pull request."""
    return seen.method == "GET" and seen.path.endswith("/pulls")


def query_mentions(text: str) -> Match:
    """A Prometheus query whose PromQL holds `text` (e.g. one namespace's label value)."""
    return lambda seen: seen.path.endswith("/api/v1/query") and text in seen.param("query")


class LaterInstant:
    """Matches a Prometheus query at an instant later than every one asked before, but by less than `within_s`:
    the evidence a rollback asks for right after the judge's queries of the same pass (those go back in time,
    one interval at a time; the next pass starts about an interval later)."""

    def __init__(self, within_s: float) -> None:
        self.within_s = within_s
        self.newest = 0.0
        self.evidence_at: set[str] = set()

    def __call__(self, seen: Seen) -> bool:
        if not seen.path.endswith("/api/v1/query"):
            return False
        raw = seen.param("time")
        try:
            at = float(raw)
        except ValueError:
            return False
        if raw in self.evidence_at:
            return True
        evidence = self.newest < at < self.newest + self.within_s
        self.newest = max(self.newest, at)
        if evidence:
            self.evidence_at.add(raw)
        return evidence


# --- hostile stack files --------------------------------------------------------------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """YAML lines (at the top level) whose last anchor stands for width**levels strings: a few hundred bytes for
    a parser that keeps aliases as references, gigabytes for anything that walks or copies the value."""
    lines = [f"lol0: &lol0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels + 1):
        lines.append(f"lol{level}: &lol{level} [{', '.join([f'*lol{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def deep_nesting(depth: int = 20_000) -> str:
    """A flow sequence nested `depth` deep: a recursive parser or walker runs out of stack."""
    return "deep: " + "[" * depth + "]" * depth + "\n"


# --- git faults -----------------------------------------------------------------------------------------------

_RACE_HOOK = """#!/bin/sh
# Installed by testkit/faults.py PushRace: when the agent commits a rollback onto main in this clone, a person's
# commit lands on the origin's main first, so the agent's push that follows is rejected (fetch first).
[ "$1" = committed ] || exit 0
while read -r old new ref; do
  [ "$ref" = refs/heads/main ] || continue
  [ -f {armed} ] || continue
  case "$(git log -1 --format=%s "$new" 2>/dev/null)" in
    "canary: roll back"*) ;;
    *) continue ;;
  esac
  rm -f {armed}
  unset $(git rev-parse --local-env-vars)
  {push} >{log} 2>&1
  date +%s.%N >{fired}
done
exit 0
"""


class PushRace:
    """A person's commit on the origin's main that lands between the agent's rollback commit and its push: a
    `reference-transaction` hook in the agent's clone (git >= 2.28) runs `person_push` when the clone's main
    moves to a commit whose subject starts with "canary: roll back", once per `arm()`."""

    def __init__(self, agent_clone: Path, person_push: list[str], state: Path) -> None:
        self.hook = agent_clone / ".git" / "hooks" / "reference-transaction"
        self.armed, self.fired, self.log = state / "race.armed", state / "race.fired", state / "race.log"
        state.mkdir(parents=True, exist_ok=True)
        self.person_push = person_push

    def arm(self) -> None:
        """Install the hook (again: a re-cloned workdir has none) and let it fire once."""
        self.hook.parent.mkdir(parents=True, exist_ok=True)
        text = _RACE_HOOK
        for name, value in {
            "armed": shlex.quote(str(self.armed)),
            "fired": shlex.quote(str(self.fired)),
            "log": shlex.quote(str(self.log)),
            "push": shlex.join(self.person_push),
        }.items():
            text = text.replace("{" + name + "}", value)
        self.hook.write_text(text)
        self.hook.chmod(self.hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        self.armed.write_text("armed\n")

    @property
    def fired_at(self) -> float | None:
        """When the person's push ran (unix seconds), None before."""
        return float(self.fired.read_text()) if self.fired.exists() else None


def leave_index_lock(clone: Path) -> Path:
    """What a kill during `git checkout`/`reset` leaves in the clone: `.git/index.lock`, which makes every later
    git command that writes the index fail with "File exists"."""
    lock = clone / ".git" / "index.lock"
    lock.write_bytes(b"")
    return lock


def person_commit(clone: Path, path: str, edit: Callable[[str], str], message: str, push_to: str = "main") -> str:
    """In a person's clone: fetch, reset to the origin's `push_to`, edit `path`, commit and push; the new sha."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(clone), *args], check=True, capture_output=True, text=True, timeout=60
        ).stdout

    git("fetch", "-q", "origin", push_to)
    git("checkout", "-q", "-B", push_to, f"origin/{push_to}")
    file = clone / path
    file.write_text(edit(file.read_text()))
    git("commit", "-qam", message)
    git("push", "-q", "origin", f"HEAD:{push_to}")
    return git("rev-parse", "HEAD").strip()


def clone_as_person(origin: Path, directory: Path, name: str = "A Person") -> Path:
    """A clone of `origin` with its own identity (a reviewer, a colleague)."""
    subprocess.run(["git", "clone", "-q", str(origin), str(directory)], check=True, capture_output=True, timeout=60)
    for key, value in (
        ("user.name", name),
        ("user.email", "person@example.com"),
        ("commit.gpgsign", "false"),
    ):
        subprocess.run(["git", "-C", str(directory), "config", key, value], check=True, timeout=30)
    return directory


def peak_rss_kib(pid: int) -> int:
    """A running process's peak resident memory (VmHWM) in KiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
