"""The agent's loop: every interval, as the leader, sync Git, and serve each stack in two phases, acting through
the same `canary` commands a person runs (so every decision is the same commit, with the same evidence, under the
same lock and validation).

Phase 1, the rollback path, on the agent's own clone (synced once a pass): each stack is judged in a thread of
its own (read it, read the live state, derive the verdict history, decide) and, when the verdict is a rollback,
commits and pushes it at once (`canary rollback --push` to main; the commits of two stacks take turns on the
clone). It depends on nothing else: no pull-request lookup, image watch, acceptance check, Slack notice or other
stack's proposal comes before it, and a stack whose Prometheus drips delays no other stack's judgment (its own
is skipped while it runs on). Every judgment of a pass ends (or the interval does) before any stack's phase 2
begins.

Phase 2, the follow-up, per stack in a thread of its own on a clone of its own (`<workdir>.follow-up/<stack>`:
beside the workdir, never in it, so a rebuild of one clone never moves another's), started once phase 1 is done for
every stack: notices, the proposal (`canary promote` on a branch plus a pull request through the Git host's API
when `canaryPromotion: pr`, whose lookup happens only now; `canary promote --push` when `auto`), and, while no
release has traffic, new image tags (rollout/agent/images.py). A slow or failing Git host, registry, acceptance
check or webhook only skips that stack's own follow-up, counted in canary_agent_skipped_total{stack,work,reason}
with one notice; a follow-up still running at the next pass is skipped for that pass, and the next phase 1 runs
on time whatever it does. Slack notices go out from a thread of their own.

Liveness (rollout/agent/metrics.py): every pass counts, for the stack the agent was started for; a judgment that
runs for longer than the loop may look stuck fails /healthz too.

Nothing but Git and the Git host is written; the cluster is only read.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from components.names import agent_lease_name, duration_seconds
from components.shapes import SHAPES
from rollout import gitops, notify, steps
from rollout.agent import decide, fleet, history, images, live, workspace
from rollout.agent.lease import Lease
from rollout.agent.metrics import Metrics
from rollout.agent.pulls import PullError, PullRequests
from rollout.stackfile import StackFile, StackView
from stacks.settings import PROJECT, ConfigError

log = logging.getLogger("canary.agent")
PROMETHEUS_TIMEOUT_S = 10.0
FOLLOW_UPS = ".follow-up"  # `<workdir>.follow-up/<stack>`: one clone per stack for phase 2, beside the workdir's
JOIN_TIMEOUT_S = 120.0
AWAIT_POLL_S = 0.1  # how often the loop looks again at the judgments it waits for  # how long `--iterations` waits for the last follow-ups before it returns
MAX_QUEUED_NOTICES = 100
# What skipped work is counted as (canary_agent_skipped_total{work}).
JUDGE, ROLLBACK_WORK, PROPOSAL, IMAGES, NOTICE = "judge", "rollback", "proposal", "images", "notice"


@dataclass
class Options:
    """How one agent runs; see `canary agent --help`."""

    stack: str
    repo_url: str
    workdir: Path
    token: str | None
    api_url: str
    prometheus_url: str | None
    kube: Any  # kubernetes.client.ApiClient, or None: then Git is taken as live and there is no Lease
    identity: str
    lease_namespace: str | None
    dashboard_url: str = ""
    registry_url: str | None = None  # the image registry's base URL instead of the image's host (tests)
    lease_stack: str = ""  # whose Lease this agent holds: the stack it was started for ("" = `stack`)


@dataclass
class Memory:
    """What the loop keeps between iterations; only to avoid repeating a Slack notice, never to decide."""

    noticed: set[str] = field(default_factory=set)
    interval_s: float = 60.0  # analysisInterval of the last stack read (60 s until one has been read)
    lease_s: int = 180  # three of those intervals


@dataclass(frozen=True)
class Judged:
    """Phase 1's reading of one stack, which its phase 2 works from."""

    stack: str
    view: StackView
    stack_file: str  # its name, e.g. Pulumi.shop.yaml
    text: bytes  # the file as judged: phase 2 acts only while its own clone holds the same bytes
    state: decide.State
    step: steps.Step
    decision: decide.Decision
    lenient: bool = False  # judged on the rollback's reading only (the file fails full validation): no follow-up


def branch_for(stack: str, view: StackView, step: steps.Step) -> str:
    """The proposal branch of a step: one per stack, version and target, so a restart finds its own PR."""
    target = "finish" if step.action == steps.FINISH else step.describe()  # 10, 60, mirror, header
    return f"canary/{stack}-{view.app.canary_version}-{target}"


