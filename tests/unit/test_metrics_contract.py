"""The metrics port's contract, run on every registered provider: Prometheus against a real HTTP server on
127.0.0.1 answering in the API's shapes, and the in-memory fake (testkit/memory_metrics.py).

Whatever the backend does, a query ends in one of four ways: a number (NaN included), None for no sample,
MetricsUnavailable (`answered` False for no answer, True for garbage), or BadQuery for a query the backend
cannot parse. series() ends the same ways, with its samples keyed by one label (an empty dict for no sample)
in place of the number. No other exception type escapes, so the analysis and the agent never see a backend's
own errors. A provider registered without a harness here fails the test that lists them."""

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
from istio_canary.metrics.base import MAX_SERIES
from testkit import hostile, memory_metrics, servers

ROOT = Path(__file__).resolve().parents[2]
AT = 1_700_000_000.0
VALUE = 'sum(rate(istio_requests_total{reporter="destination"}[1m]))'
EMPTY = 'sum(rate(istio_requests_total{destination_workload="nobody"}[1m]))'
RATIO = "0 / 0"
BROKEN = "sum(rate(istio_requests_total[1m])"  # the closing parenthesis is missing
GARBAGE = "up"
REFUSED = object()  # in an answers table: the backend cannot parse this query
HISTOGRAM = 'sum by (le) (increase(istio_request_duration_milliseconds_bucket{reporter="destination"}[5m]))'
BUCKETS = {"100": 12.0, "250": 30.5, "+Inf": 40.0}


@dataclass(frozen=True)
class Samples:
    """A vector answer in no backend's own shape: one (labels, value) per sample, in the order answered."""

    samples: tuple[tuple[dict[str, str], float], ...]

    @classmethod
    def keyed(cls, label: str, values: dict[str, float], **more: str) -> Samples:
        """One sample per entry of `values`, labelled `label`=key and `more`."""
        return cls(tuple(({label: key, **more}, value) for key, value in values.items()))


@dataclass(frozen=True)
class Harness:
    """How one provider's backend is made to answer: `serving(answers)` runs a backend that answers each query
    with a float, None (no sample), Samples, REFUSED or one of `garbage` or `series_garbage` (this backend's own
    nonsense; `series_garbage` is only nonsense as an answer to series()), and yields its address;
    `unreachable()` is an address where nothing answers."""

    serving: Callable[[dict[str, object]], AbstractContextManager[str]]
    unreachable: Callable[[], str]
    garbage: dict[str, object]
    series_garbage: dict[str, object]


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
    return _labelled(*(({"pod": f"p{i}"}, value) for i, value in enumerate(values)))


def _labelled(*samples: tuple[object, object]) -> Raw:
    """A vector answer of these (metric, value) pairs, as they are."""
    result = [{"metric": metric, "value": [AT, value]} for metric, value in samples]
    return _json(200, {"status": "success", "data": {"resultType": "vector", "result": result}})


def _vector_of(result: object) -> Raw:
    """A successful vector answer whose `result` is this, whatever its shape."""
    return _json(200, {"status": "success", "data": {"resultType": "vector", "result": result}})


