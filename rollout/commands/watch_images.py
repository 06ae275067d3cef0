"""`canary watch-images`: bump canaryVersion to the newest registry tag allowed by canaryTagPolicy."""

from __future__ import annotations

import argparse

from rollout import httpclient, tags
from rollout.commands import common
from rollout.exits import EXIT_INCONCLUSIVE, EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from rollout.registry import DEFAULT_TIMEOUT_S, Registry, parse_image

HELP = "bump canaryVersion to the newest allowed tag"
EXITS = (EXIT_OK, EXIT_INCONCLUSIVE, EXIT_UNAVAILABLE, EXIT_REFUSED, EXIT_INTERNAL)
USES = ("git", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry-url", help="registry base URL instead of the image's host (http only for 127.0.0.1)"
    )
    parser.add_argument("--page-size", type=int, default=None, help="tags per page to request (n=)")
    parser.add_argument("--timeout", type=common.seconds, default=DEFAULT_TIMEOUT_S, help="seconds per whole request")
    parser.add_argument("--dry-run", action="store_true", help="only print what would be picked")


def run(args: argparse.Namespace) -> int:
    out = common.Output(args)
    with common.load(args, write=not args.dry_run) as ctx:
        app, policy = ctx.view.app, ctx.view.release.tag_policy
        ref = parse_image(app.image, args.registry_url)
        found = Registry(ref.base_url, timeout=args.timeout).tags(ref.name, page_size=args.page_size)
        newest = tags.newest(policy, found, app.canary_version)
        result = {"stack": ctx.stack_name, "current": app.canary_version, "policy": policy, "tags_seen": len(found)}
        if newest is None:
            out.say(f"no tag of {app.image} newer than {app.canary_version} matches {policy} ({len(found)} tags seen)")
            out.result({**result, "action": "none", "newest": None, "commits": []})
            return EXIT_INCONCLUSIVE
        out.say(f"{app.image}: {newest} is newer than canary {app.canary_version} and matches {policy}")
        if args.dry_run:
            out.result({**result, "action": "dry-run", "newest": newest, "commits": []})
            return EXIT_OK
        if app.canary_weight != 0:
            raise common.Refused(
                f"a release of {app.canary_version} is in progress at {app.canary_weight}%; "
                "finish or roll back before a new canary version",
                EXIT_INCONCLUSIVE,
            )
        ctx.stack.set("canaryVersion", newest)
        subject = f"canary: new canary image {app.name} {newest} (was {app.canary_version}, policy {policy})"
        source = f"{httpclient.redact(ref.base_url)} ({ref.name})"
        common.commit(ctx, out, subject, f"Tags listed from {source}: {len(found)} tags.")
        common.publish(ctx, args, out, f":package: {subject}")
        out.result({**result, "action": "bump", "newest": newest, **ctx.recorded(), "pushed": bool(args.push)})
    return EXIT_OK
