"""A real Prometheus scraping testkit/exporter.py live every second (testkit/livemetrics.py): the analysis' own
queries and `canary analyze` follow traffic a test changes while it runs, with real staleness and rate windows.

One Prometheus serves the module, scraping one exporter per test (its own namespace); the restart test has its
own. Every wait is bounded; the timings a test measures are printed (pytest -s) and bounded by assertions."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from istio_canary.cli import EXIT_FAIL, EXIT_OK, EXIT_UNAVAILABLE
from istio_canary.metrics import MetricsUnavailable
from istio_canary.metrics.prometheus import Prometheus
from istio_canary.release.checks import Check, builtin_checks
from testkit.exporter import IstioExporter
from testkit.livemetrics import LivePrometheus, live_istio
from tests.integration.cli import canary
from tests.integration.conftest import project_dir, stack_text

WINDOW = "10s"  # rate() needs two samples in the window: 10 one-second scrapes
NAMESPACES = ("queries", "analyze", "stale")
CHECKS = {check.name: check for check in builtin_checks(20, 99, 500, 50)}


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[IstioExporter, LivePrometheus]]]:
    with ExitStack() as stack:
        exporters = {ns: stack.enter_context(IstioExporter(ns)) for ns in NAMESPACES}
        prom = stack.enter_context(
            LivePrometheus(tmp_path_factory.mktemp("live-prometheus"), [e.target for e in exporters.values()])
        )
        started = prom.start()
        print(f"\nPrometheus ready, 3 targets up and scraped twice in {started:.1f}s")
        assert started < 20
        yield {ns: (exporter, prom) for ns, exporter in exporters.items()}


def poll(
    read: Callable[[], float | None], until: Callable[[float | None], bool], timeout: float
) -> tuple[float, float]:
    """Call `read` until `until(value)`; return (value, seconds). Fails the test at the deadline."""
    began = time.monotonic()
    value = read()
    while not until(value):
        assert time.monotonic() - began < timeout, f"not within {timeout}s; last value {value!r}"
        time.sleep(0.2)
        value = read()
    assert value is not None
    return value, time.monotonic() - began


def reader(prom: LivePrometheus, check: Check, namespace: str, subset: str = "canary") -> Callable[[], float | None]:
    """The check's query for one workload, asked through the analysis' own client at the current time."""
    client = Prometheus(prom.url, timeout=5)
    query = check.promql(namespace, f"podinfo-{subset}", WINDOW)
    return lambda: client.query(query, time.time())


def test_the_check_queries_follow_live_traffic(bed):
    exporter, prom = bed["queries"]
    requests, success = reader(prom, CHECKS["requests"], "queries"), reader(prom, CHECKS["success_rate"], "queries")
    p99, ga_success = reader(prom, CHECKS["p99_ms"], "queries"), reader(prom, CHECKS["success_rate"], "queries", "ga")

    # Healthy: 10 rps, no errors, requests taking 25-50 ms.
    assert (requests() or 0) > 0
    assert success() == pytest.approx(100)
    value = p99()
    assert value is not None and 25 < value <= 50

    exporter.set("canary", error_share=0.2)
    _, shows = poll(success, lambda v: v is not None and v < 99, timeout=10)
    _, settles = poll(success, lambda v: v is not None and abs(v - 80) < 2, timeout=25)
    print(f"\n20% errors: success < 99% after {shows:.1f}s, ~80% after {shows + settles:.1f}s (window {WINDOW})")
    assert ga_success() == pytest.approx(100)  # GA untouched

    exporter.set("canary", error_share=0, latency_ms=300)  # 150-300 ms: p99 in Istio's (250, 500] bucket
    _, slow = poll(p99, lambda v: v is not None and 250 < v <= 500, timeout=25)
    exporter.set("canary", latency_ms=2000)  # 1000-2000 ms: (1000, 2500]
    _, slower = poll(p99, lambda v: v is not None and 1000 < v <= 2500, timeout=25)
    print(f"p99 into (250, 500] after {slow:.1f}s, into (1000, 2500] after {slower:.1f}s")
    _, recovered = poll(success, lambda v: v == pytest.approx(100), timeout=25)
    print(f"success back to 100% {recovered:.1f}s later (the errors had to leave the window)")


def test_canary_analyze_passes_then_fails_on_injected_errors(bed, tmp_path, capsys):
    exporter, prom = bed["analyze"]
    stack = stack_text(namespace="analyze", weight=10, window="15s") + "  istio-canary:analysisMinRequests: 20\n"
    directory = project_dir(tmp_path, stack)

    def analyze() -> tuple[int, dict]:
        result = canary(capsys, "analyze", "-C", directory, "--prometheus", prom.url, "--json", "--timeout", 5)
        return result.code, json.loads(result.out)

    poll(reader(prom, CHECKS["requests"], "analyze"), lambda v: (v or 0) >= 20, timeout=15)  # the gate's evidence
    code, data = analyze()
    assert (code, data["verdict"]) == (EXIT_OK, "pass"), data["reasons"]
    assert data["window"] == "15s"
    assert data["canary"]["requests"] >= 20 and data["canary"]["success_rate"] == pytest.approx(100)

    exporter.set("canary", error_share=0.2)
    began = time.monotonic()
    while True:
        code, data = analyze()
        if code == EXIT_FAIL:
            break
        assert code == EXIT_OK and time.monotonic() - began < 15, data
        time.sleep(0.2)
    print(f"\ncanary analyze: pass -> fail {time.monotonic() - began:.1f}s after 20% errors were injected")
    assert data["verdict"] == "fail" and data["canary"]["success_rate"] < 99
    assert [reason.split()[0] for reason in data["reasons"]] == ["success_rate"]


def test_a_vanished_workload_and_a_down_target_go_stale(bed):
    exporter, prom = bed["stale"]
    matchers = 'reporter="destination", destination_workload_namespace="stale", destination_workload="podinfo-{}"'
    instant = "sum(istio_requests_total{" + matchers.format("canary") + "})"
    windowed = reader(prom, CHECKS["requests"], "stale")
    assert (prom.value(instant) or 0) > 0

    exporter.remove("canary")
    _, gone = prom.wait_until(instant, lambda v: v is None, timeout=10)
    # Staleness markers empty the instant selector at once; rate windows still hold the samples before them.
    still = windowed()
    assert still is not None and still > 0
    began = time.monotonic()
    prom.wait_until(CHECKS["requests"].promql("stale", "podinfo-canary", WINDOW), lambda v: v is None, timeout=20)
    drained = time.monotonic() - began
    print(f"\nworkload removed: instant query empty after {gone:.1f}s, {WINDOW} increase() empty {drained:.1f}s later")

    exporter.set("canary", rps=10)
    prom.wait_until(instant, lambda v: v is not None, timeout=10)

    up = f'up{{instance="{exporter.target}"}}'
    ga = "sum(istio_requests_total{" + matchers.format("ga") + "})"
    exporter.down()
    _, noticed = prom.wait_until(up, lambda v: v == 0, timeout=10)
    prom.wait_until(ga, lambda v: v is None, timeout=5)  # a failed scrape marks the target's series stale
    assert prom.targets_health().count("down") == 1
    exporter.up()
    _, back = prom.wait_until(up, lambda v: v == 1, timeout=10)
    prom.wait_until(ga, lambda v: v is not None, timeout=5)
    print(f"target down: up == 0 after {noticed:.1f}s; back up: up == 1 after {back:.1f}s")


def test_prometheus_down_and_back_with_its_data(tmp_path, capsys):
    with live_istio(tmp_path / "bed", "restart") as (exporter, prom):
        client = Prometheus(prom.url, timeout=2)
        query = CHECKS["success_rate"].promql("restart", "podinfo-canary", WINDOW)
        before = time.time()
        assert client.query(query, before) == pytest.approx(100)
        assert exporter.serving and prom.running
        prom.stop()
        with pytest.raises(MetricsUnavailable, match=r"unreachable|refused"):
            client.query(query, time.time())
        directory = project_dir(tmp_path / "project", stack_text(namespace="restart", weight=10, window="10s"))
        result = canary(capsys, "analyze", "-C", directory, "--prometheus", prom.url, "--timeout", 2)
        assert result.code == EXIT_UNAVAILABLE
        restarted = prom.start()
        print(f"\nPrometheus restarted (same port and TSDB) and scraping again in {restarted:.1f}s")
        assert client.query(query, before) == pytest.approx(100)  # what it had before going down
        assert client.query(query, time.time()) == pytest.approx(100)  # and live again
    # Both stopped on the way out: nothing listens any more, and Prometheus shut down cleanly (SIGTERM).
    for address in (f"{prom.url}/-/ready", exporter.url):
        with pytest.raises(OSError):
            urllib.request.urlopen(address, timeout=2)
    assert not prom.running and not exporter.serving
    assert "See you next time" in prom.log.read_text()
