"""What the release agent does this interval: a pure decision from Git, the live cluster and the verdict history.

Contract: `decide(state)` returns one Decision; no I/O. The history is the analysis evaluated now and at past
instants one interval apart (newest first), each judging only its own slice of traffic (a window of at most one
interval, istio_canary/agent/history.py), so no request counts in two verdicts; a restarted agent reaches the same
decision as the one that died: nothing is counted in memory. Rules, in order:
1. While the canary has traffic (a weight, or a mirror/header shape step), a run of bad verdicts (newest first)
   -> ROLLBACK: `threshold` FAILs, `error_limit` ERRORs (Prometheus answered, but the analysis could not be
   judged: a check it cannot run, garbage, impossible numbers), or, mixed, the larger of the two. A bad stretch
   no longer than one interval fails at most two analyses, so with threshold >= 3 it is never a rollback; a
   canary failing from time T is rolled back by the first pass after T + threshold x interval (one interval
   later at most). UNAVAILABLE (no answer: unreachable, too slow, a gateway's 502/503/504) is never a rollback.
   The statistical judge's looks each judge the whole step so far, and its tests pay for noise and repeated
   looks themselves: the agent sets `threshold` 1 for it (ReleaseSettings.fails_to_roll_back).
2. Drift (Git and the live VirtualService disagree longer than the grace period) -> report it; a step is
   never proposed on top of drift, but a rollback still is (weight 0 is the safe direction).
3. The step in Git is not live yet (weights differ, or finish 2/2 waits for GA to run the new version)
   -> WAIT.
4. `iterations` PASSes whose whole window was live (the step went live when the routing object was last
   applied, or at its commit when no cluster is read) -> PROPOSE the next step (promote / finish), unless a
   proposal for that step is already open.
5. A run of inconclusive/unavailable answers longer than `notice_after` -> NOTICE (the loop sends it once).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from istio_canary.release import steps
from istio_canary.release.model import ReleaseSettings
from istio_canary.release.verdict import Verdict

ROLLBACK = "rollback"
PROPOSE = "propose"
WAIT = "wait"
NOTICE = "notice"
NOTHING = "nothing"

# The history's verdicts, by their short names (istio_canary/release/verdict.py is their one home).
PASS, FAIL, INCONCLUSIVE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE
UNAVAILABLE, ERROR = Verdict.UNAVAILABLE, Verdict.ERROR
BAD = (FAIL, ERROR)
MAX_ERRORS_SHOWN = 2  # distinct error messages a rollback names
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Live:
    """What the cluster runs now (read-only): the VirtualService's canary weight and each Deployment's image tag
    and whether its rollout is complete. None: the object is not there (or not readable)."""

    canary_weight: int | None
    ga_version: str | None
    ga_rolled_out: bool
    canary_version: str | None
    shape: str = ""  # the VirtualService's shape (istio_canary/release/traffic.py): "", "mirror" or "header"
    # Unix seconds the routing object was last applied (None: not known). When, not what: two reads of the same
    # routing compare equal whenever it was written.
    since: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class State:
    """Everything one decision needs."""

    weight: int  # in Git
    schedule: tuple[int, ...]
    shapes: tuple[str, ...]  # canaryPreSteps
    shape: str  # the shape step in Git ("" when the weights alone route)
    ga_version: str  # in Git
    canary_version: str  # in Git
    rolled_back: bool  # Git records a rollback of this canaryVersion
    live: Live
    history: tuple[str, ...]  # verdicts newest first, one interval apart
    seconds_since_step: float  # since the commit that set the current step (Git): the drift grace runs from it
    interval_s: float
    threshold: int
    iterations: int
    notice_after_s: float
    drift_grace_s: float
    proposal_open: bool  # a pull request for the next step is already open
    error_limit: int  # analysisErrorLimit: errored analyses in a row before a rollback
    errors: tuple[str, ...] = ()  # why each of the newest run of ERRORs errored, newest first
    seconds_live: float | None = None  # since the step went live in the cluster; None: Git is taken as live
    window_s: float | None = None  # how much traffic each analysis judged; None: one interval
    judge: str = "threshold"  # analysisJudge: only how a rollback's reason reads


def release_rules(release: ReleaseSettings) -> dict[str, Any]:
    """The State fields a stack's release settings give, as the agent reads them: one place, so the agent and
    the judges' simulation (testkit/judgesim.py) cannot read them apart (the statistical judge's rollback run
    is ReleaseSettings.fails_to_roll_back, not analysisThreshold)."""
    return {
        "schedule": release.steps,
        "shapes": release.shapes,
        "interval_s": release.interval_s,
        "threshold": release.fails_to_roll_back,
        "judge": release.judge,
        "iterations": release.iterations,
        "notice_after_s": release.notice_after_s,
        "drift_grace_s": release.drift_grace_s,
        "error_limit": release.error_limit,
    }


@dataclass(frozen=True)
class Decision:
    """The action, the weight it leads to (if any), why, and whether Git and the cluster have drifted apart."""

    action: str
    to: int | None
    why: str
    drift: bool = False
    next_step: str = ""  # what comes next in words, for `canary status`


def _run(history: tuple[str, ...], verdicts: tuple[str, ...]) -> int:
    """How many of the newest verdicts in a row are one of `verdicts`."""
    count = 0
    for verdict in history:
        if verdict not in verdicts:
            break
        count += 1
    return count


def plan(state: State) -> steps.Step:
    """The planner's next step for this state."""
    return steps.next_step(
        state.weight,
        state.schedule,
        state.ga_version,
        state.canary_version,
        state.rolled_back,
        shapes=state.shapes,
        shape=state.shape,
    )


