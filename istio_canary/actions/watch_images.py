"""Watch images: move a line to the newest registry tag its policy allows, as one commit with the digest.

The canary line: the newest tag allowed by canaryTagPolicy becomes canaryVersion; the weight stays 0, so the
commit starts a release and sends no user to it. The GA line (only when gaTagPolicy is set): the newest tag allowed
by gaTagPolicy becomes gaVersion while no release runs (canaryVersion follows when it equals gaVersion). Both refuse
while a release is in progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from istio_canary import credentials, httpclient
from istio_canary.actions import context
from istio_canary.actions.commit import commit
from istio_canary.actions.context import Context, Recorded
from istio_canary.actions.errors import Refused, typed
from istio_canary.actions.progress import TO_STDERR, Progress
from istio_canary.actions.publish import PublishOptions, publish
from istio_canary.exits import EXIT_INCONCLUSIVE, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from istio_canary.registry import DEFAULT_TIMEOUT_S, Registry, parse_image
from istio_canary.release.settings import PROJECT, ConfigError
from istio_canary.release.tagpolicy import NoTagError, scanned
from istio_canary.stackfile import StackView

LINES = ("canary", "ga")
BUMP, DRY_RUN, NONE = "bump", "dry-run", "none"


@dataclass(frozen=True)
class WatchImagesRequest:
    """What `canary watch-images` is asked: the repository (any directory inside it) and stack, and its flags."""

    repo: Path
    stack: str
    line: str = "canary"  # which version moves: canary (a new release) or ga (patches)
    registry_url: str | None = None  # instead of the image's host (http only for 127.0.0.1)
    page_size: int | None = None  # tags per page to request (n=)
    timeout: float = DEFAULT_TIMEOUT_S  # per registry operation: the whole tag listing, then the digest
    dry_run: bool = False  # only find what would be picked
    publish: PublishOptions = field(default_factory=PublishOptions)


@dataclass(frozen=True)
class WatchImagesResult:
    """BUMP (committed), DRY_RUN (found, not written) or NONE (no newer tag allowed: exit 2)."""

    action: str
    stack: str
    line: str
    key: str  # canaryVersion or gaVersion
    current: str
    policy: str
    tags_seen: int
    credential: str  # where the registry credential came from, or "anonymous"
    newest: str | None = None
    digest: str | None = None
    recorded: Recorded = field(default_factory=Recorded)
    pushed: bool = False

    @property
    def exit_code(self) -> int:
        return EXIT_INCONCLUSIVE if self.action == NONE else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        """The --json object."""
        found = {
            "stack": self.stack,
            "line": self.line,
            "key": self.key,
            "current": self.current,
            "policy": self.policy,
            "tags_seen": self.tags_seen,
            "credential": self.credential,
            "action": self.action,
            "newest": self.newest,
            "digest": self.digest,
        }
        if self.action != BUMP:
            return {**found, "commits": []}
        return {**found, **self.recorded.to_json(), "pushed": self.pushed}


@typed
def watch_images(request: WatchImagesRequest, progress: Progress = TO_STDERR) -> WatchImagesResult:
    """Look for the newest tag the line's policy allows; unless a dry run, commit it (published as asked).
    Refused when the policy cannot order the tags, the pick cannot be held, or a release is in progress (exit 2)."""
    with context.load(request.repo, request.stack, write=not request.dry_run) as ctx:
        app, release = ctx.view.app, ctx.view.release
        line = request.line
        policy = release.canary_tags if line == "canary" else release.ga_tags
        if policy is None:
            raise Refused(f"--line ga needs {PROJECT}:gaTagPolicy (empty: GA moves only by a release)")
        current = app.canary_version if line == "canary" else app.ga_version
        key = "canaryVersion" if line == "canary" else "gaVersion"
        ref = parse_image(app.image, request.registry_url)
        try:
            credential = credentials.find(ref.host)
        except credentials.CredentialError as exc:
            code = EXIT_UNAVAILABLE if isinstance(exc, credentials.CredentialUnavailable) else EXIT_REFUSED
            raise Refused(f"registry credentials for {ref.host}: {exc}", code) from None
        registry = Registry(
            ref.base_url, timeout=request.timeout, credential=credential, looked_in=credentials.sources(ref.host)
        )
        listed = registry.tags(ref.name, page_size=request.page_size)
        found = scanned(listed)  # as Flux's ImageRepository stores them: cosign's .sig tags are no candidates
        try:
            newest = policy.newest(found, current)
        except NoTagError as exc:
            raise Refused(f"{policy} cannot order the {len(found)} tags of {app.image}: {exc}") from None
        seen = (ctx.stack_name, line, key, current, str(policy), len(listed))
        source_of = credential.source if credential else "anonymous"
        if newest is None:
            progress.say(f"no tag of {app.image} newer than {current} is allowed by {policy} ({len(found)} tags seen)")
            return WatchImagesResult(NONE, *seen, source_of)
        _set_version(ctx, line, key, newest, f"{policy} picks {newest!r} from the {len(found)} tags of {app.image}")
        digest = registry.digest(ref.name, newest)
        progress.say(f"{app.image}: {newest} is newer than {line} {current} and allowed by {policy} ({digest})")
        if request.dry_run:
            return WatchImagesResult(DRY_RUN, *seen, source_of, newest, digest)
        _require_no_release(ctx.view, line)
        what = "new canary image" if line == "canary" else "GA image patch"
        subject = f"canary: {what} {app.name} {newest} (was {current}, policy {policy})"
        source = f"{httpclient.redact(ref.base_url)} ({ref.name})"
        body = (
            f"Image: {app.image}:{newest}\nDigest: {digest}\n"
            f"Tags listed from {source}: {len(found)} tags, as {source_of}.\n"
            + ("The canary gets no traffic until the first step is merged." if line == "canary" else "")
        )
        commit(ctx, progress, subject, body)
        publish(ctx, request.publish, progress, f":package: {subject}\n{app.image}@{digest}")
        return WatchImagesResult(BUMP, *seen, source_of, newest, digest, ctx.recorded(), request.publish.push)


def _set_version(ctx: Context, line: str, key: str, newest: str, picked: str) -> None:
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
        raise Refused(
            f"{picked}, but {key} cannot hold it:\n  "
            + "\n  ".join(reasons)
            + f"\nSet {PROJECT}:imageTagFilter to a pattern only the tags this line may run match (^[0-9]+$ for build "
            "numbers, ^v?[0-9]+[.][0-9]+[.][0-9]+$ for releases): the policy then passes the others over"
        ) from None


def _require_no_release(view: StackView, line: str) -> None:
    """A new version never lands under a running release: the numbers being judged would change meaning."""
    app = view.app
    if app.canary_weight != 0:
        raise Refused(
            f"a release of {app.canary_version} is in progress at {app.canary_weight}%; "
            f"finish or roll back before moving the {line} line",
            EXIT_INCONCLUSIVE,
        )
