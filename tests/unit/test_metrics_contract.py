"""The metrics port's contract, run on every registered provider: Prometheus against a real HTTP server on
127.0.0.1 answering in the API's shapes, and the in-memory fake (testkit/memory_metrics.py).

Whatever the backend does, a query ends in one of four ways: a number (NaN included), None for no sample,
MetricsUnavailable (`answered` False for no answer, True for garbage), or BadQuery for a query the backend
cannot parse. No other exception type escapes, so the analysis and the agent never see a backend's own errors.
A provider registered without a harness here fails the test that lists them."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from istio_canary import metrics
from istio_canary.deadline import Deadline
from istio_canary.metrics import BadQuery, MetricsProvider, MetricsUnavailable
from testkit import memory_metrics, servers

ROOT = Path(__file__).resolve().parents[2]
AT = 1_700_000_000.0
VALUE = 'sum(rate(istio_requests_total{reporter="destination"}[1m]))'
EMPTY = 'sum(rate(istio_requests_total{destination_workload="nobody"}[1m]))'
RATIO = "0 / 0"
BROKEN = "sum(rate(istio_requests_total[1m])"  # the closing parenthesis is missing
GARBAGE = "up"
REFUSED = object()  # in an answers table: the backend cannot parse this query


@dataclass(frozen=True)
class Harness:
    """How one provider's backend is made to answer: `serving(answers)` runs a backend that answers each query
    with a float, None (no sample), REFUSED or one of `garbage` (this backend's own nonsense), and yields its
    address; `unreachable()` is an address where nothing answers."""

    serving: Callable[[dict[str, object]], AbstractContextManager[str]]
    unreachable: Callable[[], str]
    garbage: dict[str, object]


# --- Prometheus: a stub HTTP server speaking the instant-query API -------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """An answer the stub sends as it is."""

    status: int
    content_type: str
    body: bytes


def _json(status: int, data: object) -> Raw:
    return Raw(status, "application/json", json.dumps(data).encode())


def _vector(*values: object) -> Raw:
    result = [{"metric": {"pod": f"p{i}"}, "value": [AT, value]} for i, value in enumerate(values)]
    return _json(200, {"status": "success", "data": {"resultType": "vector", "result": result}})


def _prometheus_answer(answer: object) -> Raw:
    if isinstance(answer, Raw):
        return answer
    if answer is REFUSED:
        return _json(400, {"status": "error", "errorType": "bad_data", "error": "1:35: parse error: unclosed left"})
    if answer is None:
        return _vector()
    assert isinstance(answer, float)
    return _vector("NaN" if math.isnan(answer) else repr(answer))


@contextmanager
def _prometheus_serving(answers: dict[str, object]) -> Iterator[str]:
    def handle(request: servers.Recorded) -> tuple[int, dict[str, str], bytes]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)["query"][0]
        raw = _prometheus_answer(answers.get(query))
        return raw.status, {"Content-Type": raw.content_type}, raw.body

    with servers.stub(handle) as (url, _seen):
        yield url


PROMETHEUS = Harness(
    serving=_prometheus_serving,
    unreachable=lambda: f"http://127.0.0.1:{servers.free_port()}",
    garbage={
        "login page": Raw(200, "text/html", b"<html><body>Sign in</body></html>"),
        "login page, 401": Raw(401, "text/plain", b"Unauthorized"),
        "a range result": _json(200, {"status": "success", "data": {"resultType": "matrix", "result": []}}),
        "two series": _vector("1", "2"),
        "+Inf": _vector("+Inf"),
        "a bare JSON number": _vector(1),
        "an error of its own": _json(422, {"status": "error", "errorType": "execution", "error": "too many samples"}),
    },
)


# --- the in-memory fake --------------------------------------------------------------------------------------------


@contextmanager
def _memory_serving(answers: dict[str, object]) -> Iterator[str]:
    backend = memory_metrics.MemoryBackend(
        answers={query: value for query, value in answers.items() if value is not REFUSED},
        refused={query for query, value in answers.items() if value is REFUSED},
    )
    with memory_metrics.serving(backend, "contract") as url:
        yield url


MEMORY = Harness(
    serving=_memory_serving,
    unreachable=lambda: memory_metrics.SCHEME + "nobody",
    garbage={"a string": "42", "+Inf": math.inf, "a boolean": True},
)

HARNESSES = {metrics.PROMETHEUS: PROMETHEUS, memory_metrics.NAME: MEMORY}
PROVIDERS = sorted(metrics.PROVIDERS)
ANSWERS: dict[str, object] = {VALUE: 42.5, EMPTY: None, RATIO: math.nan, BROKEN: REFUSED}


def _provider(name: str, url: str, timeout: float = 5.0) -> MetricsProvider:
    return metrics.provider(name, url, timeout)


def _outcome(call: Callable[[], float | None]) -> float | Exception | None:
    """What a query ended in; any exception but the port's two fails here, naming its type."""
    try:
        return call()
    except (MetricsUnavailable, BadQuery) as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - the point of the test: nothing else may escape
        pytest.fail(f"a query raised {type(exc).__name__} ({exc}), not one of the port's two error types")


def test_every_registered_provider_has_a_contract_harness():
    assert set(PROVIDERS) == set(HARNESSES), "add a Harness for each provider in metrics.PROVIDERS"


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_query_answers_its_value_none_for_no_sample_and_nan_as_the_backend_computes_it(name):
    harness = HARNESSES[name]
    with harness.serving(ANSWERS) as url:
        source = _provider(name, url)
        assert _outcome(lambda: source.query(VALUE, AT)) == 42.5
        assert _outcome(lambda: source.query(VALUE, None)) == 42.5  # the backend's now
        assert _outcome(lambda: source.query(EMPTY, AT)) is None
        ratio = _outcome(lambda: source.query(RATIO, AT))
        assert isinstance(ratio, float) and math.isnan(ratio)
        assert source.shown and "@" not in source.shown


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_query_the_backend_cannot_parse_is_a_bad_query(name):
    with HARNESSES[name].serving(ANSWERS) as url:
        outcome = _outcome(lambda: _provider(name, url).query(BROKEN, AT))
    assert isinstance(outcome, BadQuery) and str(outcome)


@pytest.mark.parametrize("name", PROVIDERS)
def test_an_unreachable_backend_is_unavailable_without_an_answer(name):
    outcome = _outcome(lambda: _provider(name, HARNESSES[name].unreachable(), timeout=2).query(VALUE, AT))
    assert isinstance(outcome, MetricsUnavailable) and not isinstance(outcome, BadQuery)
    assert outcome.answered is False and str(outcome)


@pytest.mark.parametrize(
    ("name", "garbage"), [(name, garbage) for name in PROVIDERS for garbage in HARNESSES[name].garbage]
)
def test_garbage_is_unavailable_and_answered(name, garbage):
    with HARNESSES[name].serving({GARBAGE: HARNESSES[name].garbage[garbage]}) as url:
        outcome = _outcome(lambda: _provider(name, url).query(GARBAGE, AT))
    assert isinstance(outcome, MetricsUnavailable), outcome
    assert outcome.answered is True and str(outcome)


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_query_after_the_operations_deadline_is_unavailable(name):
    with HARNESSES[name].serving(ANSWERS) as url, Deadline(1.0) as deadline:
        bound = _provider(name, url).within(deadline)
        assert _outcome(lambda: bound.query(VALUE, AT)) == 42.5
        while not deadline.expired:
            time.sleep(0.02)
        outcome = _outcome(lambda: bound.query(VALUE, AT))
    assert isinstance(outcome, MetricsUnavailable) and outcome.answered is False


def test_an_unknown_provider_name_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="prometheus"):
        metrics.provider("graphite", "http://127.0.0.1:1", 1.0)


def test_a_name_is_never_taken_over_by_another_factory():
    with pytest.raises(ValueError, match="already registered"):
        metrics.register(metrics.PROMETHEUS, memory_metrics.MemoryProvider)
    metrics.register(memory_metrics.NAME, memory_metrics.MemoryProvider)  # the same registration again is harmless


def test_the_observer_loads_no_provider():
    """The Pulumi program imports the observer (its dashboard): no provider, no HTTP client comes with it."""
    code = "import sys, istio_canary.metrics.istio_observer; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    modules = set(loaded.stdout.split())
    assert "istio_canary.metrics.istio_observer" in modules
    assert not modules & {"istio_canary.metrics.prometheus", "istio_canary.httpclient", "istio_canary.deadline"}
