"""The agent's loop: every interval, as the leader, sync Git, and serve each stack in two phases, acting through
the actions the `canary` commands a person runs take (istio_canary/actions/: so every decision is the same commit,
with the same evidence, under the same lock and validation).

Phase 1, the rollback path (istio_canary/agent/judge.py), on the agent's own clone (synced once a pass): each stack is judged in a thread of
its own (read it, read the live state, derive the verdict history, decide) and, when the verdict is a rollback,
commits and pushes it at once (`canary rollback --push` to main; the commits of two stacks take turns on the
clone). It depends on nothing else: no pull-request lookup, image watch, acceptance check, Slack notice or other
stack's proposal comes before it, and a stack whose Prometheus drips delays no other stack's judgment (its own
is skipped while it runs on). Every judgment of a pass ends (or the interval does) before any stack's phase 2
begins.

Phase 2, the follow-up (istio_canary/agent/followup.py), per stack in a thread of its own on a clone of its own (`<workdir>.follow-up/<stack>`:
beside the workdir, never in it, so a rebuild of one clone never moves another's), started once phase 1 is done for
every stack: notices, the proposal (`canary promote` on a branch plus a pull request through the Git host's API
when `canaryPromotion: pr`, whose lookup happens only now; `canary promote --push` when `auto`), and, while no
release has traffic, new image tags (istio_canary/agent/images.py). A slow or failing Git host, registry, acceptance
check or webhook only skips that stack's own follow-up, counted in canary_agent_skipped_total{stack,work,reason}
with one notice; a follow-up still running at the next pass is skipped for that pass, and the next phase 1 runs
on time whatever it does. Slack notices go out from a thread of their own
(istio_canary/agent/notices.py).

Liveness (istio_canary/agent/metrics.py): every pass counts, for the stack the agent was started for; a judgment that
runs for longer than the loop may look stuck fails /healthz too.

Nothing but Git and the Git host is written; the cluster is only read.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from istio_canary.agent import fleet, workspace
from istio_canary.agent.followup import FollowUp, _needs_follow_up
from istio_canary.agent.judge import Judged, _deferred, _record_metrics, judge
from istio_canary.agent.lease import Lease
from istio_canary.agent.metrics import Metrics
from istio_canary.agent.notices import IMAGES, JUDGE, PROPOSAL, Notices, _skipped, _sync
from istio_canary.agent.options import Memory, Options
from istio_canary.release import decide
from istio_canary.release.names import agent_lease_name

log = logging.getLogger("canary.agent")
JOIN_TIMEOUT_S = 120.0  # how long `--iterations` waits for the last follow-ups before it returns
AWAIT_POLL_S = 0.1  # how often the loop looks again at the judgments it waits for
BUSY_NOTICE_INTERVALS = 3  # a judgment busy this many intervals is noticed: the liveness probe fails at the same age


def _lead(options: Options, metrics: Metrics, lease_s: int) -> bool:
    """Take or renew the agent's one Lease for this pass; True without a cluster (then there is one agent)."""
    if options.kube is None or not options.lease_namespace:
        return True
    # Held for three intervals: renewed every pass, it lapses only when the agent stops.
    name = agent_lease_name(options.lease_stack or options.stack)
    leader = Lease(options.kube, options.lease_namespace, name, options.identity, lease_s).acquire()
    metrics.leader.labels(options.stack).set(1 if leader else 0)
    return leader


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
            # A judgment that outlasts one interval (a slow Prometheus: the "no verdict" notice covers it) is counted;
            # people hear of it once it holds the stack's rollback for as long as the liveness probe allows.
            stuck = since >= BUSY_NOTICE_INTERVALS * served.memory.interval_s
            why = f"still judging after {since:.0f}s"
            _skipped(metrics, served.memory, notices, clone, stack, JUDGE, "busy", why, notice=stuck)
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
            _skipped(  # each call of the follow-up is bounded, and a failure there is noticed when it ends
                metrics,
                served.memory,
                notices,
                options.workdir,
                stack,
                work,
                "busy",
                "still at it since a pass ago",
                notice=False,
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
