"""The one error family of the actions, and the exit code and message of any exception an action (or a command)
raised: the CLI prints them, the agent counts them, so both read a failure the same way."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from istio_canary import gitops
from istio_canary.analysis import BadCheckQuery
from istio_canary.exits import EXIT_BLOCKED, EXIT_INTERNAL, EXIT_REFUSED, EXIT_UNAVAILABLE
from istio_canary.metrics import BadQuery, MetricsUnavailable
from istio_canary.registry import RegistryError
from istio_canary.release.settings import ConfigError

P = ParamSpec("P")
R = TypeVar("R")


class ActionError(Exception):
    """An action stopped: `code` is its exit code (istio_canary/exits.py), the message says why."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Refused(ActionError):
    """Stop with a message and an exit code; nothing has been committed."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message, code)


class Blocked(Refused):
    """An acceptance check failed: the step waits (never a rollback)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_BLOCKED)


class Unavailable(ActionError):
    """Prometheus, the registry, a credential helper or the webhook could not answer (or answered garbage)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_UNAVAILABLE)


def outcome(exc: Exception) -> tuple[int, str]:
    """The exit code and message for an exception a command raised."""
    if isinstance(exc, ActionError):
        return exc.code, str(exc)
    if isinstance(exc, ConfigError | gitops.GitError | BadCheckQuery | BadQuery):
        return EXIT_REFUSED, str(exc)
    if isinstance(exc, MetricsUnavailable | RegistryError):
        return EXIT_UNAVAILABLE, str(exc)
    # Never exit 1 for a bug: it would read as "analysis failed" and trigger a rollback.
    return EXIT_INTERNAL, f"internal error (a bug in canary): {type(exc).__name__}: {exc}".splitlines()[0]


def typed(action: Callable[P, R]) -> Callable[P, R]:
    """An action's public entry: the lower layers' own errors (a config, Git, query, metrics or registry
    error) leave it as the ActionError their exit code means, the original chained; a bug leaves as it is."""

    @functools.wraps(action)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return action(*args, **kwargs)
        except ActionError:
            raise
        except Exception as exc:
            code, message = outcome(exc)
            if code == EXIT_INTERNAL:
                raise
            raise (Unavailable(message) if code == EXIT_UNAVAILABLE else Refused(message, code)) from exc

    return run
