"""Stack config -> frozen, validated settings.

The one place that knows the config keys. Defaults and types come from the schema in Pulumi.yaml
(the engine applies them on `pulumi up`, but Pulumi mocks and the `canary` command do not), and
every value is checked here before any resource is registered.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from istio_canary import safeload
from istio_canary.release import app_shape_config, layout
from istio_canary.release.checks import CHECK_NAME, MAX, MIN, UNIT, Check, builtin_checks, template_error
from istio_canary.release.model import (
    AcceptanceCheck,
    AgentSettings,
    AppSettings,
    ClusterSettings,
    LayoutSettings,
    LoadSettings,
    MeshSettings,
    MonitoringSettings,
    ReleaseSettings,
    Settings,
)
from istio_canary.release.names import (
    AGENT_NAME,
    DNS_LABEL,
    ISTIO_NAMESPACE,
    KUBERNETES_NAMESPACES,
    MONITORING_NAMESPACE,
    duration_seconds,
)
from istio_canary.release.names import DURATION as _PROM_DURATION
from istio_canary.release.rules import (
    AGENT_IMAGE,
    CHART_VERSION,
    FULL_VERSION,
    GCP_PROJECT,
    GCP_REGION,
    GCP_ZONE,
    GIT_REPO,
    GKE_NAME,
    IMAGE_REPO,
    INT,
    ISTIO_VERSION,
    MACHINE_TYPE,
    MIN_ISTIO_MINOR,
    MIN_VCPUS,
    dns_name,
    finite_number,
    glob_can_match_release,
    prometheus_url_error,
    shown,
    too_small,
    version_tag_problem,
)
from istio_canary.release.tagpolicy import PolicyError, TagPolicy
from istio_canary.release.traffic import HEADER, MIRROR, SHAPES, Match

PROJECT = "istio-canary"
PROJECT_FILE = Path(__file__).resolve().parents[2] / "Pulumi.yaml"


CLUSTER_MODES = ("gke", "existing", "stack")
RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE")
GATEWAY_SERVICE_TYPES = ("LoadBalancer", "NodePort", "ClusterIP")
PLACEHOLDER_PREFIX = "change-me"
# Stack keys the engine must not require in every stack, so they are not in Pulumi.yaml: secrets that only some
# stacks have (the Slack webhook: `canary notify` and the agent; the agent's Git token). load() reads them.
UNDECLARED_KEYS = ("slackWebhookUrl", "agentGitToken")
PROMOTIONS = ("pr", "auto")


class ConfigError(ValueError):
    """One or more stack config values are invalid; the message lists each key, value and rule."""


@cache
def schema(project_file: Path = PROJECT_FILE) -> dict[str, dict[str, Any]]:
    """The `config:` schema of a Pulumi.yaml: key -> {type, default, description}.

    The program reads the one beside its source. The `canary` tool passes the one in the repository it works
    on: an installed tool (a wheel, pipx, a container) has no source tree, and the repository's project file
    is the one `pulumi preview` will apply.
    """
    try:
        # Bounded (size, nesting, aliases): a pull request can change Pulumi.yaml, and every command reads it.
        text = safeload.read_bytes(project_file, safeload.MAX_PROJECT_BYTES).decode("utf-8")
        project = safeload.safe_yaml(text)
    except FileNotFoundError:
        raise ConfigError(f"{project_file}: no Pulumi.yaml here (is -C the repository?)") from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8, or over a safeload limit
        raise ConfigError(f"{project_file}: cannot read the project file: {str(exc)[:200]}") from None
    config = project.get("config") if isinstance(project, dict) else None
    if not isinstance(config, dict) or project.get("name") != PROJECT:
        raise ConfigError(f"{project_file}: not the {PROJECT} project file (name: {PROJECT} with a config: schema)")
    return config


class _Reader:
    """Reads raw values with schema defaults and collects every error instead of stopping at the first."""

    def __init__(self, raw: Mapping[str, Any], known: dict[str, dict[str, Any]]) -> None:
        self.schema = known
        unknown = sorted(set(raw) - set(known) - set(UNDECLARED_KEYS))
        self.errors = [f"{PROJECT}:{k}: unknown config key (known keys are in Pulumi.yaml)" for k in unknown]
        self.raw = raw

    def fail(self, key: str, value: Any, allowed: str) -> None:
        self.errors.append(f"{PROJECT}:{key}: {shown(value)} is not allowed; expected {allowed}")

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        if value is None:
            value = self.schema[key].get("default", "")
        if isinstance(value, dict | list):
            # `pulumi config set --secret` writes {secure: ...}; a value the tool cannot read must not be
            # taken for the default (a secret canaryWeight 60 would read as 0).
            kind = "a secret" if isinstance(value, dict) and "secure" in value else "a structured value"
            self.errors.append(f"{PROJECT}:{key}: is {kind}; it must be a plain value (pulumi config set {key} ...)")
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value).strip() if not isinstance(value, str) else value

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.text(key)
        if not INT.fullmatch(value) or not low <= int(value) <= high:
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
        value = self.raw.get(key, self.schema[key]["default"])
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:  # not JSON, or a number Python will not convert (over 4300 digits)
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


def parse_weight(value: Any) -> int:
    """A canary weight: an integer 0..100 written in plain decimal digits."""
    reader = _Reader({"canaryWeight": value}, {"canaryWeight": {}})  # no default: a value is always given
    weight = reader.integer("canaryWeight", 0, 100)
    if reader.errors:
        raise ConfigError(reader.errors[0])
    return weight


def _steps(reader: _Reader) -> tuple[tuple[int, ...], tuple[str, ...], int]:
    """(canarySteps' weights, canaryPreSteps' shapes, the mirror step's percentage)."""
    original = reader.raw.get("canarySteps", reader.schema["canarySteps"]["default"])
    value = reader.array("canarySteps")
    allowed = "a list of increasing whole numbers from 1 to 100 that ends at 100, e.g. [10, 60, 100]"
    weights: list[int] = []
    if not isinstance(value, list) or not value:
        reader.fail("canarySteps", original, allowed)
        weights = [100]
    for item in value if isinstance(value, list) else []:
        text = str(item) if not isinstance(item, bool) else "x"
        if not INT.fullmatch(text) or not 1 <= int(text) <= 100:
            reader.fail("canarySteps", original, allowed)
            weights = [100]
            break
        weights.append(int(text))
    if weights != sorted(set(weights)) or weights[-1:] != [100]:
        reader.fail("canarySteps", original, allowed)
    # Pulumi types an array's items with one type, so the shapes cannot share canarySteps' list of integers.
    pre = reader.array("canaryPreSteps")
    pre_allowed = (
        "a list of the shapes mirror (or mirror:<percent>, 1-100) and header, in that order, e.g. [mirror, header]"
    )
    shapes: list[str] = []
    mirror_percent = 100
    for item in pre if isinstance(pre, list) else [None]:
        shape, _, percent = str(item).partition(":")
        fine = isinstance(item, str) and shape in SHAPES and shape not in shapes and (not percent or shape == MIRROR)
        if fine and percent and not (INT.fullmatch(percent) and 1 <= int(percent) <= 100):
            fine = False
        if not fine:
            reader.fail("canaryPreSteps", pre, pre_allowed)
            return tuple(weights), (), 100
        shapes.append(shape)
        mirror_percent = int(percent) if percent else mirror_percent
    if shapes != sorted(shapes, key=SHAPES.index):
        reader.fail("canaryPreSteps", pre, pre_allowed + " (mirror first: nobody sees its answers)")
    return tuple(weights), tuple(shapes), mirror_percent


def _acceptance(reader: _Reader, weights: tuple[int, ...], shapes: tuple[str, ...]) -> tuple[AcceptanceCheck, ...]:
    """canaryAcceptance: each item {url, status, timeout, steps}; every bad item is reported."""
    value = reader.array("canaryAcceptance")
    rule = (
        "a list of {url: http(s) URL without credentials, status: 100-599 (200), timeout: seconds 0.1-60 (5), "
        "steps: names of steps it gates such as [mirror, 10, finish] (all)}"
    )
    if not isinstance(value, list) or len(value) > 20:
        reader.fail("canaryAcceptance", value, rule)
        return ()
    known = {*shapes, *(str(weight) for weight in weights), "finish"}
    checks = []
    for index, item in enumerate(value):
        where = f"canaryAcceptance[{index}]"
        if not isinstance(item, dict) or not set(item) <= {"url", "status", "timeout", "steps"}:
            reader.errors.append(f"{PROJECT}:{where}: {shown(item)} is not allowed; expected {rule}")
            continue
        url, status, timeout, steps = (
            item.get("url"),
            item.get("status", 200),
            item.get("timeout", 5),
            item.get("steps", []),
        )
        problem = ""
        if not isinstance(url, str) or prometheus_url_error(url) or "@" in url:
            problem = "url must be an http(s) URL without user info (the stack file is committed)"
        elif isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            problem = "status must be an HTTP status from 100 to 599"
        elif isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0.1 <= timeout <= 60:
            problem = "timeout must be seconds from 0.1 to 60"
        elif not isinstance(steps, list) or not all(str(step) in known for step in steps):
            problem = f"steps must name steps of this stack ({', '.join(sorted(known))})"
        if problem:
            shown_item = {**item, "url": "<not shown>"} if isinstance(url, str) and "@" in url else item
            reader.errors.append(f"{PROJECT}:{where}: {shown(shown_item)} is not allowed; {problem}")
            continue
        checks.append(AcceptanceCheck(str(url), int(status), float(timeout), tuple(str(step) for step in steps)))
    return tuple(checks)


def _success_rate(reader: _Reader) -> float:
    value = reader.text("analysisMinSuccessRate")
    try:
        rate = float(value) if re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,6})?", value) else -1.0
    except ValueError:
        rate = -1.0
    if not 0 < rate <= 100:
        reader.fail("analysisMinSuccessRate", value, "a percentage above 0 and at most 100, e.g. 99 or 99.5")
        return 100.0
    return rate


