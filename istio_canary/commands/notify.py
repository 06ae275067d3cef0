"""`canary notify`: post a message (default: the current state) to the Slack webhook; --dry-run prints the payload."""

from __future__ import annotations

import argparse
import json

from istio_canary import notify
from istio_canary.actions.errors import Refused
from istio_canary.commands import common
from istio_canary.exits import EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE

HELP = "post a message to the Slack webhook ($SLACK_WEBHOOK_URL or the secret slackWebhookUrl)"
EXITS = (EXIT_OK, EXIT_UNAVAILABLE, EXIT_REFUSED, EXIT_INTERNAL)
USES = ("json",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", help="message (default: the current release state)")
    parser.add_argument("--dry-run", action="store_true", help="print the JSON payload instead of posting")


def run(args: argparse.Namespace) -> int:
    out = common.Output(args)
    ctx = common.load(args, write=False)
    app = ctx.view.app
    text = args.text or (
        f"{app.name} ({ctx.stack_name}): canary {app.canary_version} at {app.canary_weight}%, GA {app.ga_version}"
    )
    body = notify.payload(text)
    if args.dry_run:
        if out.json:
            out.result({"action": "dry-run", "payload": body})
        else:
            out.say(json.dumps(body, indent=2))
        return EXIT_OK
    try:
        url = notify.webhook_url(ctx.repo, ctx.stack_name, ctx.stack.raw(notify.SECRET_KEY))
        if url:
            notify.check_url(url)
    except notify.NotifyError as exc:
        raise Refused(str(exc)) from None
    if not url:
        raise Refused(f"no webhook: set ${notify.ENV_VAR} or the secret {notify.SECRET_KEY}")
    try:
        notify.post(url, body)
    except notify.NotifyError as exc:
        raise Refused(str(exc), EXIT_UNAVAILABLE) from None
    out.say("sent")
    out.result({"action": "sent", "payload": body})
    return EXIT_OK
