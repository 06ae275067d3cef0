"""`canary notify` and the webhook rules against a local HTTP server standing in for Slack."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from istio_canary.cli import EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from tests.integration import servers
from tests.integration.cli import canary
from tests.integration.conftest import ROOT, stack_text


def slack(status: int = 200):
    return servers.stub(lambda _request: (status, {"Content-Type": "text/plain"}, b"ok"))


def test_dry_run_prints_the_payload(capsys, repo):
    result = canary(capsys, "notify", "-C", repo.work, "--dry-run")
    assert result.code == EXIT_OK
    assert json.loads(result.out) == {"text": "podinfo (dev): canary 6.9.0 at 0%, GA 6.8.0"}


def test_posts_json_to_the_webhook(capsys, repo, monkeypatch):
    with slack() as (url, seen):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", url + "/hook")
        result = canary(capsys, "notify", "-C", repo.work, "--text", "hello *team*")
    assert result.code == EXIT_OK
    [post] = seen
    assert (post.method, post.path) == ("POST", "/hook")
    assert post.headers["Content-Type"] == "application/json"
    assert json.loads(post.body) == {"text": "hello *team*"}


def test_webhook_error_is_exit_3(capsys, repo, monkeypatch):
    with slack(500) as (url, _seen):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
        result = canary(capsys, "notify", "-C", repo.work)
    assert result.code == EXIT_UNAVAILABLE
    assert "HTTP 500" in result.err


def test_no_webhook_configured(capsys, repo):
    result = canary(capsys, "notify", "-C", repo.work)
    assert result.code == EXIT_REFUSED
    assert "SLACK_WEBHOOK_URL" in result.err


def test_plain_webhook_in_stack_config_is_refused(capsys, repo):
    repo.write_stack(stack_text() + "  istio-canary:slackWebhookUrl: https://hooks.slack.com/services/leaked\n")
    result = canary(capsys, "notify", "-C", repo.work)
    assert result.code == EXIT_REFUSED
    assert "plain text" in result.err


def test_secret_webhook_is_read_through_the_pulumi_cli(capsys, repo, monkeypatch, tmp_path):
    # A stand-in `pulumi` on PATH: the tool must ask it for the secret rather than read the file.
    with slack() as (url, seen):
        fake = tmp_path / "bin" / "pulumi"
        fake.parent.mkdir()
        fake.write_text(f'#!/bin/sh\n[ "$1 $2 $3" = "config get slackWebhookUrl" ] && echo "{url}/secret-hook"\n')
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
        repo.write_stack(stack_text() + "  istio-canary:slackWebhookUrl:\n    secure: AAABAxyz\n")
        result = canary(capsys, "notify", "-C", repo.work, "--text", "from the secret")
    assert result.code == EXIT_OK, result.err
    assert [request.path for request in seen] == ["/secret-hook"]


def test_promote_notifies(capsys, repo, monkeypatch):
    with slack() as (url, seen):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
        assert canary(capsys, "promote", "-C", repo.work).code == EXIT_OK
    assert "promote podinfo-canary 6.9.0 to 10%" in json.loads(seen[0].body)["text"]


def test_malformed_webhook_url_is_refused(capsys, repo, monkeypatch):
    for url in ("hooks.slack.com/services/x", "file:///etc/passwd"):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
        result = canary(capsys, "notify", "-C", repo.work, "--text", "x")
        assert result.code == EXIT_REFUSED, url
        assert "not an http(s) URL" in result.err
        assert "Traceback" not in result.err


def test_pulumi_config_get_never_reads_our_stdin(repo, tmp_path):
    # The stand-in pulumi answers only when its stdin is /dev/null: inherited, a passphrase prompt would wait.
    with slack() as (url, seen):
        fake = tmp_path / "bin" / "pulumi"
        fake.parent.mkdir()
        fake.write_text(
            '#!/bin/sh\n[ "$(readlink /proc/$$/fd/0)" = /dev/null ] || { echo "stdin is not /dev/null" >&2; exit 1; }\n'
            f'echo "{url}/secret-hook"\n'
        )
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
        repo.write_stack(stack_text() + "  istio-canary:slackWebhookUrl:\n    secure: AAABAxyz\n")
        env = {k: v for k, v in os.environ.items() if k != "SLACK_WEBHOOK_URL"}
        env["PATH"] = f"{fake.parent}{os.pathsep}{env['PATH']}"
        with subprocess.Popen(
            [sys.executable, "-m", "istio_canary", "notify", "-C", str(repo.work), "--text", "hi"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,  # open and never written: what a terminal looks like to a child
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            _out, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_OK, err
    assert [request.path for request in seen] == ["/secret-hook"]