def _optional_percent(reader: _Reader, key: str) -> int | None:
    value = reader.text(key)
    if value == "":
        return None
    if not INT.fullmatch(value) or int(value) > 10000:
        reader.fail(key, value, "a whole percentage from 0 to 10000, or empty to turn the comparison off")
        return None
    return int(value)


CHECK_FIELDS = ("name", "query", "max", "min", "unit", "maxWorseThanGaPct")


def _user_checks(reader: _Reader, taken: set[str]) -> tuple[Check, ...]:
    """`analysisChecks`: a stack's own checks, each {name, query, max | min, unit?, maxWorseThanGaPct?}."""
    key = "analysisChecks"
    value = reader.array(key)
    if not isinstance(value, list):
        reader.fail(key, value, "a list of checks, each {name, query, max or min, unit, maxWorseThanGaPct}")
        return ()
    checks = []
    for index, item in enumerate(value):
        where = f"[{index}]"
        problems = []
        if not isinstance(item, dict):
            reader.errors.append(f"{PROJECT}:{key}{where}: {shown(item)} is not a mapping with name, query, max/min")
            continue
        name = item.get("name")
        if isinstance(name, str) and CHECK_NAME.fullmatch(name):
            where += f" ({name})"
            if name in taken:
                problems.append(f"name {name!r} is taken (by a built-in check or an earlier entry)")
            taken.add(name)
        else:
            problems.append(f"name {shown(name)}: lowercase letters, digits, '_' and '-', at most 40, a letter first")
        unknown = sorted(set(item) - set(CHECK_FIELDS))
        if unknown:
            problems.append(f"unknown field(s) {', '.join(map(str, unknown))} (known: {', '.join(CHECK_FIELDS)})")
        query = item.get("query")
        error = template_error(query) if isinstance(query, str) else "a PromQL template (text)"
        if error:
            problems.append(f"query: expected {error}")
        bounds = [(field, item[field]) for field in ("max", "min") if field in item]
        threshold = finite_number(bounds[0][1]) if len(bounds) == 1 else None
        if threshold is None:
            problems.append("exactly one of max or min, a finite number >= 0")
        unit = item.get("unit", "")
        if not isinstance(unit, str) or not UNIT.fullmatch(unit):
            problems.append(f"unit {shown(unit)}: up to 12 letters, % or /")
        relative = item.get("maxWorseThanGaPct")
        if relative is not None and (finite_number(relative) is None or relative > 10000):
            problems.append(f"maxWorseThanGaPct {shown(relative)}: a percentage from 0 to 10000")
        if problems:
            reader.errors.extend(f"{PROJECT}:{key}{where}: {problem}" for problem in problems)
            continue
        checks.append(
            Check(
                name=str(name),
                query=str(query),
                comparison=MAX if bounds[0][0] == "max" else MIN,
                threshold=float(threshold),  # type: ignore[arg-type]
                unit=unit,
                max_worse_than_ga_pct=None if relative is None else float(relative),
            )
        )
    return tuple(checks)


