"""Prometheus scraping Istio's metrics and Grafana showing the canary dashboard, each from a pinned Helm chart."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.dashboard import DATASOURCE, canary_dashboard
from components.k8s_common import child_options, helm_release
from istio_canary.release.checks import Check
from istio_canary.release.names import MONITORING_NAMESPACE

PROMETHEUS_CHART_REPO = "https://prometheus-community.github.io/helm-charts"
# The grafana chart moved from grafana.github.io (frozen, deprecated) to the community repository in 2026.
GRAFANA_CHART_REPO = "https://grafana-community.github.io/helm-charts"
PROMETHEUS_RELEASE = "prometheus"
GRAFANA_RELEASE = "grafana"
# Fixed names so the in-cluster URL does not depend on the chart's naming helpers.
PROMETHEUS_SERVICE = "prometheus-server"
PROMETHEUS_PORT = 80
# The grafana chart names its Service after the release when the release name contains the chart name.
GRAFANA_SERVICE = GRAFANA_RELEASE
DASHBOARD_LABEL = "grafana_dashboard"
# The default scrape interval of the chart is 1m, which leaves a rate(...[1m]) with a single sample: no value.
SCRAPE_INTERVAL = "15s"


@dataclass(frozen=True)
class MonitoringArgs:
    """Typed inputs of the Monitoring component."""

    provider: k8s.Provider
    prometheus_chart_version: str
    grafana_chart_version: str
    app_namespace: str
    app_name: str
    checks: tuple[Check, ...]  # the analysis' checks: one dashboard panel each
    statistical: bool  # analysisJudge statistical: the dashboard shows the judge's evidence too
    namespace: str = MONITORING_NAMESPACE
    depends_on: tuple[pulumi.Resource, ...] = ()


def prometheus_values() -> dict:
    """Values of the prometheus chart: the server only, scraping faster than the default."""
    # Scrape config is left to the chart on purpose: its default `kubernetes-pods` job follows the
    # prometheus.io/* pod annotations, which Istio's metrics merging sets on every injected pod (the sidecar's
    # merged endpoint /stats/prometheus on 15020) and the istiod chart sets on istiod (15014).
    return {
        "alertmanager": {"enabled": False},
        "prometheus-pushgateway": {"enabled": False},
        "kube-state-metrics": {"enabled": False},
        "prometheus-node-exporter": {"enabled": False},
        "server": {
            "fullnameOverride": PROMETHEUS_SERVICE,
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "service": {"servicePort": PROMETHEUS_PORT},
            # Canary analysis looks minutes back; a restart losing history costs less than a disk per stack.
            "persistentVolume": {"enabled": False},
        },
    }


def grafana_values(prometheus_url: str) -> dict:
    """Values of the grafana chart: Prometheus as the default datasource, dashboards from labelled ConfigMaps."""
    return {
        "datasources": {
            "datasources.yaml": {
                "apiVersion": 1,
                "datasources": [
                    {
                        "name": "Prometheus",
                        "type": DATASOURCE["type"],
                        "uid": DATASOURCE["uid"],
                        "url": prometheus_url,
                        "access": "proxy",
                        "isDefault": True,
                        "editable": False,
                    }
                ],
            }
        },
        "sidecar": {"dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": "1"}},
        "service": {"type": "ClusterIP", "port": 80},
    }


class Monitoring(pulumi.ComponentResource):
    """A namespace with Prometheus and Grafana from their Helm charts, and the canary dashboard."""

    namespace: str
    prometheus_url: str
    grafana_service: str
    dashboard: dict

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("istio-canary:monitoring:Monitoring", name, None, opts)
        self.namespace = args.namespace
        self.prometheus_url = f"http://{PROMETHEUS_SERVICE}.{args.namespace}.svc.cluster.local:{PROMETHEUS_PORT}"
        self.grafana_service = GRAFANA_SERVICE
        self.dashboard = (
            canary_dashboard(args.app_namespace, args.app_name, args.checks, statistical=args.statistical)
            if args.app_name
            else {}
        )
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            # Prometheus scrapes plain HTTP from outside the mesh: 15020 is not behind the sidecar's mTLS.
            metadata={"name": args.namespace, "labels": {"istio-injection": "disabled"}},
            opts=child_options(self, args.provider, args.depends_on),
        )
        prometheus = helm_release(
            f"{name}-prometheus",
            chart="prometheus",
            release_name=PROMETHEUS_RELEASE,
            repo=PROMETHEUS_CHART_REPO,
            version=args.prometheus_chart_version,
            namespace=args.namespace,
            values=prometheus_values(),
            opts=child_options(self, args.provider, [namespace, *args.depends_on]),
        )
        dashboards = []
        if args.app_name:  # a platform stack with no app of its own has no canary dashboard
            dashboards.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-dashboard",
                    metadata={
                        "name": f"{args.app_name}-canary-dashboard",
                        "namespace": args.namespace,
                        "labels": {DASHBOARD_LABEL: "1"},
                    },
                    data={f"{args.app_name}-canary.json": json.dumps(self.dashboard, indent=2, sort_keys=True)},
                    opts=child_options(self, args.provider, [namespace]),
                )
            )
        # Grafana after Prometheus (its datasource) and the dashboard ConfigMap (found at start, not on a retry).
        helm_release(
            f"{name}-grafana",
            chart="grafana",
            release_name=GRAFANA_RELEASE,
            repo=GRAFANA_CHART_REPO,
            version=args.grafana_chart_version,
            namespace=args.namespace,
            values=grafana_values(self.prometheus_url),
            opts=child_options(self, args.provider, [namespace, prometheus, *dashboards]),
        )
        self.register_outputs({"prometheusUrl": self.prometheus_url, "grafanaService": self.grafana_service})
