"""The Prometheus provider of the metrics port (istio_canary/metrics/base.py): instant queries, one value per
query (or every sample keyed by a label, series()), and one of the port's two errors for anything that is not a
number we can trust.

Contract: `query()` returns a finite float, NaN (Prometheus' own 0/0, e.g. a quantile over no traffic; the
caller decides what it means), or None for an empty result. A query Prometheus cannot parse (errorType
`bad_data`) is BadQuery. Everything else (+Inf, a JSON `true` where Prometheus writes numbers as strings,
several series, a body that is not the API's shape, any other error answer, a transport failure) is
MetricsUnavailable: `answered=False` for no answer or one saying it cannot serve now (429, 502-504, its own
timeout), `answered=True` for the rest. `series()` reads a vector result's samples by the same rules, keyed by
one label ({} for an empty result); a scalar result, a sample without the label or with a label value seen
before, and more than MAX_SERIES samples are garbage too. Both go through one request path (one deadline, one
size cap, one mapping of error answers). Credentials come from the URL's user info (Basic) or a bearer token,
and the URL is only ever shown as scheme://host[:port].

The base URL may carry a path (a proxy's prefix) and a query string (a tenant or an org id, for a gateway in
front of Prometheus): both are kept, the API's path goes after the base's path and `query`, `time` and
`timeout` after the base's parameters. Those three are the client's own: a base's own values for them are
dropped, never sent (Prometheus reads the first of a repeated parameter, so the base's `query` would be
judged instead of the check's). A fragment is dropped too: it never reaches a server. Nothing about the base
URL raises here, so no Prometheus URL can stand between a rollback and its commit.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
import urllib.parse

from istio_canary import httpclient
from istio_canary.metrics.base import MAX_SERIES, BadQuery, MetricsUnavailable

DEFAULT_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # a series is a few hundred bytes; series() takes up to MAX_SERIES of them
TOKEN_ENV = "PROMETHEUS_TOKEN"
# How Prometheus writes a sample value: a decimal or exponent float, or its NaN / +Inf / -Inf spellings.
_SAMPLE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|NaN|[+-]Inf", re.ASCII)
OWN_PARAMETERS = ("query", "time", "timeout")  # what query() sets; a base URL may not
BAD_DATA = "bad_data"  # the API's errorType for a query it cannot parse
# Answers that mean "Prometheus cannot serve now", not "this answer cannot be judged": rate limited, or a
# gateway (or Prometheus itself, for its own query timeout) saying the server behind it is not there.
NOT_SERVING = frozenset({429, 502, 503, 504})
NOT_SERVING_TYPES = frozenset({"timeout", "canceled", "unavailable"})  # Prometheus' own errorType for those


class Prometheus:
    """An instant-query client bound to one base URL (user info allowed), with an overall deadline per query:
    the metrics port's Prometheus provider."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S, token: str | None = None) -> None:
        self.endpoint = query_endpoint(url)
        self.shown = httpclient.redact(url)
        self.timeout = timeout  # per query, unless `within` an operation's deadline
        self.operation: httpclient.Deadline | None = None
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def within(self, deadline: httpclient.Deadline) -> Prometheus:
        """This client for one operation of several queries (an analysis): all of them end by `deadline`."""
        bound = copy.copy(self)
        bound.operation = deadline
        return bound

    def query(self, text: str, at: float | None) -> float | None:
        """Evaluate the PromQL `text` at `at` (unix seconds; None: Prometheus' now): one value, NaN, or None for
        an empty result."""
        return self._value(self._ask(text, at), text)

    def series(self, text: str, at: float | None, label: str) -> dict[str, float]:
        """Every sample of the PromQL `text` at `at`, keyed by the value of its `label` ({} for an empty
        result): a histogram's buckets from one `sum by (le)` query."""
        items = self._vector(self._ask(text, at))
        if len(items) > MAX_SERIES:
            raise _garbage(f"query returned {len(items)} series, more than {MAX_SERIES}: {text}")
        keyed: dict[str, float] = {}
        for item in items:
            labels = item.get("metric")
            if not isinstance(labels, dict):
                raise _garbage(f"Prometheus at {self.shown} sent a malformed answer")
            key = labels.get(label)
            if not isinstance(key, str):
                raise _garbage(f"a series without a string {label!r} label ({str(labels)[:80]}) in: {text}")
            if key in keyed:
                raise _garbage(f"two series with {label}={key[:40]!r} in: {text}")
            keyed[key] = self._number(item.get("value"), text)
        return keyed

    def _ask(self, text: str, at: float | None) -> object:
        """The `data` of Prometheus' successful answer to `text` at `at`: one request under the deadline and the
        size cap, and the port's errors for a failed exchange or an error answer."""
        try:
            with contextlib.ExitStack() as stack:
                deadline = self.operation or stack.enter_context(httpclient.Deadline(self.timeout))
                # Prometheus gives up by the time we do. Plain seconds: it reads `0.5` but not `0.5s`.
                left = max(deadline.left(self.shown), 0.001)
                instant = {} if at is None else {"time": f"{at:.3f}"}
                params = urllib.parse.urlencode({"query": text, **instant, "timeout": f"{left:.3f}"})
                answer = httpclient.request(
                    self.endpoint + params, max_bytes=MAX_ANSWER_BYTES, headers=self.headers, deadline=deadline
                )
        except httpclient.HttpError as exc:
            raise MetricsUnavailable(f"Prometheus at {exc}") from None
        try:
            data = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            data = None
        error = str(data.get("error", ""))[:300] if isinstance(data, dict) else ""
        error_type = str(data.get("errorType", ""))[:40] if isinstance(data, dict) else ""
        if answer.status != 200:
            message = f"Prometheus at {self.shown} answered HTTP {answer.status}: {error}".rstrip(": ")
            raise _refusal(message, error_type, answer.status in NOT_SERVING)
        if not isinstance(data, dict):
            raise _garbage(f"Prometheus at {self.shown} sent a malformed answer (not a JSON object)")
        if data.get("status") != "success":
            raise _refusal(f"Prometheus at {self.shown} refused the query: {error}", error_type, False)
        return data.get("data")

    def _value(self, result: object, promql: str) -> float | None:
        """The one sample of a scalar or vector result; None for an empty vector."""
        if isinstance(result, dict) and result.get("resultType") == "scalar":
            samples = [result.get("result")]
        else:
            samples = [item.get("value") for item in self._vector(result)]
        if len(samples) > 1:
            raise _garbage(f"query returned {len(samples)} series, expected one: {promql}")
        return self._number(samples[0], promql) if samples else None

    def _vector(self, result: object) -> list[dict[str, object]]:
        """The items of a vector result (each an object; its labels and value are the caller's to check)."""
        if not isinstance(result, dict):
            raise _garbage(f"Prometheus at {self.shown} sent a malformed answer")
        kind = result.get("resultType")
        if kind != "vector":
            raise _garbage(f"Prometheus returned a {str(kind)[:20]!r} result for an instant query")
        items = result.get("result")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise _garbage(f"Prometheus at {self.shown} sent a malformed answer")
        return items

    def _number(self, sample: object, promql: str) -> float:
        """A sample's value: finite or NaN."""
        # [<unix time>, "<value>"]: the value is always a string; a bare JSON number or `true` is not Prometheus.
        if not (isinstance(sample, list) and len(sample) == 2 and isinstance(sample[1], str)):
            raise _garbage(f"Prometheus at {self.shown} sent a malformed answer")
        if not _SAMPLE.fullmatch(sample[1]):
            raise _garbage(f"Prometheus at {self.shown} sent a sample that is not a number: {sample[1][:40]!r}")
        value = float(sample[1])
        if math.isinf(value):
            raise _garbage(f"Prometheus at {self.shown} sent an infinite value for: {promql}")
        return value


def _garbage(message: str) -> MetricsUnavailable:
    """An answer that is not one sample of the API's shape: answered, and no wait will make it judgeable."""
    return MetricsUnavailable(message, answered=True)


def _refusal(message: str, error_type: str, not_serving: bool) -> BadQuery | MetricsUnavailable:
    """An error answer in the port's terms: a query Prometheus cannot parse is the check's fault (BadQuery);
    one saying it cannot serve now (`not_serving`: the HTTP status, or its own errorType) is no answer yet."""
    if error_type == BAD_DATA:
        return BadQuery(message)
    return MetricsUnavailable(message, answered=not (not_serving or error_type in NOT_SERVING_TYPES))


def query_endpoint(url: str) -> str:
    """The instant-query URL of a base URL, up to where query()'s own parameters follow: the base's path + the
    API's, then the base's parameters as written (without any of query()'s own) and `&`, or `?`."""
    parts = urllib.parse.urlsplit(url)
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and urllib.parse.unquote_plus(pair.split("=", 1)[0]) not in OWN_PARAMETERS
    ]
    path = parts.path.rstrip("/") + "/api/v1/query"
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "&".join(kept), ""))
    return base + ("&" if kept else "?")