def _cluster(reader: _Reader, gcp: Mapping[str, Any], check_environment: bool) -> ClusterSettings:
    mode = reader.choice("clusterMode", CLUSTER_MODES)
    name = reader.matching("clusterName", GKE_NAME, "a GKE cluster name: lowercase letters, digits, '-', at most 40")
    location = reader.text("clusterLocation")
    project = str(gcp.get("project") or "")
    if mode == "gke" and check_environment:
        if not GCP_PROJECT.fullmatch(project) or project.startswith(PLACEHOLDER_PREFIX):
            reader.errors.append(
                f"gcp:project: {project!r} is not allowed; expected your GCP project id "
                "(pulumi config set gcp:project <id>)"
            )
        location = location or str(gcp.get("region") or "")
        if not (GCP_REGION.fullmatch(location) or GCP_ZONE.fullmatch(location)):
            reader.fail("clusterLocation", location, "a GCP region or zone such as europe-west1 (or set gcp:region)")
    elif location and not (GCP_REGION.fullmatch(location) or GCP_ZONE.fullmatch(location)):
        reader.fail("clusterLocation", location, "a GCP region or zone such as europe-west1, or empty")
    machine_type = reader.matching("nodeMachineType", MACHINE_TYPE, "a GCE machine type such as e2-standard-4")
    if MACHINE_TYPE.fullmatch(machine_type) and too_small(machine_type):
        reader.fail(
            "nodeMachineType", machine_type, f"a machine with at least {MIN_VCPUS} dedicated vCPUs (e2-standard-4)"
        )
    min_nodes = reader.integer("nodeMinCount", 0, 100)
    max_nodes = reader.integer("nodeMaxCount", 1, 100)
    if max_nodes < min_nodes:
        reader.fail("nodeMaxCount", max_nodes, f"at least {PROJECT}:nodeMinCount ({min_nodes})")
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
    if mode == "existing" and kubeconfig and check_environment and not Path(kubeconfig).expanduser().is_file():
        reader.fail("kubeconfig", kubeconfig, "the path of an existing kubeconfig file, or empty")
    context = reader.text("kubeContext")
    if not context.isprintable():  # a newline or escape here ends up in kubeconfig and terminal output
        reader.fail("kubeContext", context, "a context name without control characters")
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
        context=context,
    )


