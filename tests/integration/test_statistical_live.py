"""The statistical judge end to end: a real Prometheus scraping a live Istio exporter, read through the
Prometheus provider and `canary analyze`, on scenarios whose verdict is known (the harness, testkit/judgesim.py,
reaches the same ones on the same rates: tests/unit/test_judgesim.py)."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from istio_canary import analysis, metrics
from istio_canary.stackfile import StackFile
from testkit.exporter import IstioExporter, Traffic
from testkit.livemetrics import live_prometheus
from tests.integration.cli import canary
from tests.integration.conftest import project_dir, stack_text

STATISTICAL = """  istio-canary:analysisJudge: statistical
  istio-canary:analysisInterval: 5s
"""
SETTLE_S = 25.0  # long enough for hundreds of canary requests at 30 rps, inside the window judged


def statistical_stack(tmp_path: Path, namespace: str, weight: int) -> Path:
    text = stack_text(namespace=namespace, weight=weight, window="20s")
    return project_dir(tmp_path / namespace, text.replace("config:\n", "config:\n" + STATISTICAL, 1))


def judge_live(directory: Path, url: str, step_age_s: float) -> analysis.Analysis:
    view = StackFile(directory / "Pulumi.dev.yaml").view()
    source = metrics.provider(metrics.PROMETHEUS, url, 10.0, None)
    return analysis.analyze(view, source, time.time(), step_age_s=step_age_s)


SCENARIOS = {
    # namespace: (GA, canary, weight in the stack file, verdict, the finding that decides it)
    "same": (Traffic(rps=270), Traffic(rps=30), 10, "pass", "errors"),
    "errors": (Traffic(rps=270, error_share=0.005), Traffic(rps=30, error_share=0.1), 10, "fail", "errors"),
    "slower": (Traffic(rps=270, latency_ms=40), Traffic(rps=30, latency_ms=400), 10, "fail", "latency"),
    "misrouted": (Traffic(rps=210), Traffic(rps=90), 10, "inconclusive", "traffic_share"),
}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """One Prometheus scraping one exporter per scenario, all started together and left to serve SETTLE_S."""
    workdir = tmp_path_factory.mktemp("statistical-live")
    with ExitStack() as stack:
        exporters = {
            name: stack.enter_context(IstioExporter(name, ga=ga, canary=canary_traffic))
            for name, (ga, canary_traffic, *_rest) in SCENARIOS.items()
        }
        prom = stack.enter_context(live_prometheus(workdir, [e.target for e in exporters.values()]))
        started = time.time()
        time.sleep(SETTLE_S)
        yield workdir, prom, started


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_live_verdicts(live, scenario):
    workdir, prom, started = live
    _ga, _canary, weight, verdict, decided_by = SCENARIOS[scenario]
    directory = statistical_stack(workdir, scenario, weight)
    result = judge_live(directory, prom.url, time.time() - started)
    assert result.verdict.value == verdict, result.reasons
    by_name = {finding.name: finding for finding in result.findings}
    decisive = by_name[decided_by]
    assert decisive.result == {"pass": "pass", "fail": "fail", "inconclusive": "blocked"}[verdict]
    assert any(decisive.reason in reason for reason in result.reasons)
    served = dict(by_name["errors"].numbers)["canary_requests"]
    assert served > 0.5 * SCENARIOS[scenario][1].rps * SETTLE_S  # the whole step was judged, not one window


def test_canary_analyze_prints_the_evidence(live, tmp_path, capsys):
    """Outside Git the step is analysisWindow (20s here): the JSON carries every finding's numbers."""
    _workdir, prom, _started = live
    directory = statistical_stack(tmp_path, "errors", 10)
    result = canary(capsys, "analyze", "-C", directory, "--prometheus", prom.url, "--json")
    table = canary(capsys, "analyze", "-C", directory, "--prometheus", prom.url)
    data = json.loads(result.out)
    assert result.code == 1 and data["verdict"] == "fail" and data["judge"] == "statistical"
    errors = next(f for f in data["findings"] if f["name"] == "errors")
    assert errors["result"] == "fail" and errors["canary_errors"] > 0 and errors["llr_or_more"] >= errors["fail_at"]
    assert "interval" in errors["estimate"]
    assert "statistical judge" in table.out and "log-likelihood ratio" in table.out
