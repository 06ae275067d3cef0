"""`canary analyze` and `canary status` against a real Prometheus loaded with generated Istio metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from istio_canary.cli import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from tests.integration import servers
from tests.integration.cli import canary
from tests.integration.conftest import ROOT, project_dir, stack_text


def stack_dir(tmp_path: Path, namespace: str, weight: int = 10) -> Path:
    """A directory (not a git repo: analyze needs none) with a stack file for one scenario."""
    return project_dir(tmp_path, stack_text(namespace=namespace, weight=weight))


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
    assert data["reasons"] == ["success_rate 95.0% is not >= 99.0%"]


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
    stack.write_text(
        stack.read_text() + '  istio-canary:analysisMaxP99Ms: 1000\n  istio-canary:analysisMaxP99OverGaPct: ""\n'
    )
    code, data = analyze_json(capsys, prom, directory)
    assert code == EXIT_OK, data["reasons"]
    p99 = next(check for check in data["checks"] if check["name"] == "p99_ms")
    assert (p99["threshold"], p99["max_worse_than_ga_pct"], p99["result"]) == (1000, None, "pass")


def test_a_canary_under_the_bar_but_worse_than_ga_fails(tmp_path, capsys, prom):
    # p99 about 1000ms against GA's 220ms: under an absolute bar of 2000ms, but far over GA's +50 %.
    directory = stack_dir(tmp_path, "slow")
    stack = directory / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  istio-canary:analysisMaxP99Ms: 2000\n")
    code, data = analyze_json(capsys, prom, directory)
    assert code == EXIT_FAIL
    [reason] = data["reasons"]
    assert reason.startswith("p99_ms ") and "is worse than GA's 220ms allows (330ms)" in reason


def test_human_table(tmp_path, capsys, prom):
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(prom.end))  # RFC 3339 form of --at
    result = canary(capsys, "analyze", "-C", stack_dir(tmp_path, "errors"), "--prometheus", prom.url, "--at", at)
    assert result.code == EXIT_FAIL
    lines = result.out.splitlines()
    assert lines[0].split() == ["check", "canary", "ga", "rule", "result"]
    assert lines[3].split() == ["success_rate", "95.0%", "100.0%", ">=", "99.0%", "fail"]
    assert "podinfo-canary vs podinfo-ga, window 5m" in result.out
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
    assert data["next"] == {"action": "promote", "to": 100, "needs_analysis": True, "shape": ""}
    text = canary(capsys, "status", "-C", directory).out
    assert "6.9.0" in text and "60%" in text and "next: 100" in text


def test_console_entry_point_exit_code(tmp_path, prom):
    # The real process path: `python -m istio_canary` is what the `canary` script runs.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "istio_canary",
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


def test_client_errors_do_not_count_as_failures(tmp_path, capsys, prom):
    # 20 % of the canary's answers are 404: the client's fault, so the canary still passes at 100 %.
    code, data = analyze_json(capsys, prom, stack_dir(tmp_path, "client-errors"))
    assert code == EXIT_OK, data["reasons"]
    assert data["canary"]["requests"] == pytest.approx(3000)
    assert data["canary"]["success_rate"] == pytest.approx(100)


def test_errors_scenario_fails_on_success_rate_alone(tmp_path, capsys, prom):
    code, data = analyze_json(capsys, prom, stack_dir(tmp_path, "errors"))
    assert code == EXIT_FAIL
    assert [c["result"] for c in data["checks"]] == ["pass", "fail", "pass"]  # latency is fine ...
    assert data["reasons"] == ["success_rate 95.0% is not >= 99.0%"]  # ... the success rate is the reason


@pytest.mark.parametrize(
    "answer", [b"SSH-2.0-OpenSSH_9.2\r\n", b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"status"']
)
def test_broken_http_from_prometheus_is_unavailable_not_fail(tmp_path, capsys, answer):
    # A bad status line or a truncated body used to escape as an exception: exit 1, "analysis failed".
    with servers.raw_stub(answer) as url:
        result = canary(capsys, "analyze", "-C", stack_dir(tmp_path, "healthy"), "--prometheus", url, "--json")
    assert result.code == EXIT_UNAVAILABLE, result.err
    assert "broken HTTP answer" in result.err
    assert json.loads(result.out)["verdict"] == "unavailable"


def test_malformed_prometheus_urls(tmp_path, capsys, monkeypatch):
    directory = stack_dir(tmp_path, "healthy")
    # Not a URL at all (an unclosed IPv6 bracket, a port past 65535): bad input, refused with a message.
    for url in ("http://[::1", "http://127.0.0.1:99999"):
        result = canary(capsys, "analyze", "-C", directory, "--prometheus", url)
        assert result.code == EXIT_REFUSED, url
        assert "--prometheus: " in result.err and "malformed URL" in result.err and "Traceback" not in result.err
    # No scheme: bad input, from the option and from the environment.
    result = canary(capsys, "analyze", "-C", directory, "--prometheus", "127.0.0.1:9090")
    assert result.code == EXIT_REFUSED
    assert "--prometheus: " in result.err and "not an http(s) URL" in result.err
    monkeypatch.setenv("PROMETHEUS_URL", "prometheus:9090")
    result = canary(capsys, "analyze", "-C", directory)
    assert result.code == EXIT_REFUSED
    assert "$PROMETHEUS_URL" in result.err


def test_timeout_must_be_positive(tmp_path, capsys, prom):
    directory = stack_dir(tmp_path, "healthy")
    for value in ("0", "-1", "nan"):
        with pytest.raises(SystemExit) as stopped:
            canary(capsys, "analyze", "-C", directory, "--prometheus", prom.url, "--timeout", value)
        assert stopped.value.code == EXIT_REFUSED  # argparse's usage error, mapped from 2 to 4
        assert "above 0" in capsys.readouterr().err


def test_unexpected_exception_is_its_own_exit_code(tmp_path, capsys, prom, monkeypatch):
    # A bug must never look like a verdict (1 = fail would make promote.yml roll back a healthy canary).
    def boom(*_args, **_kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr("istio_canary.analysis.analyze", boom)
    result = canary(capsys, "analyze", "-C", stack_dir(tmp_path, "healthy"), "--prometheus", prom.url)
    assert result.code == EXIT_INTERNAL
    assert result.err.strip() == "internal error (a bug in canary): KeyError: 'surprise'"


def test_status_with_prometheus_down_still_prints_the_config(tmp_path, capsys):
    url = f"http://127.0.0.1:{servers.free_port()}"
    directory = stack_dir(tmp_path, "healthy", weight=60)
    result = canary(capsys, "status", "-C", directory, "--prometheus", url, "--timeout", 2, "--json")
    assert result.code == EXIT_UNAVAILABLE
    data = json.loads(result.out)
    assert data["canary"]["weight"] == 60 and data["next"] == {
        "action": "promote",
        "to": 100,
        "needs_analysis": True,
        "shape": "",
    }
    assert "unreachable" in data["analysis"]["error"]
    text = canary(capsys, "status", "-C", directory, "--prometheus", url, "--timeout", 2)
    assert text.code == EXIT_UNAVAILABLE
    assert "60%" in text.out and "analysis unavailable" in text.out


def test_subcommand_help_lists_its_own_exit_codes_options_and_defaults(capsys):
    from istio_canary.cli import COMMANDS

    for command, module in COMMANDS.items():
        with pytest.raises(SystemExit) as stopped:
            canary(capsys, command, "--help")
        assert stopped.value.code == 0
        out = capsys.readouterr().out
        listed = [int(line.split()[0]) for line in out.split("exit codes:\n")[1].splitlines() if line.strip()]
        assert listed == list(module.EXITS), command
        assert "(default: dev)" in out and "env: CANARY_STACK" in out, command
        assert ("--json" in out) == ("json" in module.USES), command
    assert "3  Prometheus" not in capsys.readouterr().out  # rollback never exits 3: it does not wait for metrics


def test_version(capsys):
    with pytest.raises(SystemExit) as stopped:
        canary(capsys, "--version")
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith("canary 0.1.0")


# --- checks as data: a stack's own checks against the real Prometheus -------------------------------------

NOT_FOUND = (
    'sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace="{namespace}", '
    'destination_workload="{workload}", response_code="404"}[{window}])) or vector(0)'
)


def with_checks(directory: Path, checks: str) -> Path:
    stack = directory / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  istio-canary:analysisChecks:\n" + checks)
    return directory


def test_a_stacks_own_check_runs_and_decides(tmp_path, capsys, prom):
    entry = f"    - name: not_found_per_s\n      query: '{NOT_FOUND}'\n      max: 1\n      unit: req/s\n"
    healthy = with_checks(stack_dir(tmp_path / "a", "healthy"), entry)
    code, data = analyze_json(capsys, prom, healthy)
    assert code == EXIT_OK, data["reasons"]
    assert data["canary"]["not_found_per_s"] == 0 and data["checks"][-1]["result"] == "pass"
    # 20 % of 10 rps are 404s: 2 per second, over the max of 1. The built-in checks still pass.
    noisy = with_checks(stack_dir(tmp_path / "b", "client-errors"), entry)
    code, data = analyze_json(capsys, prom, noisy)
    assert code == EXIT_FAIL
    assert data["reasons"] == ["not_found_per_s 2 req/s is not <= 1 req/s"]
    assert data["canary"]["not_found_per_s"] == pytest.approx(2)
    result = canary(capsys, "analyze", "-C", noisy, "--prometheus", prom.url, "--at", prom.end)
    assert "not_found_per_s" in result.out and "fail" in result.out  # the table has the row too


def test_a_check_prometheus_cannot_parse_is_a_config_error(tmp_path, capsys, prom):
    # Balanced and with {workload}: passes the offline check; Prometheus' parser refuses `by by`.
    bad = 'sum by by (x) (rate(m{w="{workload}"}[{window}]))'
    directory = with_checks(stack_dir(tmp_path, "healthy"), f"    - name: broken\n      query: '{bad}'\n      max: 1\n")
    result = canary(capsys, "analyze", "-C", directory, "--prometheus", prom.url, "--at", prom.end)
    assert result.code == EXIT_REFUSED
    assert "check broken: Prometheus could not parse its query" in result.err


def test_the_built_in_check_queries_parse_with_promtool(tmp_path):
    # promtool's rule checker parses each expression with Prometheus' own PromQL parser, offline.
    from istio_canary.release.checks import builtin_checks

    checks = builtin_checks(100, 99.0, 500, 50)
    rules = {
        "groups": [
            {
                "name": "canary-checks",
                "rules": [
                    {"record": f"canary:{check.name}", "expr": check.promql("test", "podinfo-canary", "5m")}
                    for check in checks
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    done = subprocess.run(
        [servers.binary("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(checks)} rules found" in done.stdout


def test_no_series_at_all_reads_as_zero_requests_not_null(tmp_path, capsys, prom):
    code, data = analyze_json(capsys, prom, stack_dir(tmp_path, "no-such-namespace"))
    assert code == EXIT_INCONCLUSIVE
    assert data["canary"]["requests"] == 0 and data["canary"]["p99_ms"] is None
    assert data["reasons"] == ["canary served 0 requests in the window, fewer than 100"]