def _mesh(reader: _Reader) -> MeshSettings:
    version = reader.text("istioVersion")
    match = ISTIO_VERSION.fullmatch(version)
    if not match or int(match.group(1)) < MIN_ISTIO_MINOR:
        reader.fail("istioVersion", version, f"an Istio release 1.{MIN_ISTIO_MINOR}.0 or newer, e.g. 1.30.4")
    return MeshSettings(
        install=reader.boolean("installMesh"),
        version=version,
        gateway_service_type=reader.choice("gatewayServiceType", GATEWAY_SERVICE_TYPES),
    )


def _app(reader: _Reader, shapes: tuple[str, ...], mirror_percent: int) -> AppSettings:
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
    # A Secret's name is an RFC 1123 subdomain: labels of at most 63, at most 253 in all.
    labels = credential.split(".")
    if credential and not (
        len(credential) <= 253 and all(len(label) <= 63 and DNS_LABEL.fullmatch(label) for label in labels)
    ):
        reader.fail("tlsCredentialName", credential, "a Kubernetes secret name, or empty for HTTP only")
    return AppSettings(
        namespace=namespace,
        name=name,
        image=reader.matching(
            "image", IMAGE_REPO, "an image repository without tag, e.g. ghcr.io/stefanprodan/podinfo"
        ),
        ga_version=reader.text("gaVersion"),  # checked with the tag policies (_versions): they say what a version is
        canary_version=reader.text("canaryVersion"),
        canary_weight=reader.integer("canaryWeight", 0, 100),
        replicas=replicas,
        public_host=public_host,
        tls_credential_name=credential,
        shape=app_shape_config.read(reader, replicas),
        canary_shape=canary_shape,
        mirror_percent=mirror_percent,
        canary_match=match,
        ga_rollback_replicas=reader.integer("gaRollbackReplicas", 0, 100),
    )


