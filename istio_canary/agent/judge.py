"""Phase 1 for one stack (the loop: istio_canary/agent/loop.py): read its file (or, when that fails full validation,
the lenient reading `canary rollback` takes), its live state and its verdict history; decide; export the decision's
series; and when the verdict is a rollback, commit and push it at once (`canary rollback --push` to main). What was
read is handed to phase 2 as a Judged."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from istio_canary import gitops
from istio_canary.actions.context import Context, Recorded
from istio_canary.actions.errors import Refused
from istio_canary.actions.metrics_source import STEP_KEYS, MetricsOptions
from istio_canary.actions.metrics_source import prometheus as choose_prometheus
from istio_canary.actions.next_step import rolled_back as rolled_back_subject  # the reading promote and status take
from istio_canary.actions.publish import PublishOptions
from istio_canary.actions.rollback import RollbackRequest, rollback
from istio_canary.agent import history, live
from istio_canary.agent.attempt import attempt
from istio_canary.agent.metrics import Metrics
from istio_canary.agent.notices import JUDGE, ROLLBACK_WORK, Notices, _notices, _recovered, _skipped
from istio_canary.agent.options import Memory, Options
from istio_canary.analysis import Analysis
from istio_canary.release import decide, steps
from istio_canary.release.names import duration_seconds
from istio_canary.release.settings import ConfigError
from istio_canary.release.traffic import SHAPES
from istio_canary.stackfile import StackFile, StackView

log = logging.getLogger("canary.agent")
PROMETHEUS_TIMEOUT_S = 10.0


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


def _state(
    options: Options, repo: Path, view: StackView, stack: StackFile, now: float, prometheus: Any
) -> tuple[decide.State, Analysis | None]:
    """The decision's state, and the newest look's analysis when it could be judged (its evidence is exported)."""
    app, rel = view.app, view.release
    interval_s = rel.interval_s
    live_state = (
        live.read(options.kube, app.namespace, app.name)
        if options.kube is not None
        else decide.Live(app.canary_weight, app.ga_version, True, app.canary_version, app.canary_shape)
    )
    ctx = Context(repo, options.stack, stack, view)
    # The step's commit: the last one that moved the weight or the shape (a shape step keeps the weight at 0).
    since_commit = gitops.seconds_since_change(repo, stack.path.name, now, STEP_KEYS)
    # Live since the routing object was last applied, and never before the commit that asked for this step;
    # with no cluster read, the commit is taken as applied.
    since_apply = now - live_state.since if options.kube is not None and live_state.since is not None else None
    seconds_live = since_commit if since_apply is None else min(since_commit, since_apply)
    window_s = duration_seconds(history.window(rel))
    depths = history.depths(rel, decide.live_instants(seconds_live, interval_s, window_s))
    found = history.history(view, prometheus, now, interval_s, depths, seconds_live)
    state = decide.State(
        weight=app.canary_weight,
        shape=app.canary_shape,
        ga_version=app.ga_version,
        canary_version=app.canary_version,
        rolled_back=bool(rolled_back_subject(ctx, required=False)),
        live=live_state,
        history=found.verdicts,
        seconds_since_step=since_commit,
        proposal_open=False,
        errors=found.errors,
        seconds_live=seconds_live,
        window_s=window_s,
        **decide.release_rules(rel),
    )
    return state, found.latest


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
    stack_name = options.stack
    try:
        stack = StackFile.for_stack(repo, stack_name)
        text = stack.path.read_bytes()
        view, lenient = _read(stack)
    except ConfigError as exc:
        log.error("stack %s cannot be read: %s", stack_name, exc)
        _skipped(metrics, memory, notices, repo, stack_name, JUDGE, "config", str(exc))
        return None
    memory.interval_s = view.release.interval_s
    memory.lease_s = max(15, int(3 * memory.interval_s))
    now = now if now is not None else time.time()
    # The same choice (and credential rules) as --prometheus / $PROMETHEUS_URL / prometheusUrl in every command.
    chosen = MetricsOptions(prometheus=options.prometheus_url, timeout=PROMETHEUS_TIMEOUT_S)
    try:
        prometheus = choose_prometheus(chosen, view, required=True)
    except Refused as exc:
        _skipped(metrics, memory, notices, repo, stack_name, JUDGE, "config", str(exc))
        return None
    state, latest = _state(options, repo, view, stack, now, prometheus)
    metrics.set_evidence(
        stack_name,
        ((f.name, quantity, value) for f in (latest.findings if latest else ()) for quantity, value in f.numbers),
    )
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
            _roll_back(options, metrics, memory, notices, repo, view, decision, state.seconds_live)
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
    seconds_live: float | None = None,
) -> None:
    """The rollback `canary rollback --push` makes, to main, now. Its evidence is best-effort and bounded; its Slack
    notice is queued."""
    stack = options.stack
    reason = f"canary agent: {decision.why}"
    request = RollbackRequest(
        repo,
        stack,
        reason=reason,
        ga_min_replicas=_serving_replicas(options, view),
        metrics=MetricsOptions(prometheus=options.prometheus_url, step_age_s=seconds_live),
        publish=PublishOptions(push=True, notify=False),
    )
    done = attempt(rollback, request)
    recorded = done.result.recorded if done.result else Recorded()
    log.info("rollback exited %s: %s", done.code, recorded.subject or done.error)
    if recorded.commits:
        metrics.last_commit.labels(stack).set(time.time())
        _recovered(memory, ROLLBACK_WORK)
        notices.send(repo, stack, f":rewind: {recorded.subject} Reason: {reason}")
    elif done.code != 0:
        _skipped(metrics, memory, notices, repo, stack, ROLLBACK_WORK, done.exit_name, str(done.error))


def _serving_replicas(options: Options, view: StackView) -> int | None:
    """GA's, the baseline's and the canary's replicas now, read from the cluster when GA is autoscaled (the rollback's GA floor);
    None without a cluster or an autoscaler (`canary rollback` then takes them from the config)."""
    if options.kube is None or not view.app.app_shape.max_replicas:
        return None
    return live.serving_replicas(options.kube, view.app.namespace, view.app.name, baseline=view.release.baseline)


def _record_metrics(metrics: Metrics, stack: str, state: decide.State, decision: decide.Decision) -> None:
    metrics.set_verdict(stack, state.history[0] if state.history else "none")
    metrics.weight.labels(stack, "git").set(state.weight)
    metrics.weight.labels(stack, "live").set(-1 if state.live.canary_weight is None else state.live.canary_weight)
    metrics.drift.labels(stack).set(1 if decision.drift else 0)
    for shape in ("weights", *SHAPES):  # the live one 1, the others 0, so a panel shows exactly one
        metrics.shape.labels(stack, shape).set(1 if (state.live.shape or "weights") == shape else 0)
    metrics.decisions.labels(stack, decision.action).inc()