class _ThreadStdout(io.TextIOBase):
    """sys.stdout while the agent runs `canary` commands in-process from several threads: each call captures its
    own thread's output (contextlib.redirect_stdout swaps one global, so two threads would read each other's)."""

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self.local = threading.local()

    def _target(self) -> TextIO:
        return getattr(self.local, "buffer", None) or self.fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()


_STDOUT_LOCK = threading.Lock()


def _thread_stdout() -> _ThreadStdout:
    with _STDOUT_LOCK:
        if not isinstance(sys.stdout, _ThreadStdout):
            sys.stdout = _ThreadStdout(sys.stdout)
        return sys.stdout


def _canary(args: list[str]) -> tuple[int, dict[str, Any]]:
    """Run a `canary` command in-process; its exit code and its --json object."""
    from rollout.cli import main

    out, stdout = io.StringIO(), _thread_stdout()
    stdout.local.buffer = out
    try:
        code = main([*args, "--json"])
    finally:
        stdout.local.buffer = None
    try:
        data = json.loads(out.getvalue() or "{}")
    except ValueError:
        data = {}
    return code, data if isinstance(data, dict) else {}


def _state(
    options: Options, repo: Path, view: StackView, stack: StackFile, now: float, prometheus: Any
) -> decide.State:
    from rollout.commands.common import Context
    from rollout.commands.status import rolled_back as rolled_back_subject  # the CLI's own reading of Git

    app, rel = view.app, view.release
    interval_s = duration_seconds(rel.interval)
    live_state = (
        live.read(options.kube, app.namespace, app.name)
        if options.kube is not None
        else decide.Live(app.canary_weight, app.ga_version, True, app.canary_version, app.canary_shape)
    )
    ctx = Context(repo, options.stack, stack, view)
    # The step's commit: the last one that moved the weight or the shape (a shape step keeps the weight at 0).
    since_commit = workspace.seconds_since_weight_changed(
        repo, stack.path.name, now, f"{PROJECT}:canary(Weight|Shape):"
    )
    # Live since the routing object was last applied, and never before the commit that asked for this step;
    # with no cluster read, the commit is taken as applied.
    since_apply = now - live_state.since if options.kube is not None and live_state.since is not None else None
    seconds_live = since_commit if since_apply is None else min(since_commit, since_apply)
    window_s = duration_seconds(history.window(rel))
    depths = history.depths(rel, decide.live_instants(seconds_live, interval_s, window_s))
    found = history.history(view, prometheus, now, interval_s, depths)
    state = decide.State(
        weight=app.canary_weight,
        schedule=rel.steps,
        shapes=rel.shapes,
        shape=app.canary_shape,
        ga_version=app.ga_version,
        canary_version=app.canary_version,
        rolled_back=bool(rolled_back_subject(ctx, required=False)),
        live=live_state,
        history=found.verdicts,
        seconds_since_step=since_commit,
        interval_s=interval_s,
        threshold=rel.threshold,
        iterations=rel.iterations,
        notice_after_s=duration_seconds(rel.notice_after),
        drift_grace_s=duration_seconds(rel.drift_grace),
        proposal_open=False,
        error_limit=rel.error_limit,
        errors=found.errors,
        seconds_live=seconds_live,
        window_s=window_s,
    )
    return state


def _sync(options: Options, metrics: Metrics, notices: Notices, path: Path, stack: str) -> Path:
    """workspace.sync, with a clone found unusable and rebuilt counted and noticed."""

    def repaired(repair: workspace.Repair) -> None:
        metrics.repairs.labels(stack).inc()
        log.warning("clone %s was unusable (%s): rebuilt from the origin", repair.path, repair.reason)
        notices.send(path, stack, f":wrench: canary agent ({stack}): its clone was unusable ({repair.reason}); rebuilt")

    return workspace.sync(options.repo_url, path, on_repair=repaired)


def _lead(options: Options, metrics: Metrics, lease_s: int) -> bool:
    """Take or renew the agent's one Lease for this pass; True without a cluster (then there is one agent)."""
    if options.kube is None or not options.lease_namespace:
        return True
    # Held for three intervals: renewed every pass, it lapses only when the agent stops.
    name = agent_lease_name(options.lease_stack or options.stack)
    leader = Lease(options.kube, options.lease_namespace, name, options.identity, lease_s).acquire()
    metrics.leader.labels(options.stack).set(1 if leader else 0)
    return leader