def _load_path(reader: _Reader) -> str:
    path = reader.text("loadPath")
    if not app_shape_config.HTTP_PATH.fullmatch(path):
        reader.fail("loadPath", path, "an HTTP path such as /version or /")
    return path


def _monitoring(reader: _Reader) -> MonitoringSettings:
    # An exact version only: a range would let `pulumi up` install a chart nobody reviewed.
    rule = "an exact chart version such as 25.8.0 (no range, no v prefix)"
    return MonitoringSettings(
        enabled=reader.boolean("monitoring"),
        prometheus_chart_version=reader.matching("prometheusChartVersion", CHART_VERSION, rule),
        grafana_chart_version=reader.matching("grafanaChartVersion", CHART_VERSION, rule),
    )


def _tag_policies(reader: _Reader) -> tuple[TagPolicy, TagPolicy | None, bool]:
    """canaryTagPolicy and the optional gaTagPolicy, both with the shared tag filter, extract and pre-release rule,
    and whether all of them were read as written (a refused one is replaced by semver:*, which says nothing)."""
    errors = len(reader.errors)
    tag_filter, extract = reader.text("imageTagFilter"), reader.text("imageTagExtract")
    prereleases = reader.boolean("imagePrereleases")
    try:
        TagPolicy.parse("alphabetical:asc", tag_filter, extract)  # the filter and extract alone, on their own keys
    except PolicyError as exc:
        key, value = ("imageTagExtract", extract) if "extract" in str(exc) else ("imageTagFilter", tag_filter)
        reader.errors.append(f"{PROJECT}:{key}: {shown(value)} is refused: {exc}")
        tag_filter, extract = "", ""
    policies: list[TagPolicy | None] = []
    for key in ("canaryTagPolicy", "gaTagPolicy"):
        text = reader.text(key)
        if key == "gaTagPolicy" and not text:
            policies.append(None)
            continue
        try:
            policy = TagPolicy.parse(text, tag_filter, extract, prereleases)
        except PolicyError as exc:
            reader.errors.append(f"{PROJECT}:{key}: {shown(text)} is refused: {exc}")
            policy = TagPolicy.parse("semver:*")
        if policy.kind == "glob" and not glob_can_match_release(policy.argument):
            reader.fail(key, text, "a glob that matches some release tag such as 6.9.* (pre-releases never match)")
        policies.append(policy)
    return policies[0] or TagPolicy.parse("semver:*"), policies[1], len(reader.errors) == errors


# The versions every stack held before it could choose another policy: any semver release, pre-releases too.
SEMVER_RELEASES = TagPolicy.parse("semver:*", prereleases=True)


