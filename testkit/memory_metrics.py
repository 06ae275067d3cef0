"""An in-memory metrics backend and its provider: a real implementation of the metrics port
(istio_canary/metrics/base.py), registered through the same seam as Prometheus (`metrics.register`), so the
contract test (tests/unit/test_metrics_contract.py) runs it like any other provider.

A backend lives at an address (`memory://<name>`) while `serving()` holds it, as a server would: the provider
is made from that address alone, like every provider, and finds no backend there once it is gone.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from istio_canary import metrics
from istio_canary.deadline import Deadline
from istio_canary.metrics import BadQuery, MetricsUnavailable
from istio_canary.metrics.base import MAX_SERIES

NAME = "memory"
SCHEME = "memory://"


@dataclass(frozen=True)
class Vector:
    """An answer of several samples, as Prometheus' vector result: each sample's labels and value, in the order
    answered. query() takes its one sample (none: no sample; several: garbage); series() keys them by a label."""

    samples: tuple[tuple[Mapping[str, str], object], ...] = ()

    @classmethod
    def keyed(cls, label: str, values: Mapping[str, object]) -> Vector:
        """One sample per entry of `values`, labelled `label`=its key: Vector.keyed("le", {"100": 12.0, ...})."""
        return cls(tuple(({label: key}, value) for key, value in values.items()))


@dataclass
class MemoryBackend:
    """What the backend answers: `answers` maps a query's text to its value, a number or a Vector (None, or a
    query not there: no sample). A value that is not a finite number or NaN (a string, +Inf, True), in a Vector
    or not, is what this backend calls garbage; a number is one sample without labels. `refused` queries are
    ones it cannot parse; while `unavailable` it answers nothing."""

    answers: dict[str, object] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    unavailable: bool = False
    asked: list[tuple[str, float | None]] = field(default_factory=list)


_SERVING: dict[str, MemoryBackend] = {}


@contextmanager
def serving(backend: MemoryBackend, name: str = "default") -> Iterator[str]:
    """Put `backend` at memory://<name> until the block ends; yields that address."""
    url = SCHEME + name
    if url in _SERVING:
        raise ValueError(f"{url} is already serving")
    _SERVING[url] = backend
    try:
        yield url
    finally:
        del _SERVING[url]


class MemoryProvider:
    """The provider for the in-memory backend at `url`. `timeout` and `token` are accepted as every factory's
    are; an operation's deadline (`within`) is honoured: a query after it is MetricsUnavailable."""

    def __init__(self, url: str, timeout: float = 10.0, token: str | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.operation: Deadline | None = None

    @property
    def shown(self) -> str:
        return self.url

    def within(self, deadline: Deadline) -> MemoryProvider:
        bound = copy.copy(self)
        bound.operation = deadline
        return bound

    def query(self, text: str, at: float | None) -> float | None:
        answer = self._answer(text, at)
        if isinstance(answer, Vector):
            if len(answer.samples) > 1:
                raise self._garbage(f"{len(answer.samples)} series, expected one", text)
            return self._number(answer.samples[0][1], text) if answer.samples else None
        return None if answer is None else self._number(answer, text)

    def series(self, text: str, at: float | None, label: str) -> dict[str, float]:
        answer = self._answer(text, at)
        if answer is None:
            return {}
        # A bare number is one sample without labels, as Prometheus' `sum(...)` answers `{}`.
        samples = answer.samples if isinstance(answer, Vector) else (({}, answer),)
        if len(samples) > MAX_SERIES:
            raise self._garbage(f"{len(samples)} series, more than {MAX_SERIES}", text)
        keyed: dict[str, float] = {}
        for labels, value in samples:
            key = labels.get(label)
            if key is None:
                raise self._garbage(f"a series without the label {label!r}", text)
            if key in keyed:
                raise self._garbage(f"two series with {label}={key!r}", text)
            keyed[key] = self._number(value, text)
        return keyed

    def _answer(self, text: str, at: float | None) -> object:
        """What the backend holds for `text`, once the deadline, the backend's presence and the query's text are
        checked, in that order (as a server is reached, then parses the query)."""
        if self.operation is not None and self.operation.expired:
            raise MetricsUnavailable(f"{self.url} did not answer within {self.operation.seconds:g}s")
        backend = _SERVING.get(self.url)
        if backend is None or backend.unavailable:
            raise MetricsUnavailable(f"{self.url} is unreachable")
        backend.asked.append((text, at))
        if text in backend.refused:
            raise BadQuery(f"{self.url} cannot parse the query: {text}")
        return backend.answers.get(text)

    def _number(self, value: object, text: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isinf(value):
            raise self._garbage(f"{value!r}, not a number,", text)
        return float(value)

    def _garbage(self, what: str, text: str) -> MetricsUnavailable:
        return MetricsUnavailable(f"{self.url} answered {what} for: {text}", answered=True)


metrics.register(NAME, MemoryProvider)
