"""Phase 2 for one judged stack (the loop: istio_canary/agent/loop.py), in a thread of its own on a clone of its own
(`<workdir>.follow-up/<stack>`): the proposal (`canary promote` on a branch plus a pull request through the Git
host's API when `canaryPromotion: pr`, whose lookup happens only now; `canary promote --push` when `auto`), or,
while no release has traffic, new image tags (istio_canary/agent/images.py). It acts only while its clone holds the
stack file as judged; a slow or failing Git host, registry or acceptance check skips this stack's follow-up alone."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

from istio_canary import gitops
from istio_canary.actions.context import Recorded
from istio_canary.actions.metrics_source import MetricsOptions
from istio_canary.actions.promote import PromoteRequest, promote
from istio_canary.actions.publish import PublishOptions
from istio_canary.actions.watch_images import WatchImagesRequest
from istio_canary.agent import images, workspace
from istio_canary.agent.attempt import attempt
from istio_canary.agent.judge import Judged, _deferred, _record_metrics
from istio_canary.agent.metrics import Metrics
from istio_canary.agent.notices import IMAGES, PROPOSAL, Notices, _recovered, _skipped, _sync
from istio_canary.agent.options import Memory, Options
from istio_canary.agent.pulls import PullError, PullRequests
from istio_canary.release import decide, steps
from istio_canary.stackfile import StackView

log = logging.getLogger("canary.agent")
FOLLOW_UPS = ".follow-up"  # `<workdir>.follow-up/<stack>`: one clone per stack for phase 2, beside the workdir's


def branch_for(stack: str, view: StackView, step: steps.Step) -> str:
    """The proposal branch of a step: one per stack, version and target, so a restart finds its own PR."""
    target = "finish" if step.action == steps.FINISH else step.describe()  # 10, 60, mirror, header
    return f"canary/{stack}-{view.app.canary_version}-{target}"


def follow_up(
    options: Options, metrics: Metrics, memory: Memory, notices: Notices, judged: Judged, clone: Path
) -> None:
    """Phase 2 for one judged stack on its own clone: the proposal, or, while no release has traffic, the image
    watch. A proposal's pull request is looked up first, then the clone synced: it acts only while the clone
    holds the stack file as judged, so a pull request merged meanwhile is never proposed again."""
    stack, view, decision = judged.stack, judged.view, judged.decision
    work = PROPOSAL if decision.action == decide.PROPOSE else IMAGES
    pulls = None
    if _deferred(view, decision):
        pulls = _look_up(options, metrics, memory, notices, clone, judged)
        if pulls is None:
            return
    try:
        repo = _sync(options, metrics, notices, clone, stack)
    except gitops.GitError as exc:
        _skipped(metrics, memory, notices, clone, stack, work, "git", str(exc))
        return
    path = repo / judged.stack_file
    if not path.is_file() or path.read_bytes() != judged.text:  # a rollback, a merge, a person: judge it again
        log.info("stack %s changed since it was judged; its %s waits for the next pass", stack, work)
        return
    if decision.action == decide.PROPOSE:
        _propose(options, metrics, memory, notices, repo, judged, pulls)
    else:
        _watch_images(options, metrics, memory, notices, repo, view, judged.stack_file)


def _look_up(
    options: Options, metrics: Metrics, memory: Memory, notices: Notices, clone: Path, judged: Judged
) -> PullRequests | None:
    """The Git host's client when the judged proposal is still to be made (no pull request for it is open);
    None when it is open, or when the lookup failed: then nothing is proposed this pass (never blindly)."""
    stack = judged.stack
    branch = branch_for(stack, judged.view, judged.step)
    try:
        pulls = PullRequests(options.repo_url, options.token or "", options.api_url)
        state = replace(judged.state, proposal_open=pulls.open_for(branch) is not None)
    except PullError as exc:
        _record_metrics(metrics, stack, judged.state, judged.decision)
        _skipped(metrics, memory, notices, clone, stack, PROPOSAL, "git-host", f"pull requests of {branch}: {exc}")
        return None
    decision = decide.decide(state)
    _record_metrics(metrics, stack, state, decision)
    if decision.action != decide.PROPOSE:
        _recovered(memory, PROPOSAL)
        log.info("stack %s: %s", stack, decision.why)
        return None
    return pulls


def _propose(
    options: Options,
    metrics: Metrics,
    memory: Memory,
    notices: Notices,
    repo: Path,
    judged: Judged,
    pulls: PullRequests | None,
) -> None:
    stack, view, step = judged.stack, judged.view, judged.step
    finish = step.action == steps.FINISH
    # The gate judges the same traffic the agent did: the step since it went live in the cluster.
    chosen = MetricsOptions(prometheus=options.prometheus_url, step_age_s=judged.state.seconds_live)
    request = PromoteRequest(repo, stack, finish=finish, one_commit=finish, metrics=chosen)
    if pulls is None:  # canaryPromotion: auto
        done = attempt(promote, replace(request, publish=PublishOptions(push=True)))
        recorded = done.result.recorded if done.result else Recorded()
        log.info("promote exited %s: %s", done.code, recorded.subject or done.error)
        if recorded.commits:
            metrics.last_commit.labels(stack).set(time.time())
            _recovered(memory, PROPOSAL)
        elif done.code != 0:
            _skipped(metrics, memory, notices, repo, stack, PROPOSAL, done.exit_name, str(done.error))
        return
    branch = branch_for(stack, view, step)
    workspace.start_branch(repo, branch)
    try:
        done = attempt(promote, replace(request, publish=PublishOptions(notify=False)))
        if done.result is None or not done.result.recorded.commits:
            log.info("no proposal: promote exited %s: %s", done.code, done.error)
            if done.code != 0:
                _skipped(metrics, memory, notices, repo, stack, PROPOSAL, done.exit_name, str(done.error))
            return
        recorded = done.result.recorded
        workspace.push_branch(repo, branch)
        body = (
            "`canary agent` proposes this step after its own analysis; merging it runs `pulumi up`.\n"
            + (f"Dashboard: {options.dashboard_url}\n" if options.dashboard_url else "")
            + f"\n```\n{recorded.message}\n```\n"
        )
        url = pulls.create(branch, workspace.BRANCH, str(recorded.subject or branch), body)
        metrics.last_commit.labels(stack).set(time.time())
        _recovered(memory, PROPOSAL)
        log.info("proposed %s: %s", branch, url)
        notices.send(repo, stack, f":arrow_up: proposed: {recorded.subject} {url}")
    except PullError as exc:
        _skipped(metrics, memory, notices, repo, stack, PROPOSAL, "git-host", f"{branch}: {exc}")
    except gitops.GitError as exc:
        _skipped(metrics, memory, notices, repo, stack, PROPOSAL, "git", f"{branch}: {exc}")
    finally:
        gitops.run(repo, "checkout", "--quiet", workspace.BRANCH)


def _watch_images(
    options: Options,
    metrics: Metrics,
    memory: Memory,
    notices: Notices,
    repo: Path,
    view: StackView,
    stack_file: str,
) -> None:
    stack = options.stack
    request = WatchImagesRequest(repo, stack, registry_url=options.registry_url)
    try:
        pulls = (
            PullRequests(options.repo_url, options.token or "", options.api_url)
            if view.release.promotion == "pr"
            else None
        )
    except PullError as exc:
        _skipped(metrics, memory, notices, repo, stack, IMAGES, "git-host", str(exc))
        return
    outcomes = images.watch(
        stack,
        repo,
        view,
        stack_file,
        request,
        pulls,
        lambda text: notices.send(repo, stack, text),
        options.dashboard_url,
    )
    for line, outcome in outcomes.items():
        metrics.image_checks.labels(stack, line, outcome).inc()
        if outcome in (images.PROPOSED, images.UPDATED, images.PUSHED):
            metrics.last_commit.labels(stack).set(time.time())
    if images.FAILED in outcomes.values():
        failed = ", ".join(line for line, outcome in outcomes.items() if outcome == images.FAILED)
        _skipped(metrics, memory, notices, repo, stack, IMAGES, "failed", f"image line(s) {failed} (see the log)")
    else:
        _recovered(memory, IMAGES)


class FollowUp:
    """Phase 2 of one stack, in a thread of its own on a clone of its own (`<workdir>.follow-up/<stack>`),
    so a hanging Git host, registry or acceptance check holds nothing but this stack's proposals and image bumps."""

    def __init__(self, options: Options, metrics: Metrics, memory: Memory, notices: Notices) -> None:
        self.options, self.metrics, self.memory, self.notices = options, metrics, memory, notices
        self.clone = options.workdir.with_name(options.workdir.name + FOLLOW_UPS) / options.stack
        self.thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, judged: Judged) -> None:
        self.thread = threading.Thread(
            target=self._run, args=(judged,), name=f"canary-follow-up-{judged.stack}", daemon=True
        )
        self.thread.start()

    def join(self, timeout: float) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self, judged: Judged) -> None:
        try:
            follow_up(self.options, self.metrics, self.memory, self.notices, judged, self.clone)
        except Exception as exc:  # noqa: BLE001 - one stack's follow-up must not end the agent
            self.metrics.errors.labels(judged.stack).inc()
            work = PROPOSAL if judged.decision.action == decide.PROPOSE else IMAGES
            detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            _skipped(self.metrics, self.memory, self.notices, self.clone, judged.stack, work, "error", detail)


def _needs_follow_up(judged: Judged) -> bool:
    """Is there phase-2 work: a proposal, or new image tags to look for?"""
    if judged.lenient:
        return False
    if judged.decision.action == decide.PROPOSE:
        return True
    return judged.decision.action != decide.ROLLBACK and bool(images.lines(judged.view))