def _orders(policy: TagPolicy, tag: str) -> bool:
    """Does `policy` order `tag` as a version (range bounds aside)? A semver or glob one also wants three numbers in
    the tag: Flux reads `6.9` as 6.9.0, but such a tag follows the 6.9 line as it moves."""
    return policy.reads(tag) and (policy.kind not in ("semver", "glob") or FULL_VERSION.search(tag) is not None)


def _scheme(policy: TagPolicy, extracted: bool) -> str:
    """What a tag `policy` orders looks like, in words with an example."""
    part = "the extracted part being " if extracted else ""
    if policy.kind in ("semver", "glob"):
        return f"{part}a version such as 6.15.0, v6.15.0 or 6.16.0-rc.1"
    if policy.kind == "numerical":
        return f"{part}a number such as 1700000000"
    return "any tag"


def _policy_words(reader: _Reader, policies: list[tuple[str, TagPolicy]]) -> str:
    """`canaryTagPolicy numerical:asc with imageTagFilter '^main-...' and imageTagExtract '$ts' (its extracted part a
    number such as 1700000000)`: the policies that might order a key, and the filter they share."""
    tag_filter, extract = reader.text("imageTagFilter"), reader.text("imageTagExtract")
    names = " or ".join(f"{key} {policy}" for key, policy in policies)
    if not tag_filter:
        shared = "without imageTagFilter"
    else:
        shared = f"with imageTagFilter {tag_filter!r}" + (f" and imageTagExtract {extract!r}" if extract else "")
        shared += " matching it"
    schemes = "; ".join(dict.fromkeys(_scheme(policy, bool(tag_filter and extract)) for _, policy in policies))
    return f"{names} orders, {shared} ({schemes})"


def _versions(reader: _Reader, app: AppSettings, canary_tags: TagPolicy, ga_tags: TagPolicy | None) -> None:
    """canaryVersion and gaVersion against the policies that produce them (not against semver).

    canaryVersion: a tag canaryTagPolicy orders (watch-images wrote it), a semver release (the scheme of every stack
    before it chose another policy; a person may pick one as with a range), or gaVersion's tag (no release has started
    since the stack changed policy: a line switches scheme in one commit). gaVersion: a tag gaTagPolicy or
    canaryTagPolicy orders (a finished release made the canary's tag GA), or, while GA still runs a tag of an earlier
    policy, a tag with a digit in it (no policy of the stack can order it any more; `v` or `stable` is a typo).
    Either: never `latest`, and a tag the pods can carry as their `version` label.
    """
    policies = [("gaTagPolicy", ga_tags)] if ga_tags is not None else []
    plain_semver = canary_tags.kind in ("semver", "glob") and not reader.text("imageTagFilter")
    release = "" if plain_semver else "a semver release such as 6.15.0 (the scheme the stack may have just left), "
    rules = {
        "canaryVersion": ([("canaryTagPolicy", canary_tags)], f"{release}or gaVersion's tag {app.ga_version}"),
        "gaVersion": (
            [*policies, ("canaryTagPolicy", canary_tags)],
            "or, while GA still runs a tag of an earlier policy, one with a digit in it",
        ),
    }
    values = {"canaryVersion": app.canary_version, "gaVersion": app.ga_version}
    for key, (ordering, otherwise) in rules.items():
        value = values[key]
        problem = version_tag_problem(value)
        if problem is None:
            if any(_orders(policy, value) for _, policy in ordering):
                continue
            if key == "canaryVersion" and (value == app.ga_version or _orders(SEMVER_RELEASES, value)):
                continue
            if key == "gaVersion" and any(char.isdigit() for char in value):
                continue
        why = f" ({problem})" if problem else ""
        reader.fail(key, value, f"a released image tag that {_policy_words(reader, ordering)}, {otherwise}{why}")