def _prometheus_value(value: float) -> str:
    """A value as Prometheus writes it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _prometheus_answer(answer: object) -> Raw:
    if isinstance(answer, Raw):
        return answer
    if answer is REFUSED:
        return _json(400, {"status": "error", "errorType": "bad_data", "error": "1:35: parse error: unclosed left"})
    if answer is None:
        return _vector()
    if isinstance(answer, Samples):
        return _labelled(*((labels, _prometheus_value(value)) for labels, value in answer.samples))
    assert isinstance(answer, float)
    return _vector(_prometheus_value(answer))


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
    series_garbage={
        "a scalar result": _json(200, {"status": "success", "data": {"resultType": "scalar", "result": [AT, "1"]}}),
        "a result that is not a list": _vector_of({"le": "100"}),
        "an item that is not an object": _vector_of([["le", "100"]]),
        "labels that are not an object": _labelled((["le", "100"], "1")),
        "a label value that is not a string": _labelled(({"le": 100}, "1")),
        "a sample without its value": _vector_of([{"metric": {"le": "100"}}]),
        "a value that is not a number": _labelled(({"le": "100"}, "twelve")),
        "a bare JSON number for a value": _labelled(({"le": "100"}, 12)),
        "-Inf": _labelled(({"le": "100"}, "-Inf")),
    },
)


# --- the in-memory fake --------------------------------------------------------------------------------------------


def _memory_answer(answer: object) -> object:
    if isinstance(answer, Samples):
        return memory_metrics.Vector(answer.samples)
    return answer


@contextmanager
def _memory_serving(answers: dict[str, object]) -> Iterator[str]:
    backend = memory_metrics.MemoryBackend(
        answers={query: _memory_answer(value) for query, value in answers.items() if value is not REFUSED},
        refused={query for query, value in answers.items() if value is REFUSED},
    )
    with memory_metrics.serving(backend, "contract") as url:
        yield url


MEMORY = Harness(
    serving=_memory_serving,
    unreachable=lambda: memory_metrics.SCHEME + "nobody",
    garbage={"a string": "42", "+Inf": math.inf, "a boolean": True},
    series_garbage={
        "a string value": memory_metrics.Vector((({"le": "100"}, "12"),)),
        "a boolean value": memory_metrics.Vector((({"le": "100"}, True),)),
        "-Inf": memory_metrics.Vector((({"le": "100"}, -math.inf),)),
    },
)

HARNESSES = {metrics.PROMETHEUS: PROMETHEUS, memory_metrics.NAME: MEMORY}
PROVIDERS = sorted(metrics.PROVIDERS)
ANSWERS: dict[str, object] = {VALUE: 42.5, EMPTY: None, RATIO: math.nan, BROKEN: REFUSED}


def _provider(name: str, url: str, timeout: float = 5.0) -> MetricsProvider:
    return metrics.provider(name, url, timeout)


def _outcome(call: Callable[[], object]) -> object:
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


# --- series(): every sample of one instant, keyed by one label ----------------------------------------------------

SERIES_ANSWERS: dict[str, object] = {
    HISTOGRAM: Samples.keyed("le", BUCKETS),
    EMPTY: None,
    BROKEN: REFUSED,
}


def _series_outcome(name: str, answer: object, label: str = "le") -> object:
    """What series() of a query answered `answer` ended in, keyed by `label`."""
    with HARNESSES[name].serving({HISTOGRAM: answer}) as url:
        return _outcome(lambda: _provider(name, url).series(HISTOGRAM, AT, label))


def _is_garbage(outcome: object) -> bool:
    return isinstance(outcome, MetricsUnavailable) and outcome.answered is True and bool(str(outcome))


@pytest.mark.parametrize("name", PROVIDERS)
def test_series_answers_every_sample_keyed_by_the_label_and_nothing_as_an_empty_dict(name):
    with HARNESSES[name].serving(SERIES_ANSWERS) as url:
        source = _provider(name, url)
        assert _outcome(lambda: source.series(HISTOGRAM, AT, "le")) == BUCKETS
        assert _outcome(lambda: source.series(HISTOGRAM, None, "le")) == BUCKETS  # the backend's now
        assert _outcome(lambda: source.series(EMPTY, AT, "le")) == {}


@pytest.mark.parametrize("name", PROVIDERS)
def test_series_keys_by_the_label_asked_for_whatever_other_labels_a_sample_has(name):
    answer = Samples.keyed("destination_workload", {"podinfo-ga": 3.0, "podinfo-canary": 1.0}, le="100")
    assert _series_outcome(name, answer, "destination_workload") == {"podinfo-ga": 3.0, "podinfo-canary": 1.0}
    assert _is_garbage(_series_outcome(name, answer, "le"))  # two samples with le="100"


@pytest.mark.parametrize("name", PROVIDERS)
def test_series_keeps_nan_as_the_backend_computes_it(name):
    outcome = _series_outcome(name, Samples.keyed("le", {"100": math.nan, "+Inf": 0.0}))
    assert isinstance(outcome, dict) and set(outcome) == {"100", "+Inf"}
    assert math.isnan(outcome["100"]) and outcome["+Inf"] == 0.0


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Samples((({"le": "100"}, 1.0), ({"le": "100"}, 2.0))), id="the same label value twice"),
        pytest.param(Samples((({"le": "100"}, 1.0), ({"pod": "p1"}, 2.0))), id="a sample without the label"),
        pytest.param(Samples((({}, 1.0),)), id="an unlabelled sample"),
        pytest.param(Samples.keyed("le", {"100": 1.0, "+Inf": math.inf}), id="+Inf"),
        pytest.param(Samples.keyed("le", {"100": -math.inf}), id="-Inf"),
        pytest.param(42.5, id="one value"),
        pytest.param(Samples.keyed("le", {str(i): 1.0 for i in range(MAX_SERIES + 1)}), id="too many samples"),
    ],
)
def test_series_that_cannot_be_keyed_or_judged_are_garbage(name, answer):
    assert _is_garbage(_series_outcome(name, answer))


@pytest.mark.parametrize("name", PROVIDERS)
def test_series_answers_up_to_max_series_samples(name):
    buckets = {str(i): float(i) for i in range(MAX_SERIES)}
    assert _series_outcome(name, Samples.keyed("le", buckets)) == buckets


@pytest.mark.parametrize("name", PROVIDERS)
def test_series_of_a_query_the_backend_cannot_parse_is_a_bad_query(name):
    outcome = _series_outcome(name, REFUSED)
    assert isinstance(outcome, BadQuery) and str(outcome)


@pytest.mark.parametrize(
    ("name", "garbage"),
    [(name, garbage) for name in PROVIDERS for garbage in [*HARNESSES[name].garbage, *HARNESSES[name].series_garbage]],
)
def test_series_of_garbage_is_unavailable_and_answered(name, garbage):
    harness = HARNESSES[name]
    assert _is_garbage(_series_outcome(name, {**harness.garbage, **harness.series_garbage}[garbage])), garbage


@pytest.mark.parametrize("name", PROVIDERS)
def test_series_from_an_unreachable_backend_is_unavailable_without_an_answer(name):
    source = _provider(name, HARNESSES[name].unreachable(), timeout=2)
    outcome = _outcome(lambda: source.series(HISTOGRAM, AT, "le"))
    assert isinstance(outcome, MetricsUnavailable) and outcome.answered is False and str(outcome)


@pytest.mark.parametrize("name", PROVIDERS)
def test_series_after_the_operations_deadline_is_unavailable(name):
    with HARNESSES[name].serving(SERIES_ANSWERS) as url, Deadline(1.0) as deadline:
        bound = _provider(name, url).within(deadline)
        assert _outcome(lambda: bound.series(HISTOGRAM, AT, "le")) == BUCKETS
        while not deadline.expired:
            time.sleep(0.02)
        outcome = _outcome(lambda: bound.series(HISTOGRAM, AT, "le"))
    assert isinstance(outcome, MetricsUnavailable) and outcome.answered is False


@pytest.mark.parametrize("name", PROVIDERS)
def test_query_of_a_vector_answer_is_its_one_sample_and_several_are_garbage(name):
    """The same answers, asked with query(): one labelled sample is that sample's value, none is None."""
    answers: dict[str, object] = {
        HISTOGRAM: Samples.keyed("le", {"+Inf": 40.0}),
        EMPTY: Samples(()),
        GARBAGE: Samples.keyed("le", BUCKETS),
    }
    with HARNESSES[name].serving(answers) as url:
        source = _provider(name, url)
        assert _outcome(lambda: source.query(HISTOGRAM, AT)) == 40.0
        assert _outcome(lambda: source.query(EMPTY, AT)) is None
        assert _is_garbage(_outcome(lambda: source.query(GARBAGE, AT)))


