"""Stack config -> frozen, validated settings.

The one place that knows the config keys. Defaults and types come from the schema in Pulumi.yaml
(the engine applies them on `pulumi up`, but Pulumi mocks and the `canary` command do not), and
every value is checked here before any resource is registered.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from components.names import DNS_LABEL as _DNS_LABEL
from components.names import DURATION as _PROM_DURATION

PROJECT = "istio-canary"
PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"

_INT = re.compile(r"0|[1-9][0-9]*")
# An image tag MAJOR.MINOR.PATCH, optional leading v; a `-suffix` marks a pre-release.
SEMVER_TAG = re.compile(r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?")
_IMAGE_REPO = re.compile(r"[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9-]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+")
_GKE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
_GCP_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_GCP_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_GCP_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
_MACHINE_TYPE = re.compile(r"[a-z][a-z0-9]*-[a-z0-9-]+")
_ISTIO_VERSION = re.compile(r"1\.(\d+)\.(\d+)")
_CHART_VERSION = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
PROMETHEUS_URL_RULE = "an http(s) URL such as http://127.0.0.1:9090, or empty"
PROMETHEUS_URL = re.compile(r"https?://[^\s/]+(/\S*)?")
_TAG_POLICY = re.compile(r"semver:(0|[1-9]\d*)\.((0|[1-9]\d*)\.)?x|glob:[A-Za-z0-9_.*?-]+")

CLUSTER_MODES = ("gke", "existing")
RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE")
GATEWAY_SERVICE_TYPES = ("LoadBalancer", "NodePort", "ClusterIP")
# Istio's own sizing guide: istiod plus sidecars do not fit on shared-core machines.
TOO_SMALL_MACHINES = ("f1-micro", "g1-small", "e2-micro", "e2-small", "e2-medium")
MIN_ISTIO_MINOR = 24  # base chart templates its CRDs and v1 networking APIs are served
PLACEHOLDER_PREFIX = "change-me"
# Stack keys the engine must not require in every stack, so they are not in Pulumi.yaml: the Slack webhook is
# a secret only `canary notify` reads.
UNDECLARED_KEYS = ("slackWebhookUrl",)


class ConfigError(ValueError):
    """One or more stack config values are invalid; the message lists each key, value and rule."""


@dataclass(frozen=True)
class ClusterSettings:
    """Where the workloads run: a GKE cluster we create, or an existing kubeconfig context."""

    mode: str
    name: str
    project: str
    location: str
    release_channel: str
    machine_type: str
    min_nodes: int
    max_nodes: int
    disk_size_gb: int
    private_nodes: bool
    master_cidr: str
    master_authorized_networks: tuple[str, ...]
    deletion_protection: bool
    kubeconfig: str
    context: str


@dataclass(frozen=True)
class MeshSettings:
    """The Istio install: pinned version and ingress gateway service type."""

    install: bool
    version: str
    gateway_service_type: str


@dataclass(frozen=True)
class AppSettings:
    """podinfo GA + canary and the traffic split between them."""

    namespace: str
    name: str
    image: str
    ga_version: str
    canary_version: str
    canary_weight: int
    replicas: int
    public_host: str
    tls_credential_name: str

    @property
    def split(self) -> dict[str, int]:
        """The traffic split as percentages, e.g. {"ga": 90, "canary": 10}."""
        return {"ga": 100 - self.canary_weight, "canary": self.canary_weight}


@dataclass(frozen=True)
class LoadSettings:
    """The hey load generator."""

    enabled: bool
    rate: int
    concurrency: int


@dataclass(frozen=True)
class MonitoringSettings:
    """Prometheus and Grafana, each from a Helm chart pinned to one exact version."""

    enabled: bool
    prometheus_chart_version: str
    grafana_chart_version: str


@dataclass(frozen=True)
class ReleaseSettings:
    """What the `canary` command needs: the promotion schedule and analysis thresholds."""

    steps: tuple[int, ...]
    min_success_rate: float
    max_p99_ms: int
    min_requests: int
    window: str
    tag_policy: str
    prometheus_url: str


@dataclass(frozen=True)
class Settings:
    """Everything the program builds, validated."""

    cluster: ClusterSettings
    mesh: MeshSettings
    app: AppSettings
    load: LoadSettings
    monitoring: MonitoringSettings
    release: ReleaseSettings
    skip_await: bool


@cache
def schema() -> dict[str, dict[str, Any]]:
    """The `config:` schema of Pulumi.yaml: key -> {type, default, description}."""
    return yaml.safe_load(PROJECT_FILE.read_text())["config"]


class _Reader:
    """Reads raw values with schema defaults and collects every error instead of stopping at the first."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        unknown = sorted(set(raw) - set(schema()) - set(UNDECLARED_KEYS))
        self.errors = [f"{PROJECT}:{k}: unknown config key (known keys are in Pulumi.yaml)" for k in unknown]
        self.raw = raw

    def fail(self, key: str, value: Any, allowed: str) -> None:
        self.errors.append(f"{PROJECT}:{key}: {value!r} is not allowed; expected {allowed}")

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        if value is None:
            value = schema()[key].get("default", "")
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value).strip() if not isinstance(value, str) else value

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.text(key)
        if not _INT.fullmatch(value) or not low <= int(value) <= high:
            self.fail(key, value, f"a whole number from {low} to {high}")
            return low
        return int(value)

    def boolean(self, key: str) -> bool:
        value = self.text(key)
        if value not in ("true", "false"):
            self.fail(key, value, "true or false")
            return False
        return value == "true"

    def array(self, key: str) -> Any:
        """A list from YAML (the stack file) or JSON text (pulumi.Config); anything else is returned as is."""
        value = self.raw.get(key, schema()[key]["default"])
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.text(key)
        if value not in allowed:
            self.fail(key, value, "one of " + ", ".join(allowed))
        return value

    def matching(self, key: str, pattern: re.Pattern[str], allowed: str, *, optional: bool = False) -> str:
        value = self.text(key)
        if (value or not optional) and not pattern.fullmatch(value):
            self.fail(key, value, allowed)
        return value


