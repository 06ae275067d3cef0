"""Fault injection: the `canary` command against misbehaving servers, hostile files and parallel runs.

Every case here went wrong once (issue 7). Servers are local stubs on 127.0.0.1; git is real; parallel runs
are real processes. A bound on a subprocess (`timeout=`) is a hang detector, not a performance assertion.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from istio_canary.cli import EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from istio_canary.lock import RepoLock
from istio_canary.release.settings import ConfigError, parse
from tests.integration import servers
from tests.integration.cli import canary
from tests.integration.conftest import git, project_dir, stack_text

TOKEN = "s3cr3t-T0KEN"


def run_cli(*args: object, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`canary <args>` as its own process (what CI and a person run)."""
    return subprocess.run(
        [sys.executable, "-m", "istio_canary", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def prometheus_stub(values: dict[str, object], auth: str | None = None):
    """A Prometheus API stand-in: the sample value per check (requests / success / p99), or a raw body."""

    def handle(request: servers.Recorded):
        if auth is not None and request.headers.get("Authorization") != auth:
            return 401, {"Content-Type": "application/json"}, b'{"status":"error","error":"unauthorized"}'
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)["query"][0]
        metric = "p99" if "histogram_quantile" in query else "success" if "response_code!~" in query else "requests"
        value = values[metric]
        if isinstance(value, bytes):
            return 200, {"Content-Type": "application/json"}, value
        result = [] if value is None else [{"metric": {}, "value": [1700000000, value]}]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    return servers.stub(handle)


HEALTHY = {"requests": "3000", "success": "100", "p99": "120"}


def analyze(capsys, directory: Path, url: str, *extra: object):
    return canary(capsys, "analyze", "-C", directory, "--prometheus", url, *extra)


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    return project_dir(tmp_path, stack_text(weight=10))


# --- serious 1: parallel promotes ----------------------------------------------------------------------


def test_parallel_promotes_never_corrupt_the_stack_or_skip_a_step(repo):
    """Four real processes promote one clone at once, five rounds: the lock lets one write at a time."""
    steps_seen = []
    for _round in range(5):
        if repo.stack.read_text() != stack_text(weight=0):
            repo.write_stack(stack_text(weight=0), "reset to 0")
        start = repo.count()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "istio_canary", "promote", "-C", str(repo.work), "--force", "--no-notify"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
        for code, err in results:
            assert code in (EXIT_OK, EXIT_REFUSED), err
            if code == EXIT_REFUSED:
                assert "another canary command is running (pid " in err or "100%" in err, err
        assert git(repo.work, "status", "--porcelain", "--untracked-files=no") == ""
        parse_stack(repo.stack)  # never emptied or half-written
        weights = [0]
        for rev in reversed(git(repo.work, "rev-list", f"HEAD~{repo.count() - start}..HEAD").split()):
            diff = git(repo.work, "show", "--format=", "-U0", rev, "--", "Pulumi.dev.yaml").splitlines()
            changed = [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]
            assert len(changed) == 2 and "canaryWeight" in changed[0] and "canaryWeight" in changed[1], changed
            assert changed[0].replace('"', "") == f"-  istio-canary:canaryWeight: {weights[-1]}"
            weights.append(int(changed[1].rsplit(" ", 1)[1].strip('"')))
        assert weights == [0, 10, 60, 100][: len(weights)], weights  # one step per commit, none skipped
        steps_seen.append(len(weights) - 1)
    assert max(steps_seen) >= 1


def parse_stack(path: Path) -> None:
    from istio_canary.stackfile import StackFile

    StackFile(path).view()


def test_a_held_lock_refuses_with_the_holders_pid(capsys, repo):
    head = repo.head()
    with RepoLock(repo.work / ".git"):
        result = canary(capsys, "rollback", "-C", repo.work, "--no-notify")
    assert result.code == EXIT_REFUSED
    assert f"another canary command is running (pid {os.getpid()})" in result.err
    assert repo.head() == head
    # Released: the next run goes ahead (nothing to roll back at 0 %).
    assert canary(capsys, "rollback", "-C", repo.work, "--no-notify").code == EXIT_OK


def test_a_restore_never_overwrites_a_newer_edit(capsys, repo, monkeypatch):
    """git commit fails after the edit, and meanwhile someone else changed the file: theirs stays."""
    from istio_canary import gitops

    newer = stack_text(weight=0, canary="6.9.9")

    def failing_commit(repo_path, path, message):
        path.write_text(newer)  # another writer (a person) between our write and our commit
        raise gitops.GitError("git commit failed: hook said no")

    monkeypatch.setattr(gitops, "commit", failing_commit)
    result = canary(capsys, "promote", "-C", repo.work, "--no-notify")
    assert result.code == EXIT_REFUSED
    assert "changed by someone else meanwhile and is left as it is" in result.err
    assert repo.stack.read_text() == newer


# --- serious 2: credentials in URLs ------------------------------------------------------------------


def test_basic_auth_from_the_url_works_and_never_leaks(capsys, repo):
    repo.write_stack(stack_text(weight=10))
    auth = "Basic " + base64.b64encode(f"bot:{TOKEN}".encode()).decode()
    with prometheus_stub(HEALTHY, auth=auth) as (url, seen):
        with_creds = url.replace("http://", f"http://bot:{TOKEN}@") + "/api/prom"
        result = canary(capsys, "promote", "-C", repo.work, "--prometheus", with_creds, "--no-notify")
        analysis = canary(capsys, "analyze", "-C", repo.work, "--prometheus", with_creds, "--json")
    assert result.code == EXIT_OK, result.err
    assert seen and all(r.path.startswith("/api/prom/api/v1/query?") for r in seen)
    message = repo.message()
    host = url.removeprefix("http://")
    assert f"Analysis from http://{host}:" in message
    for text in (message, result.out, result.err, analysis.out, analysis.err):
        assert TOKEN not in text and "bot:" not in text and "/api/prom" not in text


def test_bearer_token_from_the_environment(capsys, stack_dir, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_TOKEN", TOKEN)
    with prometheus_stub(HEALTHY, auth=f"Bearer {TOKEN}") as (url, _seen):
        result = analyze(capsys, stack_dir, url, "--json")
    assert result.code == EXIT_OK, result.err
    assert TOKEN not in result.out + result.err


def test_errors_and_json_name_the_host_only(capsys, stack_dir):
    url = f"http://bot:{TOKEN}@127.0.0.1:{servers.free_port()}/secret/path"
    result = analyze(capsys, stack_dir, url, "--json")
    assert result.code == EXIT_UNAVAILABLE
    assert TOKEN not in result.out + result.err and "/secret/path" not in result.out + result.err
    assert json.loads(result.out)["verdict"] == "unavailable"


def test_credentials_over_plain_http_to_another_host_are_refused(capsys, stack_dir, monkeypatch):
    result = analyze(capsys, stack_dir, f"http://bot:{TOKEN}@prometheus.invalid:9090")
    assert result.code == EXIT_REFUSED
    assert "plain http" in result.err and TOKEN not in result.err
    monkeypatch.setenv("PROMETHEUS_TOKEN", TOKEN)
    assert analyze(capsys, stack_dir, "http://prometheus.invalid:9090").code == EXIT_REFUSED


def test_a_credential_in_the_stack_file_is_refused_and_not_echoed(capsys, stack_dir):
    stack = stack_dir / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + f"  istio-canary:prometheusUrl: https://bot:{TOKEN}@prom.example.com\n")
    result = canary(capsys, "analyze", "-C", stack_dir)
    assert result.code == EXIT_REFUSED
    assert "prometheusUrl" in result.err and TOKEN not in result.err


# --- serious 3: impossible numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "value"),
    [
        ("success", "NaN"),  # 0/0 although there was traffic
        ("success", "+Inf"),
        ("success", "-500"),
        ("success", "150"),  # more 5xx than requests would make it negative; over 100 % is as impossible
        ("requests", "NaN"),
        ("requests", "-3000"),
        ("p99", "-5"),
        ("p99", "+Inf"),
        ("p99", "NaN"),  # a quantile of NaN while the canary had traffic
        ("requests", True),  # JSON true where Prometheus writes a string
        ("p99", 120),  # a bare JSON number is not the API either
        ("requests", "3000 "),
        ("requests", "1_000"),
    ],
)
def test_impossible_values_are_unavailable_never_a_verdict(capsys, stack_dir, metric, value):
    with prometheus_stub({**HEALTHY, metric: value}) as (url, _seen):
        result = analyze(capsys, stack_dir, url, "--json")
    assert result.code == EXIT_UNAVAILABLE, (result.out, result.err)
    assert json.loads(result.out)["verdict"] == "unavailable"