def drifted(state: State) -> bool:
    """Git and the live VirtualService disagree, and have for longer than an `up` takes (the grace period)."""
    differ = state.live.canary_weight != state.weight or state.live.shape != state.shape
    return differ and state.seconds_since_step > state.drift_grace_s


def is_live(state: State, step: steps.Step) -> bool:
    """Is the step Git holds applied? The weights match; for finish 2/2, GA already runs the canary's version."""
    if state.live.canary_weight != state.weight or state.live.shape != state.shape:
        return False
    if state.weight == 0 and state.live.canary_version != state.canary_version:
        return False  # the first step sends users to the canary Deployment: it must run the new version
    if step.action == steps.FINISH and state.ga_version == state.canary_version:
        return state.live.ga_version == state.ga_version and state.live.ga_rolled_out
    return True


def _rollback(state: State) -> Decision | None:
    """Rule 1: the run of bad verdicts that ends the release, or None. An ERROR inside a run of FAILs is no sign
    of health: it does not break the run; together they count to the larger of the two limits."""
    if not (state.weight > 0 or state.shape):
        return None
    run = state.history[: _run(state.history, BAD)]
    failures, errors = run.count(FAIL), run.count(ERROR)
    if failures >= state.threshold:
        if state.judge == "statistical":
            return Decision(ROLLBACK, 0, "a failed analysis: the statistical judge's test decided")
        return Decision(ROLLBACK, 0, f"{failures} failed analyses in a row (threshold {state.threshold})")
    shown = tuple(dict.fromkeys(error[:MAX_ERROR_CHARS] for error in state.errors))[:MAX_ERRORS_SHOWN]
    named = ": " + "; ".join(shown) if shown else ""
    if errors >= state.error_limit:
        return Decision(
            ROLLBACK,
            0,
            f"{errors} analyses in a row could not be judged (analysisErrorLimit {state.error_limit})" + named,
        )
    if failures and errors and len(run) >= max(state.threshold, state.error_limit):
        why = f"{len(run)} analyses in a row failed ({failures}) or could not be judged ({errors}) "
        why += f"(threshold {state.threshold}, analysisErrorLimit {state.error_limit})"
        return Decision(ROLLBACK, 0, why + named)
    return None


def live_instants(seconds_live: float, interval_s: float, window_s: float) -> int:
    """How many of the newest instants judged a window that lies wholly after the step went live: instant k
    (k intervals back) judged (now - k*interval - window, now - k*interval]."""
    if interval_s <= 0 or seconds_live < window_s:
        return 0
    return int((seconds_live - window_s) // interval_s) + 1


def judged_live(state: State) -> int:
    """live_instants() of this state (Git taken as live without seconds_live, windows of one interval without
    window_s)."""
    live_s = state.seconds_since_step if state.seconds_live is None else state.seconds_live
    return live_instants(live_s, state.interval_s, state.interval_s if state.window_s is None else state.window_s)


def decide(state: State) -> Decision:
    """The one thing to do now; see the module docstring for the rules."""
    drift = drifted(state)
    rollback = _rollback(state)
    if rollback:
        return replace(rollback, drift=drift)
    step = plan(state)
    if step.action in (steps.NONE, steps.ROLLED_BACK, steps.UNKNOWN_STEP):
        return Decision(NOTHING, None, f"next step is {step.action}: nothing to propose", drift, step.action)
    if drift:
        why = f"Git says {state.weight}%, the cluster {state.live.canary_weight}% for longer than the grace period"
        return Decision(WAIT, None, f"drift: {why}", True, step.describe())
    if not is_live(state, step):
        return Decision(WAIT, None, f"waiting for {state.weight}% to be live before judging it", False, step.describe())
    # Passes count only what was live: older instants judged the previous step's traffic.
    passes = min(_run(state.history, (PASS,)), judged_live(state))
    ready = step.action == steps.PROMOTE and not step.needs_analysis  # 0 -> first step: nothing to judge at 0 %
    if ready or passes >= state.iterations:
        if state.proposal_open:
            return Decision(NOTHING, step.to, "the proposal for the next step is open", False, step.describe())
        why = "first step; no analysis possible at 0%" if ready else f"{passes} passing analyses in a row"
        return Decision(PROPOSE, step.to, why, False, step.describe())
    errors = _run(state.history, (ERROR,))
    if errors and (state.weight > 0 or state.shape):
        why = f"{errors}/{state.error_limit} analyses in a row could not be judged at {state.weight}%"
        return Decision(
            NOTHING,
            None,
            why + (f": {state.errors[0][:MAX_ERROR_CHARS]}" if state.errors else ""),
            False,
            step.describe(),
        )
    quiet = _run(state.history, (INCONCLUSIVE, UNAVAILABLE))
    if quiet and quiet * state.interval_s >= state.notice_after_s:
        return Decision(NOTICE, None, f"no verdict for {quiet} intervals", False, step.describe())
    return Decision(
        NOTHING, None, f"{passes}/{state.iterations} passing analyses at {state.weight}%", False, step.describe()
    )
