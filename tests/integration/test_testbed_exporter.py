"""testkit/exporter.py on its own: Istio's names, labels and buckets, traffic as configured, a workload that
disappears, a target that goes down, and threads that stop. Prometheus scraping it: test_testbed_prometheus.py."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from testkit.exporter import LABELS, IstioExporter, Traffic
from testkit.servers import BUCKETS

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"  # what Prometheus asks


def fetch(exporter: IstioExporter, accept: str = "") -> str:
    request = urllib.request.Request(exporter.url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read().decode()


def samples(exporter: IstioExporter) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in parse_text(fetch(exporter)) for s in family.samples]


def destination(exporter: IstioExporter, workload: str, name: str = "istio_requests_total") -> dict[str, float]:
    """Value per response code of one workload's server-side series of `name`."""
    return {
        labels["response_code"]: value
        for sample, labels, value in samples(exporter)
        if sample == name and labels["reporter"] == "destination" and labels["destination_workload"] == workload
    }


def test_istio_names_labels_and_default_buckets():
    with IstioExporter("demo") as exporter:
        time.sleep(0.3)
        families = {family.name: family for family in parse_text(fetch(exporter))}
        assert families["istio_requests"].type == "counter"
        assert families["istio_request_duration_milliseconds"].type == "histogram"
        names = {s.name for family in families.values() for s in family.samples}
        assert names == {
            "istio_requests_total",
            "istio_request_duration_milliseconds_bucket",
            "istio_request_duration_milliseconds_sum",
            "istio_request_duration_milliseconds_count",
        }  # no _created series: Envoy has none either
        series = [labels for _name, labels, _value in samples(exporter)]
        assert {frozenset(labels) - {"le"} for labels in series} == {frozenset(LABELS)}
        assert {(s["destination_workload"], s["destination_version"]) for s in series} == {
            ("podinfo-ga", "6.8.0"),
            ("podinfo-canary", "6.9.0"),
        }
        assert {s["destination_workload_namespace"] for s in series} == {"demo"}
        assert {s["reporter"] for s in series} == {"destination", "source"}
        bounds = [
            s["le"] for name, s, _ in samples(exporter) if name.endswith("_bucket") and s["response_code"] == "200"
        ]
        assert bounds[: len(BUCKETS) + 1] == [*(f"{b:g}" for b in BUCKETS), "+Inf"]  # as Envoy writes them (%g)
        assert BUCKETS[:3] == (0.5, 1, 5) and BUCKETS[-1] == 3600000  # Istio's defaults, 0.5 ms to 1 h
        # What Prometheus negotiates (OpenMetrics) parses too, with the same counter.
        om = {family.name: family for family in parse_openmetrics(fetch(exporter, OPENMETRICS))}
        assert om["istio_requests"].type == "counter"
        assert any(s.name == "istio_requests_total" for s in om["istio_requests"].samples)


def test_traffic_follows_the_settings():
    with IstioExporter("demo", tick_s=0.05) as exporter:
        # A new version: new pods, counters from 0, so every observation below is at the new settings.
        started = time.monotonic()
        exporter.set("canary", rps=200, error_share=0.2, client_error_share=0.1, latency_ms=300, version="6.9.1")
        time.sleep(1.0)
        served = exporter.served("canary")
        elapsed = time.monotonic() - started
        total = sum(served.values())
        assert 200 * 0.8 * elapsed <= total <= 200 * 1.2 * elapsed
        assert abs(served["503"] - 0.2 * total) <= 1 and abs(served["404"] - 0.1 * total) <= 1
        counts = destination(exporter, "podinfo-canary")
        assert counts["503"] >= served["503"] and counts["404"] >= served["404"]  # the scrape came after
        buckets = [
            (labels["le"], value)
            for name, labels, value in samples(exporter)
            if name == "istio_request_duration_milliseconds_bucket"
            and labels["destination_workload"] == "podinfo-canary"
            and labels["reporter"] == "destination"
            and labels["response_code"] == "200"
        ]
        cumulative = dict(buckets)
        # Every request took 150-300 ms: none at or under 100, all at or under 500, some on each side of 250.
        assert cumulative["100"] == 0 and cumulative["500"] == cumulative["+Inf"] > 0
        assert 0 < cumulative["250"] < cumulative["+Inf"]
        sums = destination(exporter, "podinfo-canary", "istio_request_duration_milliseconds_sum")
        assert 150 <= sums["200"] / cumulative["+Inf"] <= 300
        assert {labels["destination_version"] for _, labels, _ in samples(exporter)} >= {"6.9.1"}
        assert "6.9.0" not in {labels["destination_version"] for _, labels, _ in samples(exporter)}


def test_a_workload_disappears_and_comes_back_from_zero():
    with IstioExporter("demo", canary=Traffic(rps=100)) as exporter:
        time.sleep(0.5)
        before = destination(exporter, "podinfo-canary")["200"]
        exporter.remove("canary")
        assert exporter.traffic("canary") is None
        assert destination(exporter, "podinfo-canary") == {}
        assert destination(exporter, "podinfo-ga")  # GA untouched
        exporter.set("canary", rps=1)
        time.sleep(0.2)
        after = destination(exporter, "podinfo-canary").get("200", 0)
        assert after < before  # a new pod's counters
        assert exporter.traffic("canary") == Traffic(rps=1, version="6.9.0")  # defaults, not the removed settings


def test_split_routes_traffic_like_a_virtualservice():
    with IstioExporter("demo") as exporter:
        exporter.split(10, total_rps=50)
        assert (exporter.traffic("canary").rps, exporter.traffic("ga").rps) == (5, 45)
        exporter.split(0)
        assert (exporter.traffic("canary").rps, exporter.traffic("ga").rps) == (0, 20)
        with pytest.raises(ValueError):
            exporter.split(101)


def test_down_refuses_connections_and_up_serves_the_same_port():
    with IstioExporter("demo", canary=Traffic(rps=100)) as exporter:
        port = exporter.port
        time.sleep(0.2)
        first = destination(exporter, "podinfo-canary")["200"]
        exporter.down()
        assert not exporter.serving
        with pytest.raises(urllib.error.URLError) as refused:
            fetch(exporter)
        assert "refused" in str(refused.value).lower()
        time.sleep(0.3)  # traffic keeps being counted while nobody can scrape it
        exporter.up()
        assert exporter.port == port and exporter.serving
        assert destination(exporter, "podinfo-canary")["200"] >= first + 20


def test_close_stops_every_thread_and_the_port():
    before = set(threading.enumerate())
    exporter = IstioExporter("demo")
    url = exporter.url
    exporter.close()
    exporter.close()  # idempotent
    assert not (set(threading.enumerate()) - before)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


@pytest.mark.parametrize(
    "changes",
    [{"error_share": 1.5}, {"rps": -1}, {"latency_ms": 0}, {"error_share": 0.6, "client_error_share": 0.6}],
)
def test_impossible_traffic_is_refused(changes):
    with IstioExporter("demo") as exporter:
        with pytest.raises(ValueError):
            exporter.set("canary", **changes)
        with pytest.raises(ValueError):
            exporter.set("primary", rps=1)
        assert exporter.traffic("canary") == Traffic(rps=10, version="6.9.0")
