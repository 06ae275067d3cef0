"""The step planner is pure: every weight, version and rollback state maps to one next step."""

from __future__ import annotations

import pytest

from istio_canary.release import steps

STEPS = (10, 60, 100)


@pytest.mark.parametrize(
    ("weight", "ga", "canary", "rolled_back", "expected"),
    [
        (0, "6.8.0", "6.9.0", False, steps.Step(steps.PROMOTE, 10, False)),  # the first step needs no analysis
        (10, "6.8.0", "6.9.0", False, steps.Step(steps.PROMOTE, 60, True)),
        (60, "6.8.0", "6.9.0", False, steps.Step(steps.PROMOTE, 100, True)),
        (100, "6.8.0", "6.9.0", False, steps.Step(steps.FINISH, 0, True)),
        (100, "6.9.0", "6.9.0", False, steps.Step(steps.FINISH, 0, True)),  # step 1 of finish already done
        (0, "6.9.0", "6.9.0", False, steps.Step(steps.NONE, None, False)),
        (0, "6.8.0", "6.9.0", True, steps.Step(steps.ROLLED_BACK, 10, False)),
        (30, "6.8.0", "6.9.0", False, steps.Step(steps.UNKNOWN_STEP, None, False)),
        (10, "6.8.0", "6.9.0", True, steps.Step(steps.PROMOTE, 60, True)),  # a rollback only matters at 0 %
    ],
)
def test_next_step(weight, ga, canary, rolled_back, expected):
    assert steps.next_step(weight, STEPS, ga, canary, rolled_back) == expected


def test_every_known_weight_moves_up_or_finishes():
    for weight in (0, *STEPS):
        step = steps.next_step(weight, STEPS, "1.0.0", "1.1.0")
        assert step.action in (steps.PROMOTE, steps.FINISH)
        assert step.to is not None and (step.to > weight or step.action == steps.FINISH)
        assert step.describe() == (str(step.to) if step.action == steps.PROMOTE else "finish")
