"""Stack config -> frozen, validated settings.

The one place that knows the config keys. Defaults and types come from the schema in Pulumi.yaml
(the engine applies them on `pulumi up`, but Pulumi mocks and the `canary` command do not), and
every value is checked here before any resource is registered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from istio_canary.release import app_shape_config, layout
from istio_canary.release.cluster_config import read_cluster
from istio_canary.release.config_reader import (
    PROJECT,
    PROJECT_FILE,
    UNDECLARED_KEYS,
    ConfigError,
    Reader,
    parse_weight,
    schema,
)
from istio_canary.release.model import (
    AgentSettings,
    AppSettings,
    LayoutSettings,
    LoadSettings,
    MeshSettings,
    MonitoringSettings,
    Settings,
)
from istio_canary.release.names import (
    AGENT_NAME,
    DNS_LABEL,
    ISTIO_NAMESPACE,
    KUBERNETES_NAMESPACES,
    MONITORING_NAMESPACE,
)
from istio_canary.release.release_config import MAX_ANALYSIS_INTERVAL, read_release, read_steps
from istio_canary.release.rules import (
    AGENT_IMAGE,
    CHART_VERSION,
    GCP_PROJECT,
    GIT_REPO,
    IMAGE_REPO,
    ISTIO_VERSION,
    MIN_ISTIO_MINOR,
    dns_name,
)
from istio_canary.release.traffic import HEADER, Match

__all__ = [
    "MAX_ANALYSIS_INTERVAL",
    "PROJECT",
    "PROJECT_FILE",
    "UNDECLARED_KEYS",
    "ConfigError",
    "parse",
    "parse_weight",
    "schema",
]

GATEWAY_SERVICE_TYPES = ("LoadBalancer", "NodePort", "ClusterIP")


def _mesh(reader: Reader) -> MeshSettings:
    version = reader.text("istioVersion")
    match = ISTIO_VERSION.fullmatch(version)
    if not match or int(match.group(1)) < MIN_ISTIO_MINOR:
        reader.fail("istioVersion", version, f"an Istio release 1.{MIN_ISTIO_MINOR}.0 or newer, e.g. 1.30.4")
    return MeshSettings(
        install=reader.boolean("installMesh"),
        version=version,
        gateway_service_type=reader.choice("gatewayServiceType", GATEWAY_SERVICE_TYPES),
    )


def _app(reader: Reader, shapes: tuple[str, ...], mirror_percent: int) -> AppSettings:
    namespace = reader.text("namespace")
    if not (len(namespace) <= 63 and DNS_LABEL.fullmatch(namespace)):
        reader.fail("namespace", namespace, "a DNS label: lowercase letters, digits and '-', at most 63")
    elif namespace in (ISTIO_NAMESPACE, MONITORING_NAMESPACE, AGENT_NAME, *KUBERNETES_NAMESPACES):
        reader.fail(
            "namespace", namespace, "a namespace of the app's own, not one the mesh, monitoring or Kubernetes owns"
        )
    name = reader.text("appName")
    # The longest derived name is <app>-gateway; it must stay a valid label.
    if not (len(name) <= 55 and DNS_LABEL.fullmatch(name)):
        reader.fail("appName", name, "a DNS label of at most 55 characters")
    replicas = reader.integer("replicas", 1, 20)
    canary_shape = reader.text("canaryShape")
    if canary_shape and canary_shape not in shapes:
        reader.fail("canaryShape", canary_shape, f"empty, or a shape of canaryPreSteps ({', '.join(shapes) or 'none'})")
    elif canary_shape and reader.raw.get("canaryWeight") not in (None, 0, "0"):
        reader.fail("canaryShape", canary_shape, "empty while canaryWeight is above 0 (a shape step is at 0%)")
    match = reader.text("canaryMatch")
    if (match or HEADER in shapes) and Match.parse(match) is None:
        reader.fail(
            "canaryMatch",
            match,
            "header:<name>=<value> or cookie:<name>=<value> (lowercase name), e.g. header:x-canary=always; "
            "canaryPreSteps' header step needs it",
        )
    public_host = reader.text("publicHost")
    if not dns_name(public_host, wildcard=True):
        reader.fail("publicHost", public_host, "a DNS name such as podinfo.example.com")
    credential = reader.text("tlsCredentialName")
    if credential and not _secret_name(credential):
        reader.fail("tlsCredentialName", credential, "a Kubernetes secret name, or empty for HTTP only")
    return AppSettings(
        namespace=namespace,
        name=name,
        image=reader.matching(
            "image", IMAGE_REPO, "an image repository without tag, e.g. ghcr.io/stefanprodan/podinfo"
        ),
        ga_version=reader.text(
            "gaVersion"
        ),  # checked with the tag policies (check_versions): they say what a version is
        canary_version=reader.text("canaryVersion"),
        canary_weight=reader.integer("canaryWeight", 0, 100),
        replicas=replicas,
        public_host=public_host,
        tls_credential_name=credential,
        app_shape=app_shape_config.read(reader, replicas),
        canary_shape=canary_shape,
        mirror_percent=mirror_percent,
        canary_match=match,
        ga_rollback_replicas=reader.integer("gaRollbackReplicas", 0, 100),
    )


def _load_path(reader: Reader) -> str:
    path = reader.text("loadPath")
    if not app_shape_config.HTTP_PATH.fullmatch(path):
        reader.fail("loadPath", path, "an HTTP path such as /version or /")
    return path


def _monitoring(reader: Reader) -> MonitoringSettings:
    # An exact version only: a range would let `pulumi up` install a chart nobody reviewed.
    rule = "an exact chart version such as 25.8.0 (no range, no v prefix)"
    return MonitoringSettings(
        enabled=reader.boolean("monitoring"),
        prometheus_chart_version=reader.matching("prometheusChartVersion", CHART_VERSION, rule),
        grafana_chart_version=reader.matching("grafanaChartVersion", CHART_VERSION, rule),
    )


# A user-managed service account's email: an account id of 6 to 30 (a letter first, no trailing '-') at a project id
# (GCP_PROJECT). Google's own (PROJECT_NUMBER-compute@developer...) are left out: the agent gets an account of its own.
GOOGLE_SERVICE_ACCOUNT = re.compile(rf"[a-z][a-z0-9-]{{4,28}}[a-z0-9]@{GCP_PROJECT.pattern}\.iam\.gserviceaccount\.com")


def _agent(reader: Reader) -> AgentSettings:
    enabled = reader.boolean("releaseAgent")
    image = reader.text("agentImage")
    if not AGENT_IMAGE.fullmatch(image):
        reader.fail("agentImage", image, "an image with a tag or digest, e.g. ghcr.io/acme/istio-canary-agent:0.1.0")
    repo = reader.text("agentGitRepo")
    if repo and not GIT_REPO.fullmatch(repo):
        reader.fail(
            "agentGitRepo",
            "<not shown: it may hold a credential>" if "@" in repo else repo,
            "an https URL of the repository without credentials, e.g. https://github.com/acme/shop.git",
        )
    if enabled and not repo:
        reader.errors.append(f"{PROJECT}:releaseAgent: true needs {PROJECT}:agentGitRepo, the repository it clones")
    token_secret = reader.text("agentGitTokenSecret")
    if token_secret and not _secret_name(token_secret):
        reader.fail("agentGitTokenSecret", token_secret, "a Kubernetes Secret name, or empty")
    registry_secret = reader.text("agentRegistrySecret")
    if registry_secret and not _secret_name(registry_secret):
        reader.fail(
            "agentRegistrySecret",
            registry_secret,
            "a Kubernetes Secret name (type kubernetes.io/dockerconfigjson), or empty",
        )
    account = reader.matching(
        "agentGoogleServiceAccount",
        GOOGLE_SERVICE_ACCOUNT,
        "a Google service account email such as canary-agent@my-project.iam.gserviceaccount.com, or empty",
        optional=True,
    )
    return AgentSettings(
        enabled=enabled,
        image=image,
        git_repo=repo,
        git_token_secret=token_secret,
        registry_secret=registry_secret,
        google_service_account=account,
    )


def _secret_name(name: str) -> bool:
    """A Secret's name is a DNS-1123 subdomain: labels of at most 63, at most 253 in all."""
    return len(name) <= 253 and all(len(label) <= 63 and DNS_LABEL.fullmatch(label) for label in name.split("."))