# --- Prometheus over the three flavours of HTTP, against a server that hangs or answers too much --------------------

HISTOGRAM_ANSWER = _labelled(*(({"le": le}, _prometheus_value(value)) for le, value in BUCKETS.items()))


@pytest.mark.parametrize("variant", hostile.VARIANTS)
def test_prometheus_series_reads_its_answer_in_every_flavour_of_http(variant):
    reply = hostile.Reply(headers={"Content-Type": "application/json"}, body=HISTOGRAM_ANSWER.body)
    with hostile.serve(hostile.always(reply), variant) as served:
        source = _provider(metrics.PROMETHEUS, served.url)
        assert source.series(HISTOGRAM, AT, "le") == BUCKETS
        assert source.series(HISTOGRAM, AT, "le") == BUCKETS  # a second query on a connection kept alive, or a new one


@pytest.mark.parametrize("fault", [hostile.HANG, hostile.HUGE])
@pytest.mark.parametrize("variant", hostile.VARIANTS)
def test_prometheus_series_meets_the_deadline_and_size_cap_of_query(variant, fault):
    """A server that hangs past the deadline is no answer; one that answers a gigabyte is dropped at the cap.
    series() ends exactly as query() does against the same server: one transport for both."""
    reply = hostile.Reply(headers={"Content-Type": "application/json"}, body=HISTOGRAM_ANSWER.body)
    with hostile.serve(hostile.always(reply), variant, fault) as served:
        source = _provider(metrics.PROMETHEUS, served.url, timeout=0.5)
        from_series = _outcome(lambda: source.series(HISTOGRAM, AT, "le"))
        from_query = _outcome(lambda: source.query(HISTOGRAM, AT))
    assert isinstance(from_series, MetricsUnavailable) and from_series.answered is False
    assert isinstance(from_query, MetricsUnavailable)
    assert (str(from_series), from_series.answered) == (str(from_query), from_query.answered)
    expected = "did not answer within 0.5s" if fault == hostile.HANG else "bytes; not read"
    assert expected in str(from_series), from_series
    assert served.bytes_sent < 64 * 1024 * 1024


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
