"""`canary watch-images`: move a line to the newest registry tag its policy allows, as one commit with the digest.

The canary line (default): the newest tag allowed by canaryTagPolicy becomes canaryVersion; the weight stays 0,
so the commit starts a release and sends no user to it. The GA line (`--line ga`, only when gaTagPolicy is set):
the newest tag allowed by gaTagPolicy becomes gaVersion while no release runs (canaryVersion follows when it
equals gaVersion, so no stale "release" of the old version appears). Both refuse while a release is in progress.

"Newer" is the policy's own order (a build number's, a timestamp's), and the pick is Flux's. Two picks are refused
(exit 4, no commit) with the tag named and a filter suggested: tags on which Flux's policy fails (numerical over a
tag that is not a number), and a pick the version key cannot hold (`latest`, a tag no pod can carry as its label).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from istio_canary.actions.watch_images import LINES, WatchImagesRequest, watch_images
from istio_canary.commands import common
from istio_canary.exits import EXIT_INCONCLUSIVE, EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from istio_canary.registry import DEFAULT_TIMEOUT_S

HELP = "move canaryVersion (or gaVersion) to the newest tag its policy allows"
EXITS = (EXIT_OK, EXIT_INCONCLUSIVE, EXIT_UNAVAILABLE, EXIT_REFUSED, EXIT_INTERNAL)
USES = ("git", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--line", choices=LINES, default="canary", help="which version moves: canary (a new release) or ga (patches)"
    )
    parser.add_argument(
        "--registry-url", help="registry base URL instead of the image's host (http only for 127.0.0.1)"
    )
    parser.add_argument("--page-size", type=int, default=None, help="tags per page to request (n=)")
    parser.add_argument(
        "--timeout",
        type=common.seconds,
        default=DEFAULT_TIMEOUT_S,
        help="seconds per registry operation: the whole tag listing (every page), then the digest",
    )
    parser.add_argument("--dry-run", action="store_true", help="only print what would be picked")


def run(args: argparse.Namespace) -> int:
    out = common.Output(args)
    request = WatchImagesRequest(
        Path(args.repo),
        args.stack,
        line=args.line,
        registry_url=args.registry_url,
        page_size=args.page_size,
        timeout=args.timeout,
        dry_run=args.dry_run,
        publish=common.publish_options(args),
    )
    result = watch_images(request, out)
    out.result(result.to_json())
    return result.exit_code
