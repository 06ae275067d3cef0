"""The release agent's decision is pure: Git, the live cluster and the verdict history in, one action out."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from istio_canary.release.decide import (
    ERROR,
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
    error_limit=4,
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


# --- errors have a limit ----------------------------------------------------------------------------------------------

BAD_QUERY = "check p99_ms: Prometheus could not parse its query: parse error at char 12"


def test_error_limit_errored_analyses_with_traffic_roll_back_naming_the_errors():
    decision = decide(state(history=(ERROR,) * 4 + (PASS,), errors=(BAD_QUERY,) * 4))
    assert (decision.action, decision.to) == (ROLLBACK, 0)
    assert "4 analyses in a row could not be judged (analysisErrorLimit 4)" in decision.why
    assert BAD_QUERY in decision.why and decision.why.count(BAD_QUERY) == 1  # each distinct error once


def test_fewer_errors_than_the_limit_hold_the_step_and_say_so():
    decision = decide(state(history=(ERROR,) * 3 + (PASS,) * 7, errors=(BAD_QUERY,) * 3))
    assert decision.action == NOTHING and "3/4" in decision.why


def test_errors_without_traffic_on_the_canary_are_never_a_rollback():
    fresh = state(weight=0, live=dataclasses.replace(BASE.live, canary_weight=0), history=(ERROR,) * 10)
    assert decide(fresh).action == PROPOSE  # the first step needs no analysis


def test_unavailable_is_not_an_error_and_never_rolls_back():
    assert decide(state(history=(UNAVAILABLE,) * 10)).action == NOTICE


def test_a_run_of_failures_and_errors_rolls_back_at_the_larger_of_the_two_limits():
    mixed = (FAIL, ERROR, FAIL, ERROR, PASS)
    assert decide(state(history=mixed, threshold=3, error_limit=4)).action == ROLLBACK
    assert decide(state(history=(*mixed[:3], PASS), threshold=3, error_limit=4)).action == NOTHING
    assert decide(state(history=(ERROR, FAIL, FAIL, FAIL), threshold=3, error_limit=4)).action == ROLLBACK


def test_an_error_limit_of_one_rolls_back_on_the_first_error():
    assert decide(state(history=(ERROR, PASS), error_limit=1, errors=(BAD_QUERY,))).action == ROLLBACK


# --- passes count only what was live ---------------------------------------------------------------------------------


def test_passes_count_from_when_the_step_went_live_not_from_its_commit():
    # Committed ten minutes ago, applied (the VirtualService written) two minutes ago: two passes judged it.
    late = state(seconds_since_step=600, seconds_live=120)
    assert decide(late).action == NOTHING and "2/5" in decide(late).why
    assert decide(state(seconds_since_step=600, seconds_live=300)).action == PROPOSE


def test_an_analysis_counts_only_when_its_whole_window_was_live():
    # Windows of 60 s at instants 60 s apart: at 299 s live, the fifth window began 1 s before the step was live.
    assert decide(state(seconds_live=299, window_s=60)).action == NOTHING
    assert decide(state(seconds_live=300, window_s=60)).action == PROPOSE
    # 30 s windows: the fifth instant (4 intervals back) judged 30 s that were all live at 270 s.
    assert decide(state(seconds_live=270, window_s=30)).action == PROPOSE
    assert decide(state(seconds_live=269, window_s=30)).action == NOTHING