def _read(stack: StackFile) -> tuple[StackView, bool]:
    """The stack's view, and whether it is only the lenient one `canary rollback` reads (the file fails the
    program's full validation, say a typo in an unrelated key: it can still be judged and rolled back, but
    nothing is proposed from it). ConfigError when not even that can be read."""
    try:
        return stack.view(), False
    except ConfigError as full:
        try:
            view, invalid_weight = stack.rollback_view()
        except ConfigError:
            raise full from None
        if invalid_weight is not None:  # a weight the agent cannot judge: nothing to do but report the file
            raise full from None
        log.error("%s; judged for a rollback only", full)
        return view, True


def judge(
    options: Options,
    metrics: Metrics,
    memory: Memory,
    notices: Notices,
    repo: Path,
    now: float | None = None,
    clone_lock: threading.Lock | None = None,
) -> Judged | None:
    """Phase 1 for `options.stack` on the synced clone `repo`: read it, judge it, and when the verdict is a
    rollback, commit and push it now (under `clone_lock`: the judgments of other stacks only read the clone,
    a rollback writes it). None when the stack cannot be judged (counted and noticed once)."""
    from rollout.commands.common import Refused
    from rollout.commands.common import prometheus as choose_prometheus

    stack_name = options.stack
    try:
        stack = StackFile.for_stack(repo, stack_name)
        text = stack.path.read_bytes()
        view, lenient = _read(stack)
    except ConfigError as exc:
        log.error("stack %s cannot be read: %s", stack_name, exc)
        _skipped(metrics, memory, notices, repo, stack_name, JUDGE, "config", str(exc))
        return None
    memory.interval_s = duration_seconds(view.release.interval)
    memory.lease_s = max(15, int(3 * memory.interval_s))
    now = now if now is not None else time.time()
    # The same choice (and credential rules) as --prometheus / $PROMETHEUS_URL / prometheusUrl in every command.
    chosen = argparse.Namespace(prometheus=options.prometheus_url, timeout=PROMETHEUS_TIMEOUT_S)
    try:
        prometheus = choose_prometheus(chosen, view, required=True)
    except Refused as exc:
        _skipped(metrics, memory, notices, repo, stack_name, JUDGE, "config", str(exc))
        return None
    state = _state(options, repo, view, stack, now, prometheus)
    step = decide.plan(state)
    decision = decide.decide(state)
    if lenient and decision.action != decide.ROLLBACK:
        decision = decide.Decision(decide.NOTHING, None, "the stack file fails validation: nothing is proposed")
    log.info(
        "stack %s: %s%% in Git, %s%% live, verdicts %s -> %s (%s)",
        stack_name,
        state.weight,
        state.live.canary_weight,
        ",".join(state.history),
        decision.action,
        decision.why,
    )
    if not _deferred(view, decision):  # a proposal's decision is recorded once its pull request is looked up
        _record_metrics(metrics, stack_name, state, decision)
    if decision.action == decide.ROLLBACK:
        with clone_lock or contextlib.nullcontext():
            _roll_back(options, metrics, memory, notices, repo, view, decision)
    _notices(memory, notices, repo, stack_name, view, decision)
    metrics.last_iteration.labels(stack_name).set(time.time())
    _recovered(memory, JUDGE)
    return Judged(stack_name, view, stack.path.name, text, state, step, decision, lenient)


def _deferred(view: StackView, decision: decide.Decision) -> bool:
    """Is this decision's metric left to phase 2 (a proposal whose pull request may already be open)?"""
    return decision.action == decide.PROPOSE and view.release.promotion == "pr"


def _roll_back(
    options: Options,
    metrics: Metrics,
    memory: Memory,
    notices: Notices,
    repo: Path,
    view: StackView,
    decision: decide.Decision,
) -> None:
    """`canary rollback --push` to main, now. Its evidence is best-effort and bounded; its Slack notice is queued."""
    stack = options.stack
    reason = f"canary agent: {decision.why}"
    args = ["rollback", "-C", str(repo), "--stack", stack, "--push", "--no-notify", "--reason", reason]
    if options.prometheus_url:
        args += ["--prometheus", options.prometheus_url]
    serving = _serving_replicas(options, view)
    if serving is not None:
        args += ["--ga-min-replicas", str(serving)]
    code, data = _canary(args)
    log.info("rollback exited %s: %s", code, data.get("subject") or data.get("error"))
    if data.get("commits"):
        metrics.last_commit.labels(stack).set(time.time())
        _recovered(memory, ROLLBACK_WORK)
        notices.send(repo, stack, f":rewind: {data.get('subject')} Reason: {reason}")
    elif code != 0:
        _skipped(metrics, memory, notices, repo, stack, ROLLBACK_WORK, _exit_name(code), str(data.get("error")))