# The longest analysisInterval: the agent's /healthz goes stale after a few of the longest interval it serves
# (istio_canary/agent/metrics.py), so this bound is how long a stuck agent can look alive before its liveness probe
# restarts it (3 x 15m), and it keeps the rollback promise (threshold x interval + one interval) within an hour or
# so at the default threshold.
MAX_ANALYSIS_INTERVAL = "15m"


def _interval(reader: _Reader) -> str:
    interval = reader.matching("analysisInterval", _PROM_DURATION, "a duration such as 30s, 1m or 5m")
    if _PROM_DURATION.fullmatch(interval) and duration_seconds(interval) > duration_seconds(MAX_ANALYSIS_INTERVAL):
        reader.fail(
            "analysisInterval",
            interval,
            f"at most {MAX_ANALYSIS_INTERVAL}: the agent's liveness follows it, and a longer one would leave a stuck "
            "agent (and a failing canary) alone for hours",
        )
    return interval


def _release(
    reader: _Reader, weights: tuple[int, ...], shapes: tuple[str, ...], app: AppSettings, versions_by_policy: bool
) -> ReleaseSettings:
    prometheus_url = reader.text("prometheusUrl")
    url_error = prometheus_url_error(prometheus_url) if prometheus_url else None
    if url_error:
        reader.fail(
            "prometheusUrl",
            "<not shown: it may hold a credential>" if "@" in prometheus_url else prometheus_url,
            url_error,
        )
    canary_tags, ga_tags, policies_read = _tag_policies(reader)
    if not versions_by_policy:  # the rollback's reading: the image reference and the pods' label are all it needs
        for key, value in (("gaVersion", app.ga_version), ("canaryVersion", app.canary_version)):
            problem = version_tag_problem(value)
            if problem:
                reader.fail(key, value, f"a released image tag ({problem})")
    elif policies_read:  # a refused policy is reported once, not again as every version it cannot order
        _versions(reader, app, canary_tags, ga_tags)
    checks = builtin_checks(
        min_requests=reader.integer("analysisMinRequests", 1, 10**9),
        min_success_rate=_success_rate(reader),
        max_p99_ms=reader.integer("analysisMaxP99Ms", 1, 600000),
        max_p99_over_ga_pct=_optional_percent(reader, "analysisMaxP99OverGaPct"),
    )
    return ReleaseSettings(
        steps=weights,
        shapes=shapes,
        acceptance=_acceptance(reader, weights, shapes),
        checks=checks + _user_checks(reader, {check.name for check in checks}),
        window=reader.matching("analysisWindow", _PROM_DURATION, "a Prometheus duration such as 30s, 5m or 1h"),
        canary_tags=canary_tags,
        ga_tags=ga_tags,
        watch_images=reader.boolean("agentWatchImages"),
        interval=_interval(reader),
        threshold=reader.integer("analysisThreshold", 1, 100),
        error_limit=reader.integer("analysisErrorLimit", 1, 100),
        iterations=reader.integer("analysisIterations", 1, 1000),
        promotion=reader.choice("canaryPromotion", PROMOTIONS),
        notice_after=reader.matching("agentNoticeAfter", _PROM_DURATION, "a duration such as 10m or 1h"),
        drift_grace=reader.matching("agentDriftGrace", _PROM_DURATION, "a duration such as 5m or 15m"),
        prometheus_url=prometheus_url,
    )


# A user-managed service account's email: an account id of 6 to 30 (a letter first, no trailing '-') at a project id
# (GCP_PROJECT). Google's own (PROJECT_NUMBER-compute@developer...) are left out: the agent gets an account of its own.
GOOGLE_SERVICE_ACCOUNT = re.compile(rf"[a-z][a-z0-9-]{{4,28}}[a-z0-9]@{GCP_PROJECT.pattern}\.iam\.gserviceaccount\.com")


def _agent(reader: _Reader) -> AgentSettings:
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
    reader = _Reader(project, schema(project_file))
    weights, shapes, mirror_percent = _steps(reader)
    cluster, mesh = _cluster(reader, gcp or {}, check_environment), _mesh(reader)
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
        release=_release(reader, weights, shapes, app, versions_by_policy),
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
