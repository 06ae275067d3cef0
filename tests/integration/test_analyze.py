"""`canary analyze` and `canary status` against a real Prometheus loaded with generated Istio metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rollout.cli import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from tests.integration import servers
from tests.integration.cli import canary
from tests.integration.conftest import ROOT, stack_text


def stack_dir(tmp_path: Path, namespace: str, weight: int = 10) -> Path:
    """A directory (not a git repo: analyze needs none) with a stack file for one scenario."""
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_text(namespace=namespace, weight=weight))
    return tmp_path


def analyze_json(
    capsys: pytest.CaptureFixture[str], prom: servers.PrometheusServer, directory: Path
) -> tuple[int, dict]:
    result = canary(capsys, "analyze", "-C", directory, "--prometheus", prom.url, "--at", prom.end, "--json")
    return result.code, json.loads(result.out)


def test_healthy_canary_passes(tmp_path, capsys, prom):
    code, data = analyze_json(capsys, prom, stack_dir(tmp_path, "healthy"))
    assert code == EXIT_OK
    assert data["verdict"] == "pass"
    assert data["canary"]["requests"] == pytest.approx(3000)  # 10 rps x 5m
    assert data["canary"]["success_rate"] == pytest.approx(100)
    assert 100 < data["canary"]["p99_ms"] <= 250  # the data puts the 99th percentile in the 100-250ms bucket
    assert data["ga"]["workload"] == "podinfo-ga"
    assert data["ga"]["requests"] == pytest.approx(3000)


def test_five_percent_errors_fail(tmp_path, capsys, prom):
    code, data = analyze_json(capsys, prom, stack_dir(tmp_path, "errors"))
    assert code == EXIT_FAIL
    assert data["verdict"] == "fail"
    assert data["canary"]["success_rate"] == pytest.approx(95)
    assert any("success rate 95.00%" in reason for reason in data["reasons"])


def test_slow_canary_fails(tmp_path, capsys, prom):
    code, data = analyze_json(capsys, prom, stack_dir(tmp_path, "slow"))
    assert code == EXIT_FAIL
    assert data["canary"]["p99_ms"] > 500
    assert data["canary"]["success_rate"] == pytest.approx(100)
    assert any("p99" in reason for reason in data["reasons"])


@pytest.mark.parametrize("namespace", ["idle", "low", "no-such-namespace"])
def test_no_or_little_traffic_is_inconclusive(tmp_path, capsys, prom, namespace):
    code, data = analyze_json(capsys, prom, stack_dir(tmp_path, namespace))
    assert code == EXIT_INCONCLUSIVE
    assert data["verdict"] == "inconclusive"


def test_before_the_data_is_inconclusive(tmp_path, capsys, prom):
    directory = stack_dir(tmp_path, "healthy")
    result = canary(capsys, "analyze", "-C", directory, "--prometheus", prom.url, "--at", prom.end - 7200)
    assert result.code == EXIT_INCONCLUSIVE
    assert "verdict: INCONCLUSIVE" in result.out


def test_thresholds_come_from_stack_config(tmp_path, capsys, prom):
    directory = stack_dir(tmp_path, "slow")
    stack = directory / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  istio-canary:analysisMaxP99Ms: 1000\n")
    code, data = analyze_json(capsys, prom, directory)
    assert code == EXIT_OK
    assert data["max_p99_ms"] == 1000


def test_human_table(tmp_path, capsys, prom):
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(prom.end))  # RFC 3339 form of --at
    result = canary(capsys, "analyze", "-C", stack_dir(tmp_path, "errors"), "--prometheus", prom.url, "--at", at)
    assert result.code == EXIT_FAIL
    assert "canary (podinfo-canary)" in result.out
    assert "95.0%" in result.out
    assert "verdict: FAIL" in result.out


def test_prometheus_down_exits_3(tmp_path, capsys):
    url = f"http://127.0.0.1:{servers.free_port()}"
    result = canary(capsys, "analyze", "-C", stack_dir(tmp_path, "healthy"), "--prometheus", url, "--timeout", 2)
    assert result.code == EXIT_UNAVAILABLE
    assert "unreachable" in result.err


def test_prometheus_slow_exits_3(tmp_path, capsys):
    def sleepy(_request):
        time.sleep(1.5)
        return 200, {"Content-Type": "application/json"}, b"{}"

    with servers.stub(sleepy) as (url, _seen):
        result = canary(capsys, "analyze", "-C", stack_dir(tmp_path, "healthy"), "--prometheus", url, "--timeout", 0.3)
    assert result.code == EXIT_UNAVAILABLE
    assert "did not answer within 0.3s" in result.err


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, b'{"status":"error","error":"boom"}', "HTTP 500: boom"),
        (200, b"<html>proxy login</html>", "malformed"),
        (200, b'{"status":"error","error":"bad query"}', "refused the query"),
    ],
)
def test_prometheus_errors_exit_3(tmp_path, capsys, status, body, message):
    with servers.stub(lambda _request: (status, {"Content-Type": "application/json"}, body)) as (url, seen):
        result = canary(capsys, "analyze", "-C", stack_dir(tmp_path, "healthy"), "--prometheus", url, "--json")
    assert result.code == EXIT_UNAVAILABLE
    assert message in result.err
    assert json.loads(result.out)["verdict"] == "unavailable"
    assert "time=" in seen[0].path  # every query is pinned to an explicit evaluation time


def test_missing_url_and_bad_time_are_bad_input(tmp_path, capsys, prom):
    directory = stack_dir(tmp_path, "healthy")
    assert canary(capsys, "analyze", "-C", directory).code == EXIT_REFUSED
    result = canary(capsys, "analyze", "-C", directory, "--prometheus", prom.url, "--at", "yesterday")
    assert result.code == EXIT_REFUSED
    assert "RFC 3339" in result.err


def test_bad_config_is_refused(tmp_path, capsys, prom):
    directory = stack_dir(tmp_path, "healthy")
    stack = directory / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  istio-canary:analysisWindow: five minutes\n")
    result = canary(capsys, "analyze", "-C", directory, "--prometheus", prom.url)
    assert result.code == EXIT_REFUSED
    assert "analysisWindow" in result.err


def test_status_with_live_metrics(tmp_path, capsys, prom):
    directory = stack_dir(tmp_path, "healthy", weight=60)
    result = canary(capsys, "status", "-C", directory, "--prometheus", prom.url, "--at", prom.end, "--json")
    assert result.code == EXIT_OK
    data = json.loads(result.out)
    assert data["canary"] == {"workload": "podinfo-canary", "version": "6.9.0", "weight": 60}
    assert data["ga"]["weight"] == 40
    assert data["analysis"]["verdict"] == "pass"
    assert data["next"] == {"action": "promote", "to": 100}
    text = canary(capsys, "status", "-C", directory).out
    assert "6.9.0" in text and "60%" in text and "next: 100" in text


def test_console_entry_point_exit_code(tmp_path, prom):
    # The real process path: `python -m rollout` is what the `canary` script runs.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rollout",
            "analyze",
            "-C",
            str(stack_dir(tmp_path, "errors")),
            "--prometheus",
            prom.url,
            "--at",
            str(prom.end),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_FAIL, done.stderr