def _serving_replicas(options: Options, view: StackView) -> int | None:
    """GA's and the canary's replicas now, read from the cluster when GA is autoscaled (the rollback's GA floor);
    None without a cluster or an autoscaler (`canary rollback` then takes them from the config)."""
    if options.kube is None or not view.app.shape.max_replicas:
        return None
    return live.serving_replicas(options.kube, view.app.namespace, view.app.name)


def _exit_name(code: int) -> str:
    from rollout.exits import BY_CODE

    return BY_CODE[code].name if code in BY_CODE else f"exit-{code}"


def _notices(
    memory: Memory, notices: Notices, repo: Path, stack: str, view: StackView, decision: decide.Decision
) -> None:
    """Drift and "no verdict" notices, once each until the condition clears; queued, never waited for."""
    if decision.drift and "drift" not in memory.noticed:
        memory.noticed.add("drift")
        notices.send(repo, stack, f":warning: {view.app.name} ({stack}): {decision.why}")
    elif not decision.drift:
        memory.noticed.discard("drift")
    if decision.action != decide.NOTICE:
        memory.noticed.discard("silence")
    elif "silence" not in memory.noticed:
        memory.noticed.add("silence")
        notices.send(
            repo, stack, f":hourglass: {view.app.name} ({stack}): {decision.why}; not promoting, not rolling back"
        )


def _skipped(
    metrics: Metrics, memory: Memory, notices: Notices, repo: Path, stack: str, work: str, reason: str, detail: str
) -> None:
    """Count work skipped this pass, log why, and send one notice until the same work succeeds again."""
    metrics.skipped.labels(stack, work, reason).inc()
    detail = detail.splitlines()[0][:300] if detail else reason
    log.warning("stack %s: %s skipped (%s): %s", stack, work, reason, detail)
    if f"skipped:{work}" not in memory.noticed:
        memory.noticed.add(f"skipped:{work}")
        notices.send(repo, stack, f":warning: canary agent ({stack}): {work} skipped ({reason}): {detail}")


def _recovered(memory: Memory, work: str) -> None:
    memory.noticed.discard(f"skipped:{work}")


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
    common = ["-C", str(repo), "--stack", stack]
    if options.prometheus_url:
        common += ["--prometheus", options.prometheus_url]
    finish = ["--finish", "--one-commit"] if step.action == steps.FINISH else []
    if pulls is None:  # canaryPromotion: auto
        code, data = _canary(["promote", *common, *finish, "--push"])
        log.info("promote exited %s: %s", code, data.get("subject") or data.get("error"))
        if data.get("commits"):
            metrics.last_commit.labels(stack).set(time.time())
            _recovered(memory, PROPOSAL)
        elif code != 0:
            _skipped(metrics, memory, notices, repo, stack, PROPOSAL, _exit_name(code), str(data.get("error")))
        return
    branch = branch_for(stack, view, step)
    workspace.start_branch(repo, branch)
    try:
        code, data = _canary(["promote", *common, *finish, "--no-notify"])
        if code != 0 or not data.get("commits"):
            log.info("no proposal: promote exited %s: %s", code, data.get("error"))
            if code != 0:
                _skipped(metrics, memory, notices, repo, stack, PROPOSAL, _exit_name(code), str(data.get("error")))
            return
        workspace.push_branch(repo, branch)
        body = (
            "`canary agent` proposes this step after its own analysis; merging it runs `pulumi up`.\n"
            + (f"Dashboard: {options.dashboard_url}\n" if options.dashboard_url else "")
            + f"\n```\n{data.get('message', '')}\n```\n"
        )
        url = pulls.create(branch, workspace.BRANCH, str(data.get("subject") or branch), body)
        metrics.last_commit.labels(stack).set(time.time())
        _recovered(memory, PROPOSAL)
        log.info("proposed %s: %s", branch, url)
        notices.send(repo, stack, f":arrow_up: proposed: {data.get('subject')} {url}")
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
    common = ["-C", str(repo), "--stack", stack]
    if options.registry_url:
        common += ["--registry-url", options.registry_url]
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
        common,
        _canary,
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


