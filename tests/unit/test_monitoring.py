"""components/monitoring.py: pinned Prometheus and Grafana charts, the generated canary dashboard, the PromQL."""

from __future__ import annotations

import json
import re

import pytest

from components.dashboard import canary_dashboard
from istio_canary.metrics import istio_observer
from istio_canary.release.checks import MAX, Check, builtin_checks
from stacks import settings
from tests.unit.conftest import GCP, Program, config

RELEASE = "kubernetes:helm.sh/v3:Release"
MONITORING = "istio-canary:monitoring:Monitoring"
PROMETHEUS_REPO = "https://prometheus-community.github.io/helm-charts"
GRAFANA_REPO = "https://grafana-community.github.io/helm-charts"
EXACT_VERSION = re.compile(r"\d+\.\d+\.\d+")

# The seed's queries, written out by hand for namespace "shop" and app "web": the dashboard must produce these.
SHOP_WEB = 'reporter="destination", destination_workload_namespace="shop", destination_workload=~"web-(ga|canary)"'
RATE = f"sum by (destination_workload) (rate(istio_requests_total{{{SHOP_WEB}}}[1m]))"
P99 = (
    "histogram_quantile(0.99, sum by (le, destination_workload) "
    f"(rate(istio_request_duration_milliseconds_bucket{{{SHOP_WEB}}}[1m])))"
)


def monitoring_releases(run: Program) -> dict[str, dict]:
    return {r.inputs["chart"]: r.inputs for r in run.of_type(RELEASE) if r.inputs["namespace"] == "monitoring"}


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)([smh])", duration)
    assert match, duration
    number, unit = match.groups()
    return int(number) * {"s": 1, "m": 60, "h": 3600}[unit]


def balanced(expr: str) -> bool:
    """Brackets pair up outside string literals (a cheap stand-in for a PromQL parser)."""
    pairs, stack = {")": "(", "}": "{", "]": "["}, []
    for token in re.sub(r'"[^"]*"', '""', expr):
        if token in "({[":
            stack.append(token)
        elif token in pairs and (not stack or stack.pop() != pairs[token]):
            return False
    return not stack


# --- the dashboard -----------------------------------------------------------------------------------------


CHECKS = builtin_checks(min_requests=100, min_success_rate=99.0, max_p99_ms=500, max_p99_over_ga_pct=50)
ERRORS_PER_S = Check(
    "errors_per_s",
    'sum(rate(istio_requests_total{destination_workload_namespace="{namespace}", destination_workload="{workload}",'
    ' response_code=~"5.."}[{window}])) or vector(0)',
    MAX,
    0.5,
    unit="req/s",
)


def test_dashboard_is_grafana_dashboard_json() -> None:
    dashboard = canary_dashboard("shop", "web", (*CHECKS, ERRORS_PER_S))
    assert json.loads(json.dumps(dashboard)) == dashboard
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) == 5  # the rate, one per judged check (the request gate has none), the agent
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["type"] == "timeseries"
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, "Grafana's grid is 24 columns wide"
        covered = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & covered, f"panel {panel['title']} overlaps another"
        cells |= covered
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and balanced(target["expr"])
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])