def parse(
    project: Mapping[str, Any],
    gcp: Mapping[str, Any] | None = None,
    *,
    check_environment: bool = True,
    project_file: Path = PROJECT_FILE,
    stack: str = "",
    app_stacks: Sequence[str] = (),
    versions_by_policy: bool = True,
) -> Settings:
    """Validate raw config (keys without the `istio-canary:` prefix) into Settings, or raise ConfigError.

    `check_environment=False` skips the two checks that depend on where the program runs rather than on the
    file: gcp:project/region (the deploy job may set them through GOOGLE_PROJECT) and that `kubeconfig`
    exists on this machine. The `canary` tool validates with it off; every other rule is the same. `stack` and
    `app_stacks` (the app stacks on it) only make a platform stack's refusal of an app key say where it belongs.
    `versions_by_policy=False` is `canary rollback`'s reading, which does not read the tag filter: the versions are
    then checked as image tags only, so a release under a filtered policy can always be rolled back.
    """
    reader = Reader(project, schema(project_file))
    weights, shapes, mirror_percent = read_steps(reader)
    cluster, mesh = read_cluster(reader, gcp or {}, check_environment), _mesh(reader)
    app = _app(reader, shapes, mirror_percent)
    settings = Settings(
        cluster=cluster,
        mesh=mesh,
        app=app,
        load=LoadSettings(
            enabled=reader.boolean("loadGenerator"),
            rate=reader.integer("loadRate", 1, 1000),
            concurrency=reader.integer("loadConcurrency", 1, 50),
            path=_load_path(reader),
        ),
        monitoring=_monitoring(reader),
        release=read_release(reader, weights, shapes, app, versions_by_policy),
        agent=_agent(reader),
        layout=LayoutSettings(platform_stack="", deploy_app=True),
        skip_await=reader.boolean("skipAwait"),
    )
    settings = layout.apply(reader, settings, stack, app_stacks)
    if settings.agent.enabled and not settings.monitoring.enabled and not settings.release.prometheus_url:
        reader.errors.append(
            f"{PROJECT}:releaseAgent: true with {PROJECT}:monitoring false needs {PROJECT}:prometheusUrl, the "
            "Prometheus the agent asks (an http(s) URL reachable from the cluster)"
        )
    if reader.errors:
        raise ConfigError("invalid stack config:\n  " + "\n  ".join(reader.errors))
    return settings