def test_nan_latency_without_traffic_is_no_data(capsys, stack_dir):
    with prometheus_stub({"requests": "0", "success": "NaN", "p99": "NaN"}) as (url, _seen):
        result = analyze(capsys, stack_dir, url)
    assert result.code == 2 and "fewer than 100" in result.out


@pytest.mark.parametrize("body", [b"[]", b"null", b'"x"', b"{}", b'{"status":"success","data":[]}', b"\xff\xfe"])
def test_bodies_that_are_not_the_api_are_unavailable(capsys, stack_dir, body):
    with prometheus_stub({"requests": body, "success": body, "p99": body}) as (url, _seen):
        result = analyze(capsys, stack_dir, url)
    assert result.code == EXIT_UNAVAILABLE, result.err
    assert "internal error" not in result.err


# --- serious 4: a secret weight ------------------------------------------------------------------------

SECRET_WEIGHT = "  istio-canary:canaryWeight:\n    secure: v1:c2VjcmV0:AAAA\n"


@pytest.mark.parametrize("command", ["rollback", "promote", "status"])
def test_a_secret_weight_is_refused_naming_the_key(capsys, repo, command):
    repo.write_stack(stack_text().replace("  istio-canary:canaryWeight: 0\n", SECRET_WEIGHT))
    head, before = repo.head(), repo.stack.read_bytes()
    result = canary(capsys, command, "-C", repo.work, "--no-notify") if command != "status" else None
    result = result or canary(capsys, command, "-C", repo.work)
    assert result.code == EXIT_REFUSED, result.out
    assert "istio-canary:canaryWeight: is a secret; it must be a plain value" in result.err
    assert repo.head() == head and repo.stack.read_bytes() == before


