"""What `canary promote` would do next: a pure decision from the live step (a shape at 0 %, or a weight), the
schedule (canaryPreSteps' shapes, then canarySteps' weights), the versions and whether the canary version was
rolled back. `status` shows it; `promote` acts on it. No I/O here.

The walk: 0 % -> each shape of canaryPreSteps (mirror, header; still 0 % of users by weight) -> each weight ->
finish. Leaving a shape needs a passing analysis (mirrored or header-matched requests are real requests the
canary served); the first step from 0 % does not, there is nothing to judge yet."""

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
    shape: str = ""  # the shape the step leads to (istio_canary/release/traffic.py), "" for a weight

    def to_json(self) -> dict[str, object]:
        return {"action": self.action, "to": self.to, "needs_analysis": self.needs_analysis, "shape": self.shape}

    def describe(self) -> str:
        """`mirror`, `10`, `finish`, `none` ... as `canary status` prints it."""
        return (self.shape or str(self.to)) if self.action == PROMOTE else self.action


def known_step(weight: int, steps: Sequence[int]) -> bool:
    """A weight `canary promote` can move from: 0 or one of canarySteps (a hand-edited 30 is not)."""
    return weight == 0 or weight in steps


def next_step(
    weight: int,
    steps: Sequence[int],
    ga_version: str,
    canary_version: str,
    rolled_back: bool = False,
    shapes: Sequence[str] = (),
    shape: str = "",
) -> Step:
    """The next step from `weight` (and `shape`, the live shape step at 0 %). At 0 % the first step needs no
    analysis: the canary has no traffic to judge, and the first step is the smallest exposure; every later
    step is gated, and so is finishing."""
    if not known_step(weight, steps) or (shape and (weight != 0 or shape not in shapes)):
        return Step(UNKNOWN_STEP, None, False)
    if weight == 100:
        return Step(FINISH, 0, True)
    if weight == 0 and not shape and canary_version == ga_version:
        return Step(NONE, None, False)
    if shape:  # the next shape, or the first weight: both judged on what the canary served in this one
        later = list(shapes)[list(shapes).index(shape) + 1 :]
        return Step(PROMOTE, 0, True, later[0]) if later else Step(PROMOTE, steps[0], True)
    first = Step(PROMOTE, 0, False, shapes[0]) if shapes else Step(PROMOTE, steps[0], False)
    if weight == 0 and rolled_back:
        return Step(ROLLED_BACK, first.to, False, first.shape)  # `to`/`shape`: where --force would go
    if weight == 0:
        return first
    target = next(step for step in steps if step > weight)  # steps end at 100 and weight < 100
    return Step(PROMOTE, target, True)