def parse_semver(tag: str) -> tuple[int, int, int, str] | None:
    """(major, minor, patch, pre-release suffix or "") of a version tag such as v6.9.1-rc.1; None otherwise."""
    match = SEMVER_TAG.fullmatch(tag)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3)), (match.group(4) or "")[1:]


def parse_weight(value: Any) -> int:
    """A canary weight: an integer 0..100 written in plain decimal digits."""
    reader = _Reader({"canaryWeight": value})
    weight = reader.integer("canaryWeight", 0, 100)
    if reader.errors:
        raise ConfigError(reader.errors[0])
    return weight


def _dns_name(value: str, *, wildcard: bool = False) -> bool:
    if wildcard and value.startswith("*."):
        value = value[2:]
    labels = value.split(".")
    return (
        len(value) <= 253
        and len(labels) >= 2
        and all(len(label) <= 63 and _DNS_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def _steps(reader: _Reader) -> tuple[int, ...]:
    original = reader.raw.get("canarySteps", schema()["canarySteps"]["default"])
    value = reader.array("canarySteps")
    allowed = "a list of increasing whole numbers from 1 to 100 that ends at 100, e.g. [10, 60, 100]"
    if not isinstance(value, list) or not value:
        reader.fail("canarySteps", original, allowed)
        return (100,)
    steps = []
    for item in value:
        text = str(item) if not isinstance(item, bool) else "x"
        if not _INT.fullmatch(text) or not 1 <= int(text) <= 100:
            reader.fail("canarySteps", original, allowed)
            return (100,)
        steps.append(int(text))
    if steps != sorted(set(steps)) or steps[-1] != 100:
        reader.fail("canarySteps", original, allowed)
    return tuple(steps)


def _success_rate(reader: _Reader) -> float:
    value = reader.text("analysisMinSuccessRate")
    try:
        rate = float(value) if re.fullmatch(r"\d+(\.\d+)?", value) else -1.0
    except ValueError:
        rate = -1.0
    if not 0 < rate <= 100:
        reader.fail("analysisMinSuccessRate", value, "a percentage above 0 and at most 100, e.g. 99 or 99.5")
        return 100.0
    return rate


def _cluster(reader: _Reader, gcp: Mapping[str, Any]) -> ClusterSettings:
    mode = reader.choice("clusterMode", CLUSTER_MODES)
    name = reader.matching("clusterName", _GKE_NAME, "a GKE cluster name: lowercase letters, digits, '-', at most 40")
    location = reader.text("clusterLocation")
    project = str(gcp.get("project") or "")
    if mode == "gke":
        if not _GCP_PROJECT.fullmatch(project) or project.startswith(PLACEHOLDER_PREFIX):
            reader.errors.append(
                f"gcp:project: {project!r} is not allowed; expected your GCP project id "
                "(pulumi config set gcp:project <id>)"
            )
        location = location or str(gcp.get("region") or "")
        if not (_GCP_REGION.fullmatch(location) or _GCP_ZONE.fullmatch(location)):
            reader.fail("clusterLocation", location, "a GCP region or zone such as europe-west1 (or set gcp:region)")
    elif location and not (_GCP_REGION.fullmatch(location) or _GCP_ZONE.fullmatch(location)):
        reader.fail("clusterLocation", location, "a GCP region or zone such as europe-west1, or empty")
    machine_type = reader.matching("nodeMachineType", _MACHINE_TYPE, "a GCE machine type such as e2-standard-4")
    if machine_type in TOO_SMALL_MACHINES:
        reader.fail("nodeMachineType", machine_type, "a machine with at least 2 dedicated vCPUs (e2-standard-4)")
    min_nodes = reader.integer("nodeMinCount", 0, 100)
    max_nodes = reader.integer("nodeMaxCount", 1, 100)
    if max_nodes < min_nodes:
        reader.fail("nodeMaxCount", max_nodes, f"at least nodeMinCount ({min_nodes})")
    master_cidr = reader.text("masterCidr")
    try:
        network = ipaddress.ip_network(master_cidr)
        if network.prefixlen != 28 or not network.is_private or network.version != 4:
            raise ValueError
    except ValueError:
        reader.fail("masterCidr", master_cidr, "a private IPv4 /28 such as 172.16.0.32/28")
    networks = reader.array("masterAuthorizedNetworks")
    allowed = 'a list of IPv4 CIDRs allowed to reach the control plane, e.g. ["203.0.113.0/24"], or []'
    try:
        if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
            raise ValueError
        authorized = tuple(str(ipaddress.IPv4Network(n)) for n in networks)
    except ValueError:
        reader.fail("masterAuthorizedNetworks", reader.raw.get("masterAuthorizedNetworks"), allowed)
        authorized = ()
    kubeconfig = reader.text("kubeconfig")
    if mode == "existing" and kubeconfig and not Path(kubeconfig).expanduser().is_file():
        reader.fail("kubeconfig", kubeconfig, "the path of an existing kubeconfig file, or empty")
    return ClusterSettings(
        mode=mode,
        name=name,
        project=project,
        location=location,
        release_channel=reader.choice("releaseChannel", RELEASE_CHANNELS),
        machine_type=machine_type,
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        disk_size_gb=reader.integer("nodeDiskSizeGb", 20, 65536),
        private_nodes=reader.boolean("privateNodes"),
        master_cidr=master_cidr,
        master_authorized_networks=authorized,
        deletion_protection=reader.boolean("deletionProtection"),
        kubeconfig=kubeconfig,
        context=reader.text("kubeContext"),
    )


def _mesh(reader: _Reader) -> MeshSettings:
    version = reader.text("istioVersion")
    match = _ISTIO_VERSION.fullmatch(version)
    if not match or int(match.group(1)) < MIN_ISTIO_MINOR:
        reader.fail("istioVersion", version, f"an Istio release 1.{MIN_ISTIO_MINOR}.0 or newer, e.g. 1.30.4")
    return MeshSettings(
        install=reader.boolean("installMesh"),
        version=version,
        gateway_service_type=reader.choice("gatewayServiceType", GATEWAY_SERVICE_TYPES),
    )


def _app(reader: _Reader) -> AppSettings:
    namespace = reader.text("namespace")
    if not (len(namespace) <= 63 and _DNS_LABEL.fullmatch(namespace)):
        reader.fail("namespace", namespace, "a DNS label: lowercase letters, digits and '-', at most 63")
    name = reader.text("appName")
    # The longest derived name is <app>-gateway; it must stay a valid label.
    if not (len(name) <= 55 and _DNS_LABEL.fullmatch(name)):
        reader.fail("appName", name, "a DNS label of at most 55 characters")
    tag_rule = "a released image tag such as 6.15.0 (not latest, not a branch)"
    public_host = reader.text("publicHost")
    if not _dns_name(public_host, wildcard=True):
        reader.fail("publicHost", public_host, "a DNS name such as podinfo.example.com")
    credential = reader.text("tlsCredentialName")
    if credential and not _dns_name(credential + ".x") and not _DNS_LABEL.fullmatch(credential):
        reader.fail("tlsCredentialName", credential, "a Kubernetes secret name, or empty for HTTP only")
    return AppSettings(
        namespace=namespace,
        name=name,
        image=reader.matching(
            "image", _IMAGE_REPO, "an image repository without tag, e.g. ghcr.io/stefanprodan/podinfo"
        ),
        ga_version=reader.matching("gaVersion", SEMVER_TAG, tag_rule),
        canary_version=reader.matching("canaryVersion", SEMVER_TAG, tag_rule),
        canary_weight=reader.integer("canaryWeight", 0, 100),
        replicas=reader.integer("replicas", 1, 20),
        public_host=public_host,
        tls_credential_name=credential,
    )


def _monitoring(reader: _Reader) -> MonitoringSettings:
    # An exact version only: a range would let `pulumi up` install a chart nobody reviewed.
    rule = "an exact chart version such as 25.8.0 (no range, no v prefix)"
    return MonitoringSettings(
        enabled=reader.boolean("monitoring"),
        prometheus_chart_version=reader.matching("prometheusChartVersion", _CHART_VERSION, rule),
        grafana_chart_version=reader.matching("grafanaChartVersion", _CHART_VERSION, rule),
    )


def _release(reader: _Reader) -> ReleaseSettings:
    prometheus_url = reader.text("prometheusUrl")
    if prometheus_url and not PROMETHEUS_URL.fullmatch(prometheus_url):
        reader.fail("prometheusUrl", prometheus_url, PROMETHEUS_URL_RULE)
    return ReleaseSettings(
        steps=_steps(reader),
        min_success_rate=_success_rate(reader),
        max_p99_ms=reader.integer("analysisMaxP99Ms", 1, 600000),
        min_requests=reader.integer("analysisMinRequests", 1, 10**9),
        window=reader.matching("analysisWindow", _PROM_DURATION, "a Prometheus duration such as 30s, 5m or 1h"),
        tag_policy=reader.matching(
            "canaryTagPolicy", _TAG_POLICY, "semver:<major>.x, semver:<major>.<minor>.x or glob:<pattern>"
        ),
        prometheus_url=prometheus_url,
    )


def parse(project: Mapping[str, Any], gcp: Mapping[str, Any] | None = None) -> Settings:
    """Validate raw config (keys without the `istio-canary:` prefix) into Settings, or raise ConfigError."""
    reader = _Reader(project)
    settings = Settings(
        cluster=_cluster(reader, gcp or {}),
        mesh=_mesh(reader),
        app=_app(reader),
        load=LoadSettings(
            enabled=reader.boolean("loadGenerator"),
            rate=reader.integer("loadRate", 1, 1000),
            concurrency=reader.integer("loadConcurrency", 1, 50),
        ),
        monitoring=_monitoring(reader),
        release=_release(reader),
        skip_await=reader.boolean("skipAwait"),
    )
    if reader.errors:
        raise ConfigError("invalid stack config:\n  " + "\n  ".join(reader.errors))
    return settings


def load() -> Settings:
    """Read the current stack's config through pulumi.Config and validate it, typos included."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    # pulumi.Config only answers for keys it is asked about; a misspelled key in the stack file (canaryWeigth)
    # would be silently ignored, so ask for every key the engine handed over as well.
    handed_over = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env() or {})
    stack_keys = {key.split(":", 1)[1] for key in handed_over if key.startswith(f"{PROJECT}:")}
    project_config = pulumi.Config()
    gcp_config = pulumi.Config("gcp")
    raw = {key: project_config.get(key) for key in (set(schema()) | stack_keys) - set(UNDECLARED_KEYS)}
    return parse(
        {k: v for k, v in raw.items() if v is not None},
        {"project": gcp_config.get("project"), "region": gcp_config.get("region")},
    )
