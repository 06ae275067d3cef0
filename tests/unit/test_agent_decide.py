"""The release agent's decision is pure: Git, the live cluster and the verdict history in, one action out."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from rollout.agent.decide import (
    FAIL,
    INCONCLUSIVE,
    NOTHING,
    NOTICE,
    PASS,
    PROPOSE,
    ROLLBACK,
    UNAVAILABLE,
    WAIT,
    Live,
    State,
    decide,
)

BASE = State(
    weight=10,
    schedule=(10, 60, 100),
    shapes=(),
    shape="",
    ga_version="6.8.0",
    canary_version="6.9.0",
    rolled_back=False,
    live=Live(canary_weight=10, ga_version="6.8.0", ga_rolled_out=True, canary_version="6.9.0"),
    history=(PASS,) * 10,
    seconds_since_step=600,
    interval_s=60,
    threshold=3,
    iterations=5,
    notice_after_s=600,
    drift_grace_s=300,
    proposal_open=False,
)


def state(**changes) -> State:
    return dataclasses.replace(BASE, **changes)


def test_enough_passes_at_a_live_step_propose_the_next():
    decision = decide(BASE)
    assert (decision.action, decision.to) == (PROPOSE, 60)


def test_passes_before_the_step_went_live_do_not_count():
    # Ten passes in history, but the step is 3 minutes old: three of them judged this weight.
    assert decide(state(seconds_since_step=180)).action == NOTHING
    assert decide(state(seconds_since_step=300)).action == PROPOSE


def test_threshold_failures_in_a_row_roll_back_and_fewer_do_not():
    assert decide(state(history=(FAIL, FAIL, FAIL, PASS))).action == ROLLBACK
    assert decide(state(history=(FAIL, FAIL, PASS, FAIL))).action == NOTHING
    assert decide(state(history=(FAIL, INCONCLUSIVE, FAIL, FAIL))).action == NOTHING  # not in a row


def test_a_rollback_is_never_blocked_by_drift_or_a_step_not_live():
    drifted = state(live=dataclasses.replace(BASE.live, canary_weight=60), history=(FAIL,) * 3)
    decision = decide(drifted)
    assert (decision.action, decision.to, decision.drift) == (ROLLBACK, 0, True)


def test_no_step_is_proposed_on_top_of_drift_or_before_the_step_is_live():
    not_yet = state(live=dataclasses.replace(BASE.live, canary_weight=0), seconds_since_step=60)
    assert (decide(not_yet).action, decide(not_yet).drift) == (WAIT, False)
    drifted = state(live=dataclasses.replace(BASE.live, canary_weight=0), seconds_since_step=900)
    assert (decide(drifted).action, decide(drifted).drift) == (WAIT, True)


def test_first_step_needs_no_analysis_but_a_rolled_out_canary():
    fresh = state(weight=0, live=dataclasses.replace(BASE.live, canary_weight=0), history=(INCONCLUSIVE,))
    assert (decide(fresh).action, decide(fresh).to) == (PROPOSE, 10)
    old_image = dataclasses.replace(fresh.live, canary_version="6.8.5")
    assert decide(dataclasses.replace(fresh, live=old_image)).action == WAIT


def test_finish_two_waits_for_ga_to_run_the_new_version():
    at_100 = state(weight=100, live=dataclasses.replace(BASE.live, canary_weight=100))
    assert (decide(at_100).action, decide(at_100).to) == (PROPOSE, 0)  # finish 1/2: GA takes 6.9.0
    half = dataclasses.replace(at_100, ga_version="6.9.0")
    assert decide(half).action == WAIT  # GA still runs 6.8.0
    live = dataclasses.replace(half.live, ga_version="6.9.0", ga_rolled_out=True)
    assert decide(dataclasses.replace(half, live=live)).action == PROPOSE


def test_an_open_proposal_is_not_proposed_again():
    assert decide(state(proposal_open=True)).action == NOTHING


@pytest.mark.parametrize("quiet", [INCONCLUSIVE, UNAVAILABLE])
def test_a_long_silence_is_one_notice_neither_pass_nor_fail(quiet):
    assert decide(state(history=(quiet,) * 9 + (PASS,))).action == NOTHING
    assert decide(state(history=(quiet,) * 10)).action == NOTICE


def test_nothing_to_do_without_a_release():
    assert decide(state(weight=0, ga_version="6.9.0", history=())).action == NOTHING
    assert (
        decide(state(weight=0, rolled_back=True, live=dataclasses.replace(BASE.live, canary_weight=0))).action
        == NOTHING
    )


# --- shape steps (canaryPreSteps) ----------------------------------------------------------------------------------

SHAPED = replace(
    BASE,
    weight=0,
    shapes=("mirror", "header"),
    shape="mirror",
    live=Live(canary_weight=0, ga_version="6.8.0", ga_rolled_out=True, canary_version="6.9.0", shape="mirror"),
)


def test_a_passing_mirror_step_proposes_the_header_step():
    decision = decide(SHAPED)
    assert (decision.action, decision.to, decision.next_step) == (PROPOSE, 0, "header")


def test_a_failing_mirror_step_is_rolled_back_though_no_user_sees_it():
    decision = decide(replace(SHAPED, history=(FAIL,) * 3))
    assert (decision.action, decision.to) == (ROLLBACK, 0)


def test_the_mirror_step_waits_until_the_mirror_is_live():
    live = replace(SHAPED.live, shape="")
    assert decide(replace(SHAPED, live=live, seconds_since_step=30)).action == WAIT


def test_a_shape_missing_from_the_cluster_for_long_is_drift():
    live = replace(SHAPED.live, shape="")
    assert decide(replace(SHAPED, live=live, seconds_since_step=3600)).drift


def test_from_the_last_shape_the_first_weight_is_next():
    state = replace(SHAPED, shape="header", live=replace(SHAPED.live, shape="header"))
    assert (decide(state).action, decide(state).to, decide(state).next_step) == (PROPOSE, 10, "10")


def test_a_new_version_at_zero_goes_to_the_first_shape_without_analysis():
    state = replace(SHAPED, shape="", history=(), live=replace(SHAPED.live, shape=""))
    decision = decide(state)
    assert (decision.action, decision.next_step) == (PROPOSE, "mirror")
