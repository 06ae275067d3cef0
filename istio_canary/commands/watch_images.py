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

from istio_canary import credentials, httpclient
from istio_canary.commands import common
from istio_canary.exits import EXIT_INCONCLUSIVE, EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from istio_canary.registry import DEFAULT_TIMEOUT_S, Registry, parse_image
from istio_canary.release.settings import PROJECT, ConfigError
from istio_canary.release.tagpolicy import NoTagError, scanned
from istio_canary.stackfile import StackView

HELP = "move canaryVersion (or gaVersion) to the newest tag its policy allows"
EXITS = (EXIT_OK, EXIT_INCONCLUSIVE, EXIT_UNAVAILABLE, EXIT_REFUSED, EXIT_INTERNAL)
USES = ("git", "json")
LINES = ("canary", "ga")


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
    with common.load(args, write=not args.dry_run) as ctx:
        app, release = ctx.view.app, ctx.view.release
        policy = release.canary_tags if args.line == "canary" else release.ga_tags
        if policy is None:
            raise common.Refused(f"--line ga needs {PROJECT}:gaTagPolicy (empty: GA moves only by a release)")
        current = app.canary_version if args.line == "canary" else app.ga_version
        key = "canaryVersion" if args.line == "canary" else "gaVersion"
        ref = parse_image(app.image, args.registry_url)
        try:
            credential = credentials.find(ref.host)
        except credentials.CredentialError as exc:
            code = EXIT_UNAVAILABLE if isinstance(exc, credentials.CredentialUnavailable) else EXIT_REFUSED
            raise common.Refused(f"registry credentials for {ref.host}: {exc}", code) from None
        registry = Registry(
            ref.base_url, timeout=args.timeout, credential=credential, looked_in=credentials.sources(ref.host)
        )
        listed = registry.tags(ref.name, page_size=args.page_size)
        found = scanned(listed)  # as Flux's ImageRepository stores them: cosign's .sig tags are no candidates
        try:
            newest = policy.newest(found, current)
        except NoTagError as exc:
            raise common.Refused(f"{policy} cannot order the {len(found)} tags of {app.image}: {exc}") from None
        result = {
            "stack": ctx.stack_name,
            "line": args.line,
            "key": key,
            "current": current,
            "policy": str(policy),
            "tags_seen": len(listed),
            "credential": credential.source if credential else "anonymous",
        }
        if newest is None:
            out.say(f"no tag of {app.image} newer than {current} is allowed by {policy} ({len(found)} tags seen)")
            out.result({**result, "action": "none", "newest": None, "digest": None, "commits": []})
            return EXIT_INCONCLUSIVE
        _set_version(
            ctx, args.line, key, newest, f"{policy} picks {newest!r} from the {len(found)} tags of {app.image}"
        )
        digest = registry.digest(ref.name, newest)
        out.say(f"{app.image}: {newest} is newer than {args.line} {current} and allowed by {policy} ({digest})")
        if args.dry_run:
            out.result({**result, "action": "dry-run", "newest": newest, "digest": digest, "commits": []})
            return EXIT_OK
        _require_no_release(ctx.view, args.line)
        what = "new canary image" if args.line == "canary" else "GA image patch"
        subject = f"canary: {what} {app.name} {newest} (was {current}, policy {policy})"
        source = f"{httpclient.redact(ref.base_url)} ({ref.name})"
        body = (
            f"Image: {app.image}:{newest}\nDigest: {digest}\n"
            f"Tags listed from {source}: {len(found)} tags, as {result['credential']}.\n"
            + ("The canary gets no traffic until the first step is merged." if args.line == "canary" else "")
        )
        common.commit(ctx, out, subject, body)
        common.publish(ctx, args, out, f":package: {subject}\n{app.image}@{digest}")
        out.result(
            {
                **result,
                "action": "bump",
                "newest": newest,
                "digest": digest,
                **ctx.recorded(),
                "pushed": bool(args.push),
            }
        )
    return EXIT_OK


def _set_version(ctx: common.Context, line: str, key: str, newest: str, picked: str) -> None:
    """Write the pick into the stack file (in memory; the commit saves it) and check that the stack still validates:
    a pick its version key cannot hold is refused here, before the digest is asked for, with what to change."""
    app = ctx.view.app
    ctx.stack.set(key, newest)
    if line == "ga" and app.canary_version == app.ga_version:
        ctx.stack.set("canaryVersion", newest)
    try:
        ctx.stack.view()
    except ConfigError as exc:
        reasons = [row.strip() for row in str(exc).splitlines()[1:]] or [str(exc)]
        raise common.Refused(
            f"{picked}, but {key} cannot hold it:\n  "
            + "\n  ".join(reasons)
            + f"\nSet {PROJECT}:imageTagFilter to a pattern only the tags this line may run match (^[0-9]+$ for build "
            "numbers, ^v?[0-9]+[.][0-9]+[.][0-9]+$ for releases): the policy then passes the others over"
        ) from None


def _require_no_release(view: StackView, line: str) -> None:
    """A new version never lands under a running release: the numbers being judged would change meaning."""
    app = view.app
    if app.canary_weight != 0:
        raise common.Refused(
            f"a release of {app.canary_version} is in progress at {app.canary_weight}%; "
            f"finish or roll back before moving the {line} line",
            EXIT_INCONCLUSIVE,
        )
