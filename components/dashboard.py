"""The canary Grafana dashboard, generated: request rate, p99 latency and success rate, GA next to canary."""

from __future__ import annotations

from components import promql
from components.names import workload

# The Grafana datasource the dashboard queries; the Monitoring component provisions it with this uid.
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
# Fixed colours so GA and canary look the same on every panel.
VERSION_COLOURS = {"ga": "green", "canary": "orange"}
SCHEMA_VERSION = 39
PANEL_WIDTH = 8
PANEL_HEIGHT = 9


def _panel(panel_id: int, title: str, expr: str, unit: str, app: str, extra_defaults: dict | None = None) -> dict:
    overrides = [
        {
            "matcher": {"id": "byName", "options": workload(app, version)},
            "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}],
        }
        for version, colour in VERSION_COLOURS.items()
    ]
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": dict(DATASOURCE),
        "gridPos": {"h": PANEL_HEIGHT, "w": PANEL_WIDTH, "x": (panel_id - 1) * PANEL_WIDTH, "y": 0},
        "targets": [
            {
                "refId": "A",
                "datasource": dict(DATASOURCE),
                "expr": expr,
                # One series per Deployment, named like it: <app>-ga, <app>-canary.
                "legendFormat": "{{" + promql.BY_WORKLOAD + "}}",
                "range": True,
            }
        ],
        "fieldConfig": {"defaults": {"unit": unit, **(extra_defaults or {})}, "overrides": overrides},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}},
    }


def canary_dashboard(namespace: str, app: str, window: str = promql.DEFAULT_WINDOW) -> dict:
    """Grafana dashboard JSON (a dict) for one app's GA and canary Deployments in `namespace`."""
    panels = [
        _panel(1, "Request rate per version", promql.request_rate(namespace, app, window), "reqps", app),
        _panel(2, "p99 latency per version", promql.p99_latency(namespace, app, window), "ms", app),
        _panel(
            3,
            "Success rate per version (non-5xx)",
            promql.success_rate(namespace, app, window),
            "percent",
            app,
            {"min": 0, "max": 100},
        ),
    ]
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