# --- hangs, sizes, redirects -----------------------------------------------------------------------------


def test_a_server_that_dribbles_hits_the_overall_deadline(stack_dir):
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n" + b" " * 5000
    with servers.raw_stub(answer, byte_interval=0.2) as url:
        done = run_cli("analyze", "-C", stack_dir, "--prometheus", url, "--timeout", "1", timeout=30)
    assert done.returncode == EXIT_UNAVAILABLE, done.stderr
    assert "did not answer within 1s" in done.stderr


def test_a_huge_answer_is_not_read_whole(capsys, stack_dir):
    huge = b'{"status":"success","data":{"resultType":"vector","result":[' + b" " * (6 * 1024 * 1024) + b"]}}"
    with prometheus_stub({"requests": huge, "success": huge, "p99": huge}) as (url, _seen):
        result = analyze(capsys, stack_dir, url)
    assert result.code == EXIT_UNAVAILABLE
    assert "bytes; not read" in result.err


def test_prometheus_redirect_to_another_host_is_not_followed(capsys, stack_dir):
    with (
        prometheus_stub(HEALTHY) as (elsewhere, elsewhere_seen),
        servers.stub(lambda r: (302, {"Location": elsewhere + r.path}, b"")) as (url, _seen),
    ):
        result = analyze(capsys, stack_dir, url)
    assert result.code == EXIT_UNAVAILABLE
    assert "redirected to another host" in result.err
    assert elsewhere_seen == []


def test_prometheus_redirect_on_the_same_host_is_followed(capsys, stack_dir):
    def handle(request):
        if request.path.startswith("/old/"):
            return 308, {"Location": request.path.replace("/old/", "/new/", 1)}, b""
        body = {"status": "success", "data": {"resultType": "vector", "result": []}}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    with servers.stub(handle) as (url, seen):
        result = analyze(capsys, stack_dir, url + "/old")
    assert result.code == 2, result.err  # no data: inconclusive, read from the redirected path
    assert any(r.path.startswith("/new/") for r in seen)


