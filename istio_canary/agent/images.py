"""The agent's image automation: every interval, while no release runs, each watched line (the canary; GA too
when gaTagPolicy is set) takes the watch-images action (istio_canary/actions/watch_images.py), the one `canary
watch-images` takes for a person or the watch-images workflow.

One proposal per line, not per tag: the branch is `canary/<stack>-image-<line>`. A newer tag that arrives
before the pull request merges is force-pushed onto that branch and the same pull request is retitled, so a
reviewer never finds two competing bumps. A tag already proposed on the branch (open, or closed unmerged by a
reviewer) is not proposed again. With `canaryPromotion: auto` the bump is pushed to main instead.

Contract: `lines(view)` is the pure part (which lines to look at now); `watch(...)` does the Git and Git-host
work through the Git host's client and the notice callable it is given and returns one outcome word per line, for
logs and metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from istio_canary import gitops, safeload
from istio_canary.actions.publish import PublishOptions
from istio_canary.actions.watch_images import WatchImagesRequest, WatchImagesResult, watch_images
from istio_canary.agent import workspace
from istio_canary.agent.attempt import Attempt, attempt
from istio_canary.agent.pulls import PullError, PullRequests
from istio_canary.exits import EXIT_INCONCLUSIVE, EXIT_OK
from istio_canary.release.settings import PROJECT
from istio_canary.stackfile import StackView
from istio_canary.yamledit import EditError, load

log = logging.getLogger("canary.agent")
# What happened to a line this interval.
PROPOSED, UPDATED, ALREADY_PROPOSED, PUSHED, NOTHING_NEW, FAILED = (
    "proposed",
    "updated",
    "already-proposed",
    "pushed",
    "nothing-new",
    "failed",
)


def lines(view: StackView) -> tuple[str, ...]:
    """The lines to look at now: none while a release has traffic (a new version would change what is judged)."""
    if not view.release.watch_images or view.app.canary_weight != 0:
        return ()
    return ("canary", "ga") if view.release.ga_tags is not None else ("canary",)


def branch_for(stack: str, line: str) -> str:
    """The one proposal branch of a line."""
    return f"canary/{stack}-image-{line}"


def proposed_value(repo: Path, branch: str, stack_file: str, key: str) -> str | None:
    """The `key` the remote proposal branch holds now, or None when there is no such branch (or no such key).

    Anyone who can push may have written that branch: its file is read within istio_canary/safeload.py's limits (its
    size asked of git before a byte is read), and one it refuses is logged naming the branch and read as None.
    """
    where = f"{branch}:{stack_file}"
    ref = f"refs/remotes/origin/{branch}:{stack_file}"
    try:
        gitops.run(repo, "fetch", "--quiet", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
        size = int(gitops.run(repo, "cat-file", "-s", ref))
    except (gitops.GitError, ValueError):
        return None  # never pushed, or deleted after its merge
    try:
        if size > safeload.MAX_STACK_BYTES:
            raise EditError(f"larger than {safeload.MAX_STACK_BYTES} bytes; refusing to read it")
        data = gitops.blob(repo, f"refs/remotes/origin/{branch}", stack_file)
        if data is None:
            return None
        value = (load(data.decode("utf-8")).get("config") or {}).get(f"{PROJECT}:{key}")
    except (EditError, UnicodeDecodeError) as exc:
        log.warning("image proposal %s cannot be read: %s", where, str(exc).splitlines()[0])
        return None
    return None if value is None or isinstance(value, dict | list) else str(value)


def _body(found: WatchImagesResult, dashboard_url: str) -> str:
    return (
        "`canary agent` found a new image tag. Merging this runs `pulumi up`; "
        + (
            "the canary gets no traffic until the first step is merged.\n"
            if found.line == "canary"
            else "GA moves to the patch (no release runs).\n"
        )
        + (f"Dashboard: {dashboard_url}\n" if dashboard_url else "")
        + f"\n```\n{found.recorded.message}\n```\n"
    )


def watch(
    stack: str,
    repo: Path,
    view: StackView,
    stack_file: str,
    request: WatchImagesRequest,
    pulls: PullRequests | None,
    notice: Callable[[str], None],
    dashboard_url: str = "",
) -> dict[str, str]:
    """Look at every line `lines(view)` names, each with `request` (its line and publishing set here); the
    outcome of each."""
    outcomes: dict[str, str] = {}
    for line in lines(view):
        outcomes[line] = _line(stack, repo, view, stack_file, replace(request, line=line), pulls, notice, dashboard_url)
    return outcomes


def _line(
    stack: str,
    repo: Path,
    view: StackView,
    stack_file: str,
    request: WatchImagesRequest,
    pulls: PullRequests | None,
    notice: Callable[[str], None],
    dashboard_url: str,
) -> str:
    line = request.line
    if view.release.promotion == "auto" or pulls is None:
        return _outcome(line, attempt(watch_images, replace(request, publish=PublishOptions(push=True))), PUSHED)
    branch = branch_for(stack, line)
    key = "canaryVersion" if line == "canary" else "gaVersion"
    already = proposed_value(repo, branch, stack_file, key)
    workspace.start_branch(repo, branch)
    try:
        done = attempt(watch_images, replace(request, publish=PublishOptions(notify=False)))
        found = done.result
        if done.code != EXIT_OK or found is None or not found.recorded.commits:
            return _outcome(line, done, PROPOSED)
        newest = str(found.newest)
        if already == newest:
            log.info("image %s: %s is already proposed on %s", line, newest, branch)
            return ALREADY_PROPOSED
        workspace.push_branch(repo, branch)
        title, body = str(found.recorded.subject or branch), _body(found, dashboard_url)
        existing = pulls.open_for(branch)
        if existing is not None:
            pulls.update(existing.number, title, body)
            url, outcome = existing.url, UPDATED
        else:
            url, outcome = pulls.create(branch, workspace.BRANCH, title, body), PROPOSED
        log.info("image %s: %s %s (%s)", line, outcome, url, found.digest)
        notice(f":package: {title}\n{view.app.image}@{found.digest}\n{url}")
        return outcome
    except (PullError, gitops.GitError) as exc:
        log.error("image %s: proposal on %s failed: %s", line, branch, exc)
        return FAILED
    finally:
        gitops.run(repo, "checkout", "--quiet", workspace.BRANCH)


def _outcome(line: str, done: Attempt[WatchImagesResult], word: str) -> str:
    found = done.result
    if done.code == EXIT_OK and found is not None and found.recorded.commits:
        log.info("image %s: %s %s (%s)", line, word, found.recorded.subject, found.digest)
        return word
    if done.code == EXIT_INCONCLUSIVE:
        return NOTHING_NEW
    log.warning("image %s: watch-images exited %s: %s", line, done.code, done.error)
    return FAILED