def test_the_rate_panel_and_one_panel_per_check_split_by_version() -> None:
    panels = canary_dashboard("shop", "web", (*CHECKS, ERRORS_PER_S))["panels"]
    assert panels[0]["targets"][0]["expr"] == RATE
    assert panels[0]["targets"][0]["legendFormat"] == "{{destination_workload}}"
    by_title = {panel["title"].split(" ")[0]: panel for panel in panels[1:-1]}
    assert set(by_title) == {"success_rate", "p99_ms", "errors_per_s"}
    for check in (CHECKS[1], CHECKS[2], ERRORS_PER_S):
        panel = by_title[check.name]
        # The analysis' own query, once per Deployment: what a person sees is what promote decided on.
        assert [t["expr"] for t in panel["targets"]] == [
            check.promql("shop", f"web-{v}", "1m") for v in ("ga", "canary")
        ]
        assert [t["legendFormat"] for t in panel["targets"]] == ["web-ga", "web-canary"]
        assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == check.threshold
    units = {name: panel["fieldConfig"]["defaults"]["unit"] for name, panel in by_title.items()}
    assert units == {"success_rate": "percent", "p99_ms": "ms", "errors_per_s": "reqps"}
    for panel in panels:
        # GA and canary get a fixed colour each, by the series names the legend produces.
        assert {o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"]} == {"web-ga", "web-canary"}


def test_dashboard_follows_the_app_namespace_and_name() -> None:
    dashboard = canary_dashboard("payments", "checkout", CHECKS)
    for panel in dashboard["panels"][:-1]:  # the agent's panel reads the agent's own series
        for target in panel["targets"]:
            assert 'destination_workload_namespace="payments"' in target["expr"]
            assert "checkout-" in target["expr"] and "shop" not in target["expr"] and "podinfo" not in target["expr"]
    assert dashboard["uid"] != canary_dashboard("shop", "web", CHECKS)["uid"]


def test_a_stacks_own_check_gets_its_panel_through_the_program(program) -> None:
    import json as _json

    entry = {"name": "errors_per_s", "query": ERRORS_PER_S.query, "max": 0.5, "unit": "req/s"}
    run = program(analysisChecks=_json.dumps([entry]))
    [configmap] = [r for r in run.of_type("kubernetes:core/v1:ConfigMap") if "dashboard" in r.name]
    dashboard = _json.loads(next(iter(configmap.inputs["data"].values())))
    assert [panel["title"].split(" ")[0] for panel in dashboard["panels"]][-2] == "errors_per_s"


def test_the_agent_panel_shows_its_verdicts_decisions_and_the_live_shape() -> None:
    from istio_canary.release.names import AGENT_DECISIONS, AGENT_SHAPE, AGENT_VERDICT

    panel = canary_dashboard("shop", "web", CHECKS)["panels"][-1]
    assert panel["title"] == "Release agent: verdicts, decisions and live shape"
    exprs = [target["expr"] for target in panel["targets"]]
    assert exprs[0] == f"{AGENT_VERDICT} == 1"
    assert f"{AGENT_DECISIONS}_total" in exprs[1] and "rollback|propose" in exprs[1] and balanced(exprs[1])
    assert exprs[2] == f"{AGENT_SHAPE} == 1"


# --- the PromQL builders -----------------------------------------------------------------------------------


def test_the_rate_query_is_well_formed_and_server_side() -> None:
    expr = istio_observer.request_rate("test", "podinfo", "5m")
    assert balanced(expr)
    assert 'reporter="destination"' in expr and "[5m]" in expr and "[1m]" not in expr
    assert expr.count("sum by (") == expr.count("destination_workload)")  # one series per version


@pytest.mark.parametrize(
    "template", [istio_observer.requests_template, istio_observer.success_rate_template, istio_observer.p99_template]
)
def test_check_templates_select_one_workload_server_side(template) -> None:
    expr = istio_observer.render(template(), "test", "podinfo-canary", "5m")
    assert balanced(expr)
    assert "{namespace}" not in expr and "{workload}" not in expr and "{window}" not in expr
    selectors = re.findall(r"\{[^{}]*\}", expr)
    assert selectors and all('reporter="destination"' in sel for sel in selectors)
    assert all('destination_workload="podinfo-canary"' in sel and "[5m]" in expr for sel in selectors)


def test_success_rate_of_a_version_with_only_errors_is_zero_not_missing() -> None:
    # Without the `or ... * 0` branch a version answering only 5xx has no non-5xx series: no value at all.
    expr = istio_observer.render(istio_observer.success_rate_template(), "test", "podinfo-canary", "1m")
    numerator = expr.split(") / sum(")[0]
    assert " or sum(rate(istio_requests_total{" in numerator
    assert numerator.endswith("* 0")


@pytest.mark.parametrize(
    ("namespace", "app", "window"),
    [('te"st', "podinfo", "1m"), ("test", "pod}info", "1m"), ("test", "podinfo", "1m]"), ("test", "podinfo", "0m")],
)
def test_values_that_would_break_out_of_the_query_are_rejected(namespace: str, app: str, window: str) -> None:
    with pytest.raises(ValueError):
        istio_observer.request_rate(namespace, app, window)
    with pytest.raises(ValueError):
        istio_observer.render(istio_observer.p99_template(), namespace, f"{app}-canary", window)


# --- the component under mocks ----------------------------------------------------------------------------


def test_charts_are_pinned_and_come_from_their_repositories(program) -> None:
    charts = monitoring_releases(program(prometheusChartVersion="27.1.0", grafanaChartVersion="10.0.2"))
    assert set(charts) == {"prometheus", "grafana"}
    assert charts["prometheus"]["version"] == "27.1.0"
    assert charts["grafana"]["version"] == "10.0.2"
    assert charts["prometheus"]["repositoryOpts"] == {"repo": PROMETHEUS_REPO}
    assert charts["grafana"]["repositoryOpts"] == {"repo": GRAFANA_REPO}


def test_default_chart_versions_are_exact() -> None:
    schema = settings.schema()
    for key in ("prometheusChartVersion", "grafanaChartVersion"):
        assert EXACT_VERSION.fullmatch(schema[key]["default"]), key
    parsed = settings.parse(config(), GCP).monitoring
    assert parsed.enabled is True
    assert (parsed.prometheus_chart_version, parsed.grafana_chart_version) == (
        schema["prometheusChartVersion"]["default"],
        schema["grafanaChartVersion"]["default"],
    )


def test_prometheus_keeps_the_pod_scrape_job_and_scrapes_often_enough(program) -> None:
    values = monitoring_releases(program())["prometheus"]["values"]
    # Istio's merged sidecar endpoint and istiod are found by the chart's default `kubernetes-pods` job through
    # prometheus.io/* annotations: no override may replace or switch off the chart's scrape configs.
    assert "serverFiles" not in values
    assert "extraScrapeConfigs" not in values
    assert (values.get("scrapeConfigs") or {}).get("kubernetes-pods", {}).get("enabled", True) is not False
    # rate(...[1m]) needs at least two samples in the window.
    assert seconds(values["server"]["global"]["scrape_interval"]) * 2 <= 60


def test_grafana_reads_prometheus_and_the_dashboard_configmap(program) -> None:
    run = program(namespace="shop", appName="web")
    built = run.outputs["built"].monitoring
    server = monitoring_releases(run)["prometheus"]["values"]["server"]  # numbers come back as floats
    assert built.prometheus_url == (
        f"http://{server['fullnameOverride']}.monitoring.svc.cluster.local:{int(server['service']['servicePort'])}"
    )
    grafana = monitoring_releases(run)["grafana"]["values"]
    (datasource,) = grafana["datasources"]["datasources.yaml"]["datasources"]
    assert datasource["url"] == built.prometheus_url
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    for panel in built.dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"]
    sidecar = grafana["sidecar"]["dashboards"]
    assert sidecar["enabled"] is True
    configmap = run.one("ConfigMap", "web-canary-dashboard")
    assert configmap.inputs["metadata"]["namespace"] == "monitoring"
    assert configmap.inputs["metadata"]["labels"] == {sidecar["label"]: sidecar["labelValue"]}
    (content,) = configmap.inputs["data"].values()
    assert json.loads(content) == built.dashboard == canary_dashboard("shop", "web", CHECKS)


def test_install_order_is_explicit(program) -> None:
    run = program()
    assert set(run.depends_on("monitoring-namespace")) == {"istio-base", "istio-istiod", "istio-gateway"}
    assert set(run.depends_on("monitoring-prometheus")) >= {"monitoring-namespace", "istio-istiod"}
    assert set(run.depends_on("monitoring-dashboard")) == {"monitoring-namespace"}
    assert set(run.depends_on("monitoring-grafana")) >= {"monitoring-prometheus", "monitoring-dashboard"}


def test_monitoring_namespace_is_outside_the_mesh(program) -> None:
    namespace = program().one("Namespace", "monitoring")
    assert namespace.inputs["metadata"]["labels"] == {"istio-injection": "disabled"}


def test_every_child_is_parented_to_the_component(program) -> None:
    run = program()
    children = [r for r in run.resources if r.name.startswith("monitoring-")]
    assert {r.name for r in children} == {
        "monitoring-namespace",
        "monitoring-prometheus",
        "monitoring-dashboard",
        "monitoring-grafana",
    }
    urns = run.urns()
    for child in children:
        (urn,) = [u for u in urns if u.endswith(f"::{child.name}")]
        assert f"::{MONITORING}${child.typ}::" in urn


def test_monitoring_off_builds_nothing_of_it(program) -> None:
    run = program(monitoring="false")
    assert run.outputs["built"].monitoring is None
    assert monitoring_releases(run) == {}
    assert not [r for r in run.resources if r.typ == MONITORING or r.name.startswith("monitoring")]
    assert not any(r.k8s_name == "monitoring" for r in run.kind("Namespace"))
    assert not run.kind("ConfigMap")


@pytest.mark.parametrize("key", ["prometheusChartVersion", "grafanaChartVersion"])
@pytest.mark.parametrize("bad", ["^28.10.0", "~28.10", ">=28.0.0", "28.x", "28.10", "v28.10.0", "latest", ""])
def test_chart_version_must_be_exact(key: str, bad: str) -> None:
    with pytest.raises(settings.ConfigError, match=rf"istio-canary:{key}: '{re.escape(bad)}' is not allowed"):
        settings.parse(config(**{key: bad}), GCP)


def test_bad_chart_version_is_an_error_even_with_monitoring_off() -> None:
    with pytest.raises(settings.ConfigError, match="grafanaChartVersion"):
        settings.parse(config(monitoring="false", grafanaChartVersion="11.*"), GCP)


def test_the_statistical_judge_adds_its_evidence_panel_and_only_then() -> None:
    plain = canary_dashboard("shop", "web", CHECKS)["panels"]
    stat = canary_dashboard("shop", "web", CHECKS, statistical=True)["panels"]
    assert len(stat) == len(plain) + 1 and stat[:-1] == plain
    exprs = [target["expr"] for target in stat[-1]["targets"]]
    assert 'canary_agent_evidence{check="errors", quantity="llr_or_more"}' in exprs
    assert 'canary_agent_evidence{check="traffic_share", quantity="observed_share"}' in exprs
    assert len({target["refId"] for target in stat[-1]["targets"]}) == len(exprs)
