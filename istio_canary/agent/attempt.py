"""An action as the agent takes it: its exit code and its result, or the exit code and message of its error, as
`canary` would have exited and printed them (the exit code's name is the skipped-work counter's reason)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from istio_canary.actions.errors import outcome
from istio_canary.exits import BY_CODE, EXIT_INTERNAL


class _Result(Protocol):
    @property
    def exit_code(self) -> int: ...


R = TypeVar("R", bound=_Result)
A = TypeVar("A")


@dataclass(frozen=True)
class Attempt(Generic[R]):
    code: int
    result: R | None = None
    error: str | None = None  # the message `canary` prints for the error

    @property
    def exit_name(self) -> str:
        return BY_CODE[self.code].name if self.code in BY_CODE else f"exit-{self.code}"


def attempt(action: Callable[[A], R], request: A) -> Attempt[R]:
    """Run the action; any failure, a bug included, becomes an exit code and one message on stderr (never raised:
    one stack's failed action must not end the agent's pass)."""
    try:
        result = action(request)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an exit code and one message, as in `canary`
        code, message = outcome(exc)
        print(message if code == EXIT_INTERNAL else f"error: {message}", file=sys.stderr)
        return Attempt(code, error=message)
    return Attempt(result.exit_code, result)