def _record_metrics(metrics: Metrics, stack: str, state: decide.State, decision: decide.Decision) -> None:
    metrics.set_verdict(stack, state.history[0] if state.history else "none")
    metrics.weight.labels(stack, "git").set(state.weight)
    metrics.weight.labels(stack, "live").set(-1 if state.live.canary_weight is None else state.live.canary_weight)
    metrics.drift.labels(stack).set(1 if decision.drift else 0)
    for shape in ("weights", *SHAPES):  # the live one 1, the others 0, so a panel shows exactly one
        metrics.shape.labels(stack, shape).set(1 if (state.live.shape or "weights") == shape else 0)
    metrics.decisions.labels(stack, decision.action).inc()


class Notices:
    """Slack notices, posted one after another from a thread of their own: a slow or dead webhook delays no
    rollback and no pass. A full queue drops the notice (counted)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.queue: queue.Queue[tuple[Path, str, str]] = queue.Queue(MAX_QUEUED_NOTICES)
        threading.Thread(target=self._post, name="canary-notices", daemon=True).start()

    def send(self, repo: Path, stack: str, text: str) -> None:
        try:
            self.queue.put_nowait((repo, stack, text))
        except queue.Full:
            self.metrics.skipped.labels(stack, NOTICE, "queue-full").inc()

    def _post(self) -> None:
        while True:
            repo, stack, text = self.queue.get()
            try:
                if os.environ.get(notify.ENV_VAR, "").strip() and not notify.send(text, repo, stack, None):
                    self.metrics.skipped.labels(stack, NOTICE, "failed").inc()
            except Exception as exc:  # noqa: BLE001 - a notice never ends its thread
                log.error("notice for %s failed: %s: %s", stack, type(exc).__name__, exc)
            finally:
                self.queue.task_done()

    def drain(self, timeout: float) -> None:
        """Wait (at most `timeout`) until every queued notice has been tried."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)


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


@dataclass
class Served:
    """One served stack across passes: what the loop remembers, its phase-1 thread and its phase-2 worker."""

    memory: Memory = field(default_factory=Memory)
    judge: threading.Thread | None = None
    judging_since: float = 0.0  # time.time() the running judgment began
    judged: Judged | None = None  # what the last judgment read (None: it could not judge)
    follow_up: FollowUp | None = None

    @property
    def judging(self) -> bool:
        return self.judge is not None and self.judge.is_alive()


def _judge_in_thread(
    options: Options, metrics: Metrics, served: Served, notices: Notices, repo: Path, clone_lock: threading.Lock
) -> None:
    stack = options.stack
    try:
        served.judged = judge(options, metrics, served.memory, notices, repo, clone_lock=clone_lock)
    except Exception as exc:  # noqa: BLE001 - one stack that cannot be judged must not stop the others
        metrics.errors.labels(stack).inc()
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log.error("iteration of %s failed: %s", stack, detail)
        _skipped(metrics, served.memory, notices, repo, stack, JUDGE, "error", detail)


