"""What `canary promote` would do next: a pure decision from the weight, the steps, the versions and whether
the canary version was rolled back. `status` shows it; `promote` acts on it. No I/O here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PROMOTE = "promote"  # move the weight to `to`
FINISH = "finish"  # at 100 %: GA takes the canary's version, then the weight goes back to 0
NONE = "none"  # canaryVersion equals gaVersion at 0 %: nothing to release
ROLLED_BACK = "rolled-back"  # this canaryVersion was rolled back: refused without --force
UNKNOWN_STEP = "unknown-step"  # a hand-set weight that is not 0 or a step: refused


@dataclass(frozen=True)
class Step:
    """The next step: an action, the weight it leads to, and whether an analysis must pass first."""

    action: str
    to: int | None
    needs_analysis: bool

    def to_json(self) -> dict[str, object]:
        return {"action": self.action, "to": self.to, "needs_analysis": self.needs_analysis}

    def describe(self) -> str:
        """`10`, `finish`, `none` ... as `canary status` prints it."""
        return str(self.to) if self.action == PROMOTE else self.action


def known_step(weight: int, steps: Sequence[int]) -> bool:
    """A weight `canary promote` can move from: 0 or one of canarySteps (a hand-edited 30 is not)."""
    return weight == 0 or weight in steps


def next_step(
    weight: int, steps: Sequence[int], ga_version: str, canary_version: str, rolled_back: bool = False
) -> Step:
    """The next step from `weight`. At 0 % the first step needs no analysis: the canary has no traffic to
    judge, and the first step is the smallest exposure; every later step is gated, and so is finishing."""
    if not known_step(weight, steps):
        return Step(UNKNOWN_STEP, None, False)
    if weight == 100:
        return Step(FINISH, 0, True)
    if weight == 0 and canary_version == ga_version:
        return Step(NONE, None, False)
    target = next(step for step in steps if step > weight)  # steps end at 100 and weight < 100
    if weight == 0 and rolled_back:
        return Step(ROLLED_BACK, target, False)  # `to`: where --force would go
    return Step(PROMOTE, target, weight != 0)
