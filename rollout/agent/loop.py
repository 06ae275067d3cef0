"""The agent's loop: every interval, as the leader, sync Git, read the live state, derive the verdict history,
decide, and act through the same `canary` commands a person runs (so every decision is the same commit, with
the same evidence, under the same lock and validation).

Acting: a rollback is `canary rollback --push` to main. A proposal is `canary promote` on a branch pushed to
the remote, plus a pull request through the Git host's API (`canaryPromotion: pr`), or `canary promote --push`
straight to main (`auto`). While no release has traffic, new image tags are proposed the same way
(rollout/agent/images.py). Nothing but Git and the Git host is written; the cluster is only read.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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


def branch_for(stack: str, view: StackView, step: steps.Step) -> str:
    """The proposal branch of a step: one per stack, version and target, so a restart finds its own PR."""
    target = "finish" if step.action == steps.FINISH else step.describe()  # 10, 60, mirror, header
    return f"canary/{stack}-{view.app.canary_version}-{target}"


def _canary(args: list[str]) -> tuple[int, dict[str, Any]]:
    """Run a `canary` command in-process; its exit code and its --json object."""
    from rollout.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*args, "--json"])
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


def iterate(
    options: Options, metrics: Metrics, memory: Memory, now: float | None = None, synced: Path | None = None
) -> decide.Decision | None:
    """One pass of the loop; None when this agent is not the leader or the stack cannot be read. `synced`: the
    clone, already reset to the remote's main by the caller in this pass (else it is synced here)."""
    from rollout.commands.common import prometheus as choose_prometheus

    stack_name = options.stack
    if options.kube is not None and options.lease_namespace:
        # Held for three intervals: renewed every interval, it lapses only when the agent stops.
        lease_name = agent_lease_name(options.lease_stack or stack_name)
        lease = Lease(options.kube, options.lease_namespace, lease_name, options.identity, memory.lease_s)
        leader = lease.acquire()
        metrics.leader.labels(stack_name).set(1 if leader else 0)
        if not leader:
            return None
    repo = synced or workspace.sync(options.repo_url, options.workdir)
    try:
        stack = StackFile.for_stack(repo, stack_name)
        view = stack.view()
    except ConfigError as exc:
        log.error("stack %s cannot be read: %s", stack_name, exc)
        return None
    memory.interval_s = duration_seconds(view.release.interval)
    memory.lease_s = max(15, int(3 * memory.interval_s))
    now = now if now is not None else time.time()
    # The same choice (and credential rules) as --prometheus / $PROMETHEUS_URL / prometheusUrl in every command.
    chosen = argparse.Namespace(prometheus=options.prometheus_url, timeout=PROMETHEUS_TIMEOUT_S)
    prometheus = choose_prometheus(chosen, view, required=True)
    state = _state(options, repo, view, stack, now, prometheus)
    step = decide.plan(state)
    pulls = (
        PullRequests(options.repo_url, options.token or "", options.api_url) if view.release.promotion == "pr" else None
    )
    if pulls and step.to is not None and step.action in (steps.PROMOTE, steps.FINISH):
        try:
            state = replace(state, proposal_open=pulls.open_for(branch_for(stack_name, view, step)) is not None)
        except PullError as exc:
            log.warning("cannot list pull requests: %s", exc)
    decision = decide.decide(state)
    _record_metrics(metrics, stack_name, state, decision)
    log.info(
        "stack %s: %s%% in Git, %s%% live, verdicts %s -> %s (%s)",
        stack_name,
        state.weight,
        state.live.canary_weight,
        ",".join(state.history),
        decision.action,
        decision.why,
    )
    _act(options, metrics, memory, repo, view, step, decision, pulls)
    if decision.action not in (decide.ROLLBACK, decide.PROPOSE):  # the view is stale after a push: next interval
        _watch_images(options, metrics, repo, view, stack.path.name, pulls)
    metrics.last_iteration.labels(stack_name).set(time.time())
    return decision


def _watch_images(
    options: Options, metrics: Metrics, repo: Path, view: StackView, stack_file: str, pulls: PullRequests | None
) -> None:
    if not images.lines(view):
        return
    if pulls is None and view.release.promotion == "pr":
        pulls = PullRequests(options.repo_url, options.token or "", options.api_url)
    common = ["-C", str(repo), "--stack", options.stack]
    if options.registry_url:
        common += ["--registry-url", options.registry_url]
    outcomes = images.watch(
        options.stack,
        repo,
        view,
        stack_file,
        common,
        _canary,
        pulls,
        lambda text: _notice(repo, options.stack, text),
        options.dashboard_url,
    )
    for line, outcome in outcomes.items():
        metrics.image_checks.labels(options.stack, line, outcome).inc()
        if outcome in (images.PROPOSED, images.UPDATED, images.PUSHED):
            metrics.last_commit.labels(options.stack).set(time.time())