def test_a_slack_redirect_is_not_reported_as_sent(capsys, repo, monkeypatch):
    with (
        servers.stub(lambda r: (200, {}, b"ok")) as (elsewhere, elsewhere_seen),
        servers.stub(lambda r: (302, {"Location": elsewhere}, b"")) as (url, _seen),
    ):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", url + "/services/T000/B000/XXXX")
        result = canary(capsys, "notify", "-C", repo.work)
    assert result.code == EXIT_UNAVAILABLE
    assert "sent" not in result.out and "redirect" in result.err
    assert "/services/" not in result.err  # the webhook path is the credential
    assert elsewhere_seen == []


# --- crashes that are refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("at", ["nan", "inf", "-1e20", "-1", "1e300", "99999999999999999999"])
def test_impossible_times_are_refused(capsys, stack_dir, at):
    result = canary(capsys, "analyze", "-C", stack_dir, "--prometheus", "http://127.0.0.1:9", f"--at={at}")
    assert result.code == EXIT_REFUSED, result.err
    assert "--at" in result.err


def test_a_5000_digit_weight_is_refused_by_promote_and_repaired_by_rollback(capsys, repo):
    repo.write_stack(stack_text(weight="9" * 5000))
    promote = canary(capsys, "promote", "-C", repo.work, "--no-notify")
    assert promote.code == EXIT_REFUSED and "canaryWeight" in promote.err and len(promote.err) < 1000
    rollback = canary(capsys, "rollback", "-C", repo.work, "--no-notify")
    assert rollback.code == EXIT_OK, rollback.err
    assert '  istio-canary:canaryWeight: "0"\n' in repo.stack.read_text()
    assert len(repo.message()) < 2000


def test_a_tag_with_thousands_of_digits_is_refused(capsys, repo):
    repo.write_stack(stack_text(canary="6." + "9" * 5000 + ".0"))
    result = canary(capsys, "promote", "-C", repo.work, "--no-notify")
    assert result.code == EXIT_REFUSED and "canaryVersion" in result.err


def test_a_latin1_stack_file_is_refused(capsys, repo):
    repo.stack.write_bytes(stack_text().replace("# The dev", "# Caf\xe9: the dev").encode("latin-1"))
    git(repo.work, "commit", "-qam", "latin-1")
    result = canary(capsys, "rollback", "-C", repo.work, "--no-notify")
    assert result.code == EXIT_REFUSED and "not UTF-8" in result.err


def test_a_malformed_webhook_url_is_a_refusal_and_never_echoed(capsys, repo, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "http://[::1/services/T0/B0/s3cr3t")
    result = canary(capsys, "notify", "-C", repo.work)
    assert result.code == EXIT_REFUSED and "s3cr3t" not in result.err
    repo.write_stack(stack_text(weight=60))
    rollback = canary(capsys, "rollback", "-C", repo.work)
    assert rollback.code == EXIT_OK and "notification not sent" in rollback.err


def test_a_closed_pipe_is_not_a_crash(repo):
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {sys.executable} -m istio_canary status -C {repo.work} --json | head -c 10"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert len(done.stdout) == 10


# --- files the editor must not write through or mangle ----------------------------------------------------


