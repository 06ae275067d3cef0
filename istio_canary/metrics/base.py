"""The metrics port: what the analysis needs from a metrics backend, and the only two ways it may fail.

A provider answers one query at one instant with one number (query()), or with every sample keyed by one label
(series(): a histogram's buckets in one query). It knows nothing about checks or meshes (the
query text comes from the observer, istio_canary/metrics/istio_observer.py, or a stack's own check), and its
callers know nothing about its backend: they catch `MetricsUnavailable` and `BadQuery`, never an HTTP status
or a backend's own error names. Every provider passes tests/unit/test_metrics_contract.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from istio_canary.deadline import Deadline

# The most samples series() takes from one answer. A histogram has tens of buckets; hundreds of samples mean a
# query that is not keyed the way its caller thinks (a `by` left out), so the answer is refused, not judged.
MAX_SERIES = 256


class MetricsUnavailable(RuntimeError):
    """No number that can be judged: the backend is unreachable, too slow, or answered something that is not
    one finite sample. The judgement is inconclusive (exit 3), never a pass or a fail.

    `answered` tells the agent which kind it was. False: no answer now (unreachable, past the deadline, or the
    backend says it cannot serve at the moment): waiting may heal it, so it only ever leads to a notice. True:
    the backend answered, but with garbage or an error of its own that waiting will not heal (a login page,
    a revoked token): the agent counts it toward a rollback (analysisErrorLimit)."""

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


class BadQuery(RuntimeError):
    """The backend refused the query text itself (Prometheus' `bad_data`): the check is misconfigured, which
    no retry heals; the analysis names the check (analysis.BadCheckQuery, exit 4)."""


class MetricsProvider(Protocol):
    """One metrics backend at one address, e.g. a Prometheus base URL (istio_canary/metrics/prometheus.py)."""

    @property
    def shown(self) -> str:
        """Where the numbers come from, without credentials: commit messages name it as the evidence's source."""
        ...

    def query(self, text: str, at: float | None) -> float | None:
        """The value of `text` at `at` (unix seconds; None: the backend's now). A finite float; NaN where the
        backend computes 0/0 (a ratio or quantile over no traffic: the caller decides what that means); None
        when the query has no sample. Anything else (an infinite value, several series, a non-number) is
        MetricsUnavailable; a query the backend cannot parse is BadQuery. No other exception escapes."""
        ...

    def series(self, text: str, at: float | None, label: str) -> dict[str, float]:
        """Every sample of `text` at `at`, keyed by the value of `label` (e.g. "le" -> {"100": 12.0, "+Inf": 40.0}).
        An empty dict when the query has no sample. Values are finite floats, or NaN (0/0) as query() allows; a
        sample without the label, two samples with the same label value, an infinite value, more than MAX_SERIES
        samples, or anything not the API's shape is MetricsUnavailable (answered=True, as query() does for
        garbage); a query the backend cannot parse is BadQuery; no answer / not serving now is
        MetricsUnavailable(answered=False). The same deadline rules as query() (within())."""
        ...

    def within(self, deadline: Deadline) -> MetricsProvider:
        """This provider for one operation of several queries (one analysis): all of them end by `deadline`,
        and a query after it is MetricsUnavailable."""
        ...
