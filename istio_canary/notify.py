"""Slack incoming-webhook notifications; the webhook URL is a secret and never comes from plain config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from istio_canary import httpclient
from istio_canary.release.settings import PROJECT

ENV_VAR = "SLACK_WEBHOOK_URL"
SECRET_KEY = "slackWebhookUrl"
POST_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 64 * 1024  # Slack answers "ok"
PULUMI_TIMEOUT_S = 30


class NotifyError(RuntimeError):
    """The webhook could not be resolved or the post failed."""


def webhook_url(repo: Path, stack: str, raw_value: object = None) -> str | None:
    """$SLACK_WEBHOOK_URL, else the Pulumi secret `slackWebhookUrl` via the pulumi CLI, else None.

    `raw_value` is the key's value in the stack file: a plain (non-`secure:`) value is refused, because a
    webhook URL in a committed file is a leaked credential.
    """
    url = os.environ.get(ENV_VAR, "").strip()
    if url:
        return url
    if raw_value is None:
        return None
    if not (isinstance(raw_value, dict) and "secure" in raw_value):
        raise NotifyError(
            f"{PROJECT}:{SECRET_KEY} is plain text in the stack file; set it with "
            f"`pulumi config set --secret {SECRET_KEY} <url>` (and rotate the webhook)"
        )
    pulumi = shutil.which("pulumi")
    if not pulumi:
        raise NotifyError(f"{SECRET_KEY} is a Pulumi secret but no pulumi CLI is on PATH; set ${ENV_VAR} instead")
    try:
        done = subprocess.run(
            [pulumi, "config", "get", SECRET_KEY, "--stack", stack, "--cwd", str(repo)],
            capture_output=True,
            stdin=subprocess.DEVNULL,  # a passphrase prompt must fail at once, not wait for a keyboard
            text=True,
            timeout=PULUMI_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise NotifyError(f"`pulumi config get {SECRET_KEY}` took longer than {PULUMI_TIMEOUT_S}s") from None
    if done.returncode != 0:
        raise NotifyError(f"`pulumi config get {SECRET_KEY}` failed: {done.stderr.strip()[:300]}")
    return done.stdout.strip() or None


def escape(text: str) -> str:
    """`text` as Slack shows it literally: its mrkdwn escaping of `&`, `<` and `>` (nothing else needs it). A
    commit subject, a pull-request title, a --reason or a resource name cannot then make a `<!channel>`, a
    `<@U123>` mention or a `<url|text>` link that hides where it goes. Emoji codes, *bold*, `code`, line breaks
    and bare URLs carry no such character and are unchanged; Slack reads `&amp;` in a URL back as `&`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(text: str) -> dict:
    """The JSON body Slack incoming webhooks accept: `text` (mrkdwn) is enough for a one-line event. Every
    notice goes through here, so all of its text is escaped (the tool sends no mention or link of its own)."""
    return {"text": escape(text)}


def check_url(url: str) -> None:
    """A webhook is an http(s) URL with a host and a valid port; anything else (file:, http://[::1) is refused.

    The URL is a credential: messages name the problem, never the value.
    """
    try:
        httpclient.parse_url(url)
    except httpclient.HttpError:
        raise NotifyError("the Slack webhook URL is not an http(s) URL with a host and a valid port") from None


def post(url: str, body: dict, timeout: float | None = None) -> None:
    """POST the payload within `timeout` (POST_TIMEOUT_S by default, read at the call); raise NotifyError on a
    bad URL, a redirect, the deadline, or anything but a 2xx."""
    check_url(url)
    try:
        answer = httpclient.request(
            url,
            method="POST",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            timeout=POST_TIMEOUT_S if timeout is None else timeout,
            max_bytes=MAX_ANSWER_BYTES,
        )
    except httpclient.HttpError as exc:
        raise NotifyError(f"Slack webhook: {exc}") from None
    if not 200 <= answer.status < 300:
        raise NotifyError(f"Slack webhook answered HTTP {answer.status}")


def send(text: str, repo: Path, stack: str, raw_value: object = None, *, dry_run: bool = False) -> bool:
    """Best-effort notification: print a warning instead of raising; True when posted (or printed in dry run)."""
    body = payload(text)
    if dry_run:
        print(json.dumps(body, indent=2))
        return True
    try:
        url = webhook_url(repo, stack, raw_value)
        if not url:
            print(f"notify: no webhook (${ENV_VAR} or secret {SECRET_KEY}); not sent", file=sys.stderr)
            return False
        post(url, body)
    except NotifyError as exc:
        print(f"warning: notification not sent: {exc}", file=sys.stderr)
        return False
    except Exception as exc:  # noqa: BLE001 - a notice must never fail the rollback or promote it reports
        print(f"warning: notification not sent: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return False
    return True