def test_a_symlinked_stack_file_is_refused_before_writing(capsys, repo, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text(stack_text(weight=60))
    repo.stack.unlink()
    repo.stack.symlink_to(outside)
    git(repo.work, "add", "Pulumi.dev.yaml")
    git(repo.work, "commit", "-qm", "symlink")
    result = canary(capsys, "rollback", "-C", repo.work, "--no-notify")
    assert result.code == EXIT_REFUSED and "symbolic link" in result.err
    assert outside.read_text() == stack_text(weight=60)
    assert repo.stack.is_symlink()


@pytest.mark.parametrize(
    "dress",
    [
        lambda t: t.replace("\n", "\r\n"),
        lambda t: "\ufeff" + t,
        lambda t: "---\n" + t + "...\n",
        lambda t: "\ufeff---\r\n" + t.replace("\n", "\r\n") + "...\r\n",
    ],
    ids=["crlf", "bom", "markers", "all"],
)
def test_line_endings_bom_and_markers_survive_a_step(capsys, repo, dress):
    original = dress(stack_text(weight=0))
    repo.stack.write_bytes(original.encode())
    git(repo.work, "commit", "-qam", "dressed")
    result = canary(capsys, "promote", "-C", repo.work, "--no-notify")
    assert result.code == EXIT_OK, result.err
    eol = "\r\n" if "\r\n" in original else "\n"
    expected = original.replace(f"canaryWeight: 0{eol}", f'canaryWeight: "10"{eol}')
    assert repo.stack.read_bytes() == expected.encode()


def test_a_lone_carriage_return_is_refused_and_nothing_changes(capsys, repo):
    text = stack_text(weight=60).replace("# The dev", "# The\rdev")
    repo.stack.write_bytes(text.encode())
    git(repo.work, "commit", "-qam", "odd")
    head = repo.head()
    result = canary(capsys, "rollback", "-C", repo.work, "--no-notify")
    assert result.code == EXIT_REFUSED and "line break" in result.err
    assert repo.head() == head and repo.stack.read_bytes() == text.encode()


# --- one validator for the CLI and the program ----------------------------------------------------------


def test_promote_refuses_a_file_the_preview_would_refuse(capsys, repo):
    repo.write_stack(stack_text() + "  istio-canary:canaryWeigth: 10\n")
    head = repo.head()
    result = canary(capsys, "promote", "-C", repo.work, "--no-notify")
    assert result.code == EXIT_REFUSED
    assert "istio-canary:canaryWeigth: unknown config key" in result.err
    assert repo.head() == head
    with pytest.raises(ConfigError, match="canaryWeigth"):  # the program says the same
        parse({"canaryWeigth": "10"})


def test_a_typo_in_a_threshold_key_does_not_block_rollback(capsys, repo):
    repo.write_stack(stack_text(weight=60) + "  istio-canary:analysisMaxP99ms: 800\n")
    result = canary(capsys, "rollback", "-C", repo.work, "--no-notify")
    assert result.code == EXIT_OK, result.err
    assert '  istio-canary:canaryWeight: "0"\n' in repo.stack.read_text()


def test_watch_images_ignores_non_ascii_tags(capsys, repo):
    tags = ["6.9.0", "6.1\uff16.0", "6.\u0663.0", "6.9.1"]
    body = json.dumps({"name": "stefanprodan/podinfo", "tags": tags}).encode()
    with servers.stub(lambda r: (200, {"Content-Type": "application/json"}, body)) as (url, _seen):
        result = canary(capsys, "watch-images", "-C", repo.work, "--registry-url", url, "--no-notify")
    assert result.code == EXIT_OK, result.err
    assert "  istio-canary:canaryVersion: 6.9.1  #" in repo.stack.read_text()


def test_elapsed_is_bounded_by_the_deadline_not_the_socket_timeout(stack_dir):
    """The same dribbling server with a larger deadline: the run still ends (the bound is the deadline)."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b" " * 100
    with servers.raw_stub(answer, byte_interval=0.5) as url:
        started = time.monotonic()
        done = run_cli("analyze", "-C", stack_dir, "--prometheus", url, "--timeout", "2", timeout=60)
        elapsed = time.monotonic() - started
    assert done.returncode == EXIT_UNAVAILABLE
    assert elapsed < 50  # without a deadline this answer alone takes 50+ s per query, three queries a side


def test_a_remote_url_with_a_token_is_never_printed(capsys, repo):
    remote = f"http://bot:{TOKEN}@127.0.0.1:{servers.free_port()}/repo.git"
    result = canary(capsys, "promote", "-C", repo.work, "--no-notify", "--push", "--remote", remote)
    assert result.code == EXIT_REFUSED
    assert "the push to http://***@127.0.0.1" in result.err
    assert TOKEN not in result.out + result.err + repo.message()