def _phase_one(
    options: Options, metrics: Metrics, fleet_: dict[str, Served], notices: Notices, clone_lock: threading.Lock
) -> tuple[list[str], list[str]]:
    """Sync the agent's clone, find the stacks it serves, and start judging each in a thread of its own (a
    judgment still running from an earlier pass is left to finish: that stack is skipped this pass). The stacks
    served, and those whose judgment started now."""
    try:
        with clone_lock:  # never under a rollback's commit and push
            clone = _sync(options, metrics, notices, options.workdir, options.stack)
        found = fleet.survey(clone, options.stack)
    except Exception as exc:  # noqa: BLE001 - a failed fetch is retried at the next pass
        metrics.errors.labels(options.stack).inc()
        log.error("sync failed: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return [], []
    for name, why in found.skipped.items():  # a stack file that cannot be read stops no other stack
        _skipped(metrics, fleet_.setdefault(name, Served()).memory, notices, clone, name, JUDGE, "unreadable", why)
    started = []
    for stack in found.served:
        served = fleet_.setdefault(stack, Served())
        if served.judging:
            since = time.time() - served.judging_since
            _skipped(metrics, served.memory, notices, clone, stack, JUDGE, "busy", f"still judging after {since:.0f}s")
            continue
        served.judged, served.judging_since = None, time.time()
        served.judge = threading.Thread(
            target=_judge_in_thread,
            args=(
                replace(options, stack=stack, lease_stack=options.stack),
                metrics,
                served,
                notices,
                clone,
                clone_lock,
            ),
            name=f"canary-judge-{stack}",
            daemon=True,
        )
        served.judge.start()
        started.append(stack)
    return found.served, started


def _phase_two(
    options: Options, metrics: Metrics, fleet_: dict[str, Served], notices: Notices, stacks: list[str]
) -> None:
    """Start the follow-up of each stack judged this pass that has work; one still running from an earlier pass
    skips this one. A stack whose judgment has not finished has none this pass."""
    for stack in stacks:
        served = fleet_[stack]
        reading = served.judged
        if served.judging or reading is None or not _needs_follow_up(reading):
            continue
        if served.follow_up is None:
            served.follow_up = FollowUp(
                replace(options, stack=stack, lease_stack=options.stack), metrics, served.memory, notices
            )
        if served.follow_up.busy:
            if _deferred(reading.view, reading.decision):
                _record_metrics(metrics, stack, reading.state, reading.decision)
            work = PROPOSAL if reading.decision.action == decide.PROPOSE else IMAGES
            _skipped(
                metrics, served.memory, notices, options.workdir, stack, work, "busy", "still at it since a pass ago"
            )
            continue
        served.follow_up.start(reading)


def _await(fleet_: dict[str, Served], judging: list[str], started: float, bound_s: float | None) -> None:
    """Wait for this pass's judgments (and their rollbacks) until they end or the interval is up: the shortest
    interval of the stacks judged, as each judgment reads its stack (60 s before any has). A bounded run
    (`--iterations`) waits up to `bound_s` instead: every pass it asked for is made."""
    while True:
        running = [fleet_[stack] for stack in judging if fleet_[stack].judging]
        if not running:
            return
        limit = bound_s or min((fleet_[stack].memory.interval_s for stack in judging), default=Memory().interval_s)
        left = limit - (time.monotonic() - started)
        if left <= 0:
            return
        thread = running[0].judge
        if thread is not None:
            thread.join(min(left, AWAIT_POLL_S))


def run(options: Options, metrics: Metrics, iterations: int | None = None) -> int:
    """Loop until stopped (or for `iterations` passes). Each pass, under this agent's one Lease: sync, judge every
    stack `fleet.survey()` names in a thread of its own (each rolls back at once when that is its verdict), wait
    for the judgments until the interval is up, then start the follow-ups of those judged (see the module
    docstring). Every pass is counted for the agent's own stack (its /healthz), whichever stacks it served; a
    judgment that runs on for longer than the loop may look stuck makes /healthz fail as well."""
    fleet_: dict[str, Served] = {}
    notices = Notices(metrics)
    clone_lock = threading.Lock()
    workspace.use_token(options.repo_url, options.token)
    _thread_stdout()
    done = 0
    try:
        while iterations is None or done < iterations:
            started = time.monotonic()
            stacks: list[str] = []
            interval = min((served.memory.interval_s for served in fleet_.values()), default=Memory().interval_s)
            try:
                lease_s = max((served.memory.lease_s for served in fleet_.values()), default=Memory().lease_s)
                leader = _lead(options, metrics, lease_s)
            except Exception as exc:  # noqa: BLE001 - an unreadable Lease is "not the leader" this pass
                log.error("lease: %s: %s", type(exc).__name__, exc)
                leader = False
            if leader:
                stacks, judging = _phase_one(options, metrics, fleet_, notices, clone_lock)
                _await(fleet_, judging, started, JOIN_TIMEOUT_S if iterations is not None else None)
                _phase_two(options, metrics, fleet_, notices, judging)
            done += 1
            intervals = [fleet_[stack].memory.interval_s for stack in stacks if stack in fleet_]
            busy = [served.judging_since for served in fleet_.values() if served.judging]
            metrics.passed(options.stack, max(intervals, default=0.0), min(busy, default=0.0))
            if iterations is not None and done >= iterations:
                break
            interval = min(intervals, default=interval)
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        if iterations is not None:  # a bounded run (tests, one-off use) ends with its follow-ups and notices
            for served in fleet_.values():
                if served.follow_up is not None:
                    served.follow_up.join(JOIN_TIMEOUT_S)
            notices.drain(JOIN_TIMEOUT_S)
    return 0


def identity() -> str:
    """This agent's name in the Lease: the pod name (HOSTNAME in Kubernetes) and the process id."""
    return f"{os.environ.get('HOSTNAME') or os.uname().nodename}-{os.getpid()}"
