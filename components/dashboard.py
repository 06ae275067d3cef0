"""The canary Grafana dashboard, generated: request rate, then one panel per check (the analysis' own list,
built-in and the stack's), GA next to canary, the check's threshold drawn as a line."""

from __future__ import annotations

from istio_canary.metrics import istio_observer
from istio_canary.release.checks import Check
from istio_canary.release.names import AGENT_DECISIONS, AGENT_EVIDENCE, AGENT_SHAPE, AGENT_VERDICT, SUBSETS, workload

# The Grafana datasource the dashboard queries; the Monitoring component provisions it with this uid.
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
# Fixed colours so GA and canary look the same on every panel.
VERSION_COLOURS = {"ga": "green", "canary": "orange"}
SCHEMA_VERSION = 39
PANEL_WIDTH = 8
PANEL_HEIGHT = 9
PANELS_PER_ROW = 24 // PANEL_WIDTH
# Grafana's unit ids for the units checks use; anything else is shown as a suffix.
GRAFANA_UNITS = {"%": "percent", "ms": "ms", "s": "s", "req/s": "reqps", "": "short"}


def _overrides(app: str) -> list[dict]:
    return [
        {
            "matcher": {"id": "byName", "options": workload(app, version)},
            "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}],
        }
        for version, colour in VERSION_COLOURS.items()
    ]


def _panel(panel_id: int, title: str, targets: list[dict], app: str, defaults: dict) -> dict:
    index = panel_id - 1
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": dict(DATASOURCE),
        "gridPos": {
            "h": PANEL_HEIGHT,
            "w": PANEL_WIDTH,
            "x": (index % PANELS_PER_ROW) * PANEL_WIDTH,
            "y": (index // PANELS_PER_ROW) * PANEL_HEIGHT,
        },
        "targets": [{"datasource": dict(DATASOURCE), "range": True, **target} for target in targets],
        "fieldConfig": {"defaults": defaults, "overrides": _overrides(app)},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}},
    }


def _check_panel(panel_id: int, check: Check, namespace: str, app: str, window: str) -> dict:
    """One check, once per Deployment (the query selects one workload), its threshold as a red line."""
    targets = [
        {
            "refId": "AB"[i],
            "expr": check.promql(namespace, workload(app, version), window),
            "legendFormat": workload(app, version),
        }
        for i, version in enumerate(SUBSETS)
    ]
    unit = GRAFANA_UNITS.get(check.unit, f"suffix: {check.unit}")
    defaults: dict[str, object] = {
        "unit": unit,
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": "transparent", "value": None}, {"color": "red", "value": check.threshold}],
        },
        "custom": {"thresholdsStyle": {"mode": "line"}},
    }
    if check.unit == "%":
        defaults |= {"min": 0, "max": 100}
    return _panel(panel_id, f"{check.name} per version ({check.rule()})", targets, app, defaults)


def _agent_panel(panel_id: int, app: str) -> dict:
    """The release agent: its latest verdict (1 = the current one), each rollback or proposal it made, and the
    shape the live route has (weights, mirror, header)."""
    targets = [
        {"refId": "A", "expr": f"{AGENT_VERDICT} == 1", "legendFormat": "verdict {{verdict}}"},
        {
            "refId": "B",
            "expr": f'increase({AGENT_DECISIONS}_total{{action=~"rollback|propose"}}[{istio_observer.DEFAULT_WINDOW}]) > 0',
            "legendFormat": "{{action}}",
        },
        {"refId": "C", "expr": f"{AGENT_SHAPE} == 1", "legendFormat": "live shape {{shape}}"},
    ]
    defaults = {"unit": "short", "custom": {"drawStyle": "points", "pointSize": 8}}
    return _panel(panel_id, "Release agent: verdicts, decisions and live shape", targets, app, defaults)


def _evidence_panel(panel_id: int, app: str) -> dict:
    """The statistical judge's newest look, as the agent exports it: the error test's log-likelihood ratio between
    its pass and fail boundaries, the share of request pairs in which the canary is slower, and the share of
    requests the data plane sent the canary against its weight."""
    series = (
        ("errors", "llr_or_more", "error test: log-likelihood ratio"),
        ("errors", "fail_at", "error test: fail boundary"),
        ("errors", "pass_at", "error test: pass boundary"),
        ("latency", "slower_pairs", "latency: share of pairs slower"),
        ("traffic_share", "observed_share", "traffic share: observed"),
        ("traffic_share", "weight", "traffic share: weight"),
    )
    targets = [
        {
            "refId": chr(ord("A") + i),
            "expr": f'{AGENT_EVIDENCE}{{check="{check}", quantity="{quantity}"}}',
            "legendFormat": legend,
        }
        for i, (check, quantity, legend) in enumerate(series)
    ]
    return _panel(panel_id, "Statistical judge: evidence of the newest look", targets, app, {"unit": "short"})


def canary_dashboard(
    namespace: str,
    app: str,
    checks: tuple[Check, ...],
    window: str = istio_observer.DEFAULT_WINDOW,
    *,
    statistical: bool = False,
) -> dict:
    """Grafana dashboard JSON (a dict) for one app's GA and canary Deployments in `namespace`; with the
    statistical judge, one more panel shows its evidence."""
    rate = {
        "refId": "A",
        "expr": istio_observer.request_rate(namespace, app, window),
        # One series per Deployment, named like it: <app>-ga, <app>-canary.
        "legendFormat": "{{" + istio_observer.BY_WORKLOAD + "}}",
    }
    panels = [_panel(1, "Request rate per version", [rate], app, {"unit": "reqps"})]
    judged = [check for check in checks if not check.gate]  # the gate's count is the rate panel's integral
    panels += [_check_panel(i, check, namespace, app, window) for i, check in enumerate(judged, start=2)]
    panels.append(_agent_panel(len(panels) + 1, app))
    if statistical:
        panels.append(_evidence_panel(len(panels) + 1, app))
    return {
        # A fixed uid keeps the dashboard's URL stable across re-provisioning.
        "uid": f"canary-{app}"[:40],
        "title": f"Canary: {app} in {namespace}",
        "tags": ["istio", "canary", app],
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": False,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": []},
        "panels": panels,
    }