def _record_metrics(metrics: Metrics, stack: str, state: decide.State, decision: decide.Decision) -> None:
    metrics.set_verdict(stack, state.history[0] if state.history else "none")
    metrics.weight.labels(stack, "git").set(state.weight)
    metrics.weight.labels(stack, "live").set(-1 if state.live.canary_weight is None else state.live.canary_weight)
    metrics.drift.labels(stack).set(1 if decision.drift else 0)
    for shape in ("weights", *SHAPES):  # the live one 1, the others 0, so a panel shows exactly one
        metrics.shape.labels(stack, shape).set(1 if (state.live.shape or "weights") == shape else 0)
    metrics.decisions.labels(stack, decision.action).inc()


def _act(
    options: Options,
    metrics: Metrics,
    memory: Memory,
    repo: Path,
    view: StackView,
    step: steps.Step,
    decision: decide.Decision,
    pulls: PullRequests | None,
) -> None:
    stack = options.stack
    common = ["-C", str(repo), "--stack", stack]
    if options.prometheus_url:
        common += ["--prometheus", options.prometheus_url]
    if decision.drift and "drift" not in memory.noticed:
        memory.noticed.add("drift")
        _notice(repo, stack, f":warning: {view.app.name} ({stack}): {decision.why}")
    elif not decision.drift:
        memory.noticed.discard("drift")
    if decision.action == decide.NOTICE:
        if "silence" not in memory.noticed:
            memory.noticed.add("silence")
            _notice(
                repo, stack, f":hourglass: {view.app.name} ({stack}): {decision.why}; not promoting, not rolling back"
            )
        return
    memory.noticed.discard("silence")
    if decision.action == decide.ROLLBACK:
        code, data = _canary(["rollback", *common, "--push", "--reason", f"canary agent: {decision.why}"])
        log.info("rollback exited %s: %s", code, data.get("subject") or data.get("error"))
        if data.get("commits"):
            metrics.last_commit.labels(stack).set(time.time())
        return
    if decision.action != decide.PROPOSE:
        return
    finish = ["--finish", "--one-commit"] if step.action == steps.FINISH else []
    if view.release.promotion == "auto":
        code, data = _canary(["promote", *common, *finish, "--push"])
        log.info("promote exited %s: %s", code, data.get("subject") or data.get("error"))
        if data.get("commits"):
            metrics.last_commit.labels(stack).set(time.time())
        return
    branch = branch_for(stack, view, step)
    workspace.start_branch(repo, branch)
    try:
        code, data = _canary(["promote", *common, *finish, "--no-notify"])
        if code != 0 or not data.get("commits"):
            log.info("no proposal: promote exited %s: %s", code, data.get("error"))
            return
        workspace.push_branch(repo, branch)
        body = (
            "`canary agent` proposes this step after its own analysis; merging it runs `pulumi up`.\n"
            + (f"Dashboard: {options.dashboard_url}\n" if options.dashboard_url else "")
            + f"\n```\n{data.get('message', '')}\n```\n"
        )
        assert pulls is not None  # built in iterate() whenever canaryPromotion is pr
        url = pulls.create(branch, workspace.BRANCH, str(data.get("subject") or branch), body)
        metrics.last_commit.labels(stack).set(time.time())
        log.info("proposed %s: %s", branch, url)
        _notice(repo, stack, f":arrow_up: proposed: {data.get('subject')} {url}")
    except (PullError, gitops.GitError) as exc:
        log.error("proposal %s failed: %s", branch, exc)
    finally:
        gitops.run(repo, "checkout", "--quiet", workspace.BRANCH)


def _notice(repo: Path, stack: str, text: str) -> None:
    notify.send(text, repo, stack, None)


def run(options: Options, metrics: Metrics, iterations: int | None = None) -> int:
    """Loop until stopped (or for `iterations` passes); an iteration that raises is logged and counted. Each
    pass serves every stack `fleet.served()` names, one after another, under this agent's one Lease."""
    memories: dict[str, Memory] = {}
    workspace.use_token(options.repo_url, options.token)
    done = 0
    while iterations is None or done < iterations:
        started = time.monotonic()
        try:
            clone = workspace.sync(options.repo_url, options.workdir)
            repo: Path | None = clone
            stacks = fleet.served(clone, options.stack)
        except Exception as exc:  # noqa: BLE001 - a failed fetch is retried at the next pass
            metrics.errors.labels(options.stack).inc()
            log.error("sync failed: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            stacks = []
        for stack in stacks:
            memory = memories.setdefault(stack, Memory())
            try:
                # Keeps memory.interval_s to the stack it read. The first stack uses this pass's sync (one fetch
                # an interval, as before the fleet); each later one syncs again, so it never builds on what an
                # earlier stack left in the clone (a commit whose push failed).
                synced, repo = repo, None
                iterate(replace(options, stack=stack, lease_stack=options.stack), metrics, memory, synced=synced)
            except Exception as exc:  # noqa: BLE001 - one bad iteration must not end the agent
                metrics.errors.labels(stack).inc()
                log.error(
                    "iteration of %s failed: %s: %s",
                    stack,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                )
        done += 1
        if iterations is not None and done >= iterations:
            break
        interval = min((memories[stack].interval_s for stack in stacks), default=Memory().interval_s)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    return 0


def identity() -> str:
    """This agent's name in the Lease: the pod name (HOSTNAME in Kubernetes) and the process id."""
    return f"{os.environ.get('HOSTNAME') or os.uname().nodename}-{os.getpid()}"
