"""Every config key is validated in one place; bad values fail with the key, the value and the rule."""

from __future__ import annotations

import json

import pytest

from istio_canary.release.settings import ConfigError, parse, parse_weight, schema
from tests.unit.conftest import GCP, config

BAD_WEIGHTS = ["", "abc", "10.5", "-1", "101", "50%", "1e2", " 10", "0x10", "1_0", True]


@pytest.mark.parametrize("weight", [0, 10, 60, 100, "0", "60", "100"])
def test_valid_weights_become_ints(weight: int | str) -> None:
    settings = parse(config(canaryWeight=weight), GCP)
    assert settings.app.canary_weight == int(weight)
    assert settings.app.split == {"ga": 100 - int(weight), "canary": int(weight)}


@pytest.mark.parametrize("weight", BAD_WEIGHTS)
def test_bad_weights_are_rejected_with_key_value_and_rule(weight: object) -> None:
    with pytest.raises(ConfigError) as error:
        parse(config(canaryWeight=weight), GCP)
    message = str(error.value)
    assert "istio-canary:canaryWeight" in message
    assert repr("true" if weight is True else weight) in message
    assert "whole number from 0 to 100" in message
    with pytest.raises(ConfigError):
        parse_weight(weight)


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("gaVersion", "latest", "released image tag"),
        ("canaryVersion", "main", "released image tag"),
        ("canaryVersion", "6.9", "released image tag"),
        ("publicHost", "podinfo", "DNS name"),
        ("publicHost", "Podinfo.Example.com", "DNS name"),
        ("publicHost", "http://podinfo.example.com", "DNS name"),
        ("publicHost", "-bad.example.com", "DNS name"),
        ("clusterMode", "eks", "one of gke, existing"),
        ("releaseChannel", "BETA", "one of RAPID, REGULAR, STABLE"),
        ("releaseChannel", "regular", "one of RAPID, REGULAR, STABLE"),
        ("gatewayServiceType", "ExternalName", "one of LoadBalancer, NodePort, ClusterIP"),
        ("istioVersion", "1.20.0", "Istio release 1.24.0 or newer"),
        ("istioVersion", "latest", "Istio release"),
        ("nodeMachineType", "e2-small", "at least 2 dedicated vCPUs"),
        ("nodeMinCount", "-1", "whole number from 0 to 100"),
        ("nodeMaxCount", "0", "whole number from 1 to 100"),
        ("masterCidr", "10.0.0.0/24", "private IPv4 /28"),
        ("masterCidr", "8.8.8.0/28", "private IPv4 /28"),
        ("namespace", "Test", "DNS label"),
        ("appName", "x" * 56, "at most 55"),
        ("image", "ghcr.io/stefanprodan/podinfo:6.9.0", "without tag"),
        ("replicas", "0", "whole number from 1 to 20"),
        ("loadRate", "0", "whole number from 1 to 1000"),
        ("loadConcurrency", "many", "whole number from 1 to 50"),
        ("loadGenerator", "yes", "true or false"),
        ("deletionProtection", "1", "true or false"),
        ("masterAuthorizedNetworks", '["10.0.0.0/33"]', "IPv4 CIDRs"),
        ("masterAuthorizedNetworks", '["10.0.0.1/8"]', "IPv4 CIDRs"),
        ("masterAuthorizedNetworks", "10.0.0.0/8", "IPv4 CIDRs"),
        ("canarySteps", "[60, 10, 100]", "increasing whole numbers"),
        ("canarySteps", "[10, 60]", "ends at 100"),
        ("canarySteps", "[0, 100]", "from 1 to 100"),
        ("analysisMinSuccessRate", "101", "percentage"),
        ("analysisMinSuccessRate", "ninety", "percentage"),
        ("analysisWindow", "5 minutes", "Prometheus duration"),
        ("canaryTagPolicy", "6.*", "semver:<range>"),
        ("canaryTagPolicy", "semver:>=6.15.0 <<7", "not comparators joined by spaces or commas"),
        ("gaTagPolicy", "numerical:newest", "numerical:asc or numerical:desc"),
        ("imageTagFilter", "^main-(", "not a Go (RE2) regular expression"),
        ("imageTagExtract", "$ts", "needs a tag filter"),
        ("imagePrereleases", "yes", "true or false"),
        ("agentWatchImages", "sometimes", "true or false"),
        ("prometheusUrl", "prometheus:9090", "http(s) URL"),
        ("tlsCredentialName", "Bad_Name", "secret name"),
    ],
)
def test_bad_values_name_key_value_and_rule(key: str, value: str, rule: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse(config(**{key: value}), GCP)
    message = str(error.value)
    assert f"istio-canary:{key}: {value!r}" in message
    assert rule in message


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        parse(config(canaryWeight="101", gaVersion="latest", clusterMode="eks"), GCP)
    message = str(error.value)
    for key in ("canaryWeight", "gaVersion", "clusterMode"):
        assert f"istio-canary:{key}" in message


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ConfigError, match="canaryWeigth: unknown config key"):
        parse(config(canaryWeigth="10"), GCP)


@pytest.mark.parametrize("project", ["", "change-me-gcp-project", "Bad_Project"])
def test_gke_needs_a_real_gcp_project(project: str) -> None:
    with pytest.raises(ConfigError, match="gcp:project"):
        parse(config(), {"project": project, "region": "europe-west1"})


def test_existing_mode_needs_no_gcp_project_but_a_real_kubeconfig(tmp_path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    settings = parse({"clusterMode": "existing", "kubeconfig": str(kubeconfig)}, {})
    assert settings.cluster.mode == "existing"
    with pytest.raises(ConfigError, match=r"kubeconfig: .*existing kubeconfig file"):
        parse({"clusterMode": "existing", "kubeconfig": str(tmp_path / "missing")}, {})


def test_location_falls_back_to_gcp_region() -> None:
    settings = parse({"clusterMode": "gke"}, {"project": "acme-canary-dev", "region": "us-central1"})
    assert settings.cluster.location == "us-central1"


def test_defaults_come_from_the_pulumi_yaml_schema() -> None:
    settings = parse(config(), GCP)
    defaults = {key: spec.get("default") for key, spec in schema().items()}
    assert settings.app.canary_weight == defaults["canaryWeight"]
    assert settings.mesh.version == defaults["istioVersion"]
    assert settings.release.steps == tuple(defaults["canarySteps"] or ())
    assert settings.cluster.release_channel == defaults["releaseChannel"]


def test_schema_declares_type_default_and_description_for_every_key() -> None:
    for key, spec in schema().items():
        assert spec.get("type") in {"string", "integer", "boolean", "array"}, key
        assert "default" in spec, key
        # The engine requires every declared secret key to be set in every stack.
        assert not spec.get("secret"), key
        assert spec.get("description"), key


def test_settings_are_frozen() -> None:
    settings = parse(config(), GCP)
    with pytest.raises(AttributeError):
        settings.app.canary_weight = 50  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        # Namespaces the platform owns: two Namespace objects with one name.
        *[
            ("namespace", ns, "not one the mesh, monitoring or Kubernetes owns")
            for ns in ("istio-system", "kube-system", "kube-public", "kube-node-lease", "monitoring")
        ],
        # Non-ASCII digits wherever a number or a version is read (\d would take them).
        ("istioVersion", "1.\u0663\u0660.4", "Istio release"),
        ("canaryVersion", "6.1\uff16.0", "released image tag"),
        ("gaVersion", "\u0666.14.0", "released image tag"),
        ("canaryWeight", "\u0661\u0660", "whole number"),
        ("analysisMinSuccessRate", "\u0669\u0669", "percentage"),
        ("prometheusChartVersion", "28.1\u0660.0", "exact chart version"),
        # Fewer vCPUs than istiod plus sidecars need.
        ("nodeMachineType", "n1-standard-1", "at least 2 dedicated vCPUs"),
        ("nodeMachineType", "e2-custom-1-1024", "at least 2 dedicated vCPUs"),
        ("nodeMachineType", "custom-1-2048", "at least 2 dedicated vCPUs"),
        ("nodeMachineType", "e2-custom-small-2048", "at least 2 dedicated vCPUs"),
        # Past Kubernetes' and OCI's length limits.
        ("canaryVersion", "6.9.0-" + "a" * 130, "released image tag"),
        ("namespace", "a" * 64, "at most 63"),
        ("tlsCredentialName", "a" * 254, "secret name"),
        ("tlsCredentialName", "a" * 64 + ".b", "secret name"),
        # Control characters in a context name.
        ("kubeContext", "gke\n_ctx", "without control characters"),
        ("kubeContext", "ctx\x1b[31m", "without control characters"),
        # A tag policy that can never match a release tag.
        ("canaryTagPolicy", "glob:latest", "matches some release tag"),
        ("canaryTagPolicy", "glob:6.9.1-*", "matches some release tag"),
        ("canaryTagPolicy", "glob:1.2.3.4", "matches some release tag"),
        # Not URLs.
        ("prometheusUrl", "http://[::1", "http(s) URL"),
        ("prometheusUrl", "http://127.0.0.1:99999", "valid port"),
        ("prometheusUrl", "http://pr\u00f6m:9090", "http(s) URL"),
    ],
)
def test_careless_values_are_refused_naming_the_key(key: str, value: str, rule: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse(config(**{key: value}), GCP)
    message = str(error.value)
    assert f"istio-canary:{key}: " in message
    assert rule in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("nodeMachineType", "n2-standard-2"),
        ("nodeMachineType", "e2-custom-4-8192"),
        ("nodeMachineType", "a2-highgpu-1g"),  # the name does not carry vCPUs: GCE decides
        ("canaryTagPolicy", "glob:6.9.*"),
        ("canaryTagPolicy", "glob:*"),
        ("canaryTagPolicy", "glob:v6.?.*"),
        ("canaryTagPolicy", "semver:>=6.15.0 <7"),
        ("canaryTagPolicy", "numerical:asc"),
        ("gaTagPolicy", "semver:~6.14"),
        ("imageTagFilter", "^main-[a-f0-9]+-(?P<ts>[0-9]+)"),
        ("kubeContext", "gke_acme_europe-west1_istio-canary"),
        ("prometheusUrl", "https://prom.example.com:443/api/prom"),
        ("namespace", "istio-apps"),
    ],
)
def test_careful_values_are_still_accepted(key: str, value: str) -> None:
    parse(config(**{key: value}), GCP)


def test_a_huge_number_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as error:
        parse(config(canaryWeight="9" * 5000), GCP)
    assert "istio-canary:canaryWeight" in str(error.value) and len(str(error.value)) < 300


def test_a_secret_value_is_refused_as_not_plain() -> None:
    with pytest.raises(ConfigError, match="canaryWeight: is a secret; it must be a plain value"):
        parse(config(canaryWeight={"secure": "v1:abc"}), GCP)


def test_a_credential_in_prometheus_url_is_refused_and_not_echoed() -> None:
    with pytest.raises(ConfigError) as error:
        parse(config(prometheusUrl="https://bot:t0k3n@prom.example.com"), GCP)
    assert "prometheusUrl" in str(error.value) and "t0k3n" not in str(error.value)


def test_the_canary_tool_skips_only_the_environment_checks(tmp_path) -> None:
    # gcp:project may come from GOOGLE_PROJECT in the deploy job; a kubeconfig path from the deploy machine.
    parse(config(), {}, check_environment=False)
    parse({"clusterMode": "existing", "kubeconfig": str(tmp_path / "absent")}, {}, check_environment=False)
    with pytest.raises(ConfigError, match="canaryWeigth"):
        parse(config(canaryWeigth="10"), {}, check_environment=False)


GOOD_CHECK = {
    "name": "not_found_per_s",
    "query": 'sum(rate(istio_requests_total{destination_workload="{workload}", response_code="404"}[{window}]))',
    "max": 1,
    "unit": "req/s",
}


def test_a_stacks_own_checks_follow_the_built_in_ones() -> None:
    relative = {**GOOD_CHECK, "name": "latency_mean", "max": 300, "maxWorseThanGaPct": 20}
    relative.pop("unit")
    for raw in ([GOOD_CHECK, relative], json.dumps([GOOD_CHECK, relative])):  # YAML list, or pulumi.Config's JSON
        checks = parse(config(analysisChecks=raw), GCP).release.checks
        assert [c.name for c in checks] == ["requests", "success_rate", "p99_ms", "not_found_per_s", "latency_mean"]
        assert (checks[3].comparison, checks[3].threshold, checks[3].unit) == ("<=", 1.0, "req/s")
        assert checks[4].max_worse_than_ga_pct == 20
        assert checks[3].promql("test", "podinfo-canary", "5m") == (
            'sum(rate(istio_requests_total{destination_workload="podinfo-canary", response_code="404"}[5m]))'
        )


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({**GOOD_CHECK, "name": "p99_ms"}, "name 'p99_ms' is taken"),
        ({**GOOD_CHECK, "name": "Bad Name"}, "lowercase letters"),
        ({**GOOD_CHECK, "query": "sum(rate(x[5m]))"}, "selects one Deployment with {workload}"),
        ({**GOOD_CHECK, "query": 'x{w="{workload}", n="{nmespace}"}'}, "only the variables"),
        ({**GOOD_CHECK, "query": 'sum(rate(x{w="{workload}"}[{window}])'}, "balanced"),
        ({**GOOD_CHECK, "query": 'x{w="{workload}}'}, "balanced"),
        ({**GOOD_CHECK, "query": 'x{w="{workload}", v="\u00e9"}'}, "printable ASCII"),
        ({**GOOD_CHECK, "min": 1}, "exactly one of max or min"),
        ({k: v for k, v in GOOD_CHECK.items() if k != "max"}, "exactly one of max or min"),
        ({**GOOD_CHECK, "max": float("nan")}, "exactly one of max or min"),
        ({**GOOD_CHECK, "max": -1}, "exactly one of max or min"),
        ({**GOOD_CHECK, "max": "1"}, "exactly one of max or min"),
        ({**GOOD_CHECK, "unit": "req/s; drop"}, "unit"),
        ({**GOOD_CHECK, "maxWorseThanGaPct": -5}, "maxWorseThanGaPct"),
        ({**GOOD_CHECK, "threshold": 1}, "unknown field(s) threshold"),
        ("not a mapping", "is not a mapping"),
    ],
)
def test_bad_checks_are_refused_naming_the_entry(entry, problem) -> None:
    with pytest.raises(ConfigError) as error:
        parse(config(analysisChecks=[GOOD_CHECK, entry]), GCP)
    message = str(error.value)
    assert "istio-canary:analysisChecks[1]" in message and problem in message
    assert "analysisChecks[0]" not in message


def test_the_relative_p99_rule_is_on_by_default_and_can_be_turned_off() -> None:
    p99 = parse(config(), GCP).release.checks[2]
    assert (p99.name, p99.max_worse_than_ga_pct) == ("p99_ms", 50)
    assert parse(config(analysisMaxP99OverGaPct=""), GCP).release.checks[2].max_worse_than_ga_pct is None
    with pytest.raises(ConfigError, match="analysisMaxP99OverGaPct"):
        parse(config(analysisMaxP99OverGaPct="-5"), GCP)


def test_release_agent_settings_and_their_defaults() -> None:
    parsed = parse(config(), GCP)
    rel, agent = parsed.release, parsed.agent
    assert (rel.interval, rel.threshold, rel.iterations, rel.promotion) == ("1m", 3, 5, "pr")
    assert (rel.notice_after, rel.drift_grace) == ("10m", "5m")
    assert (agent.enabled, agent.git_repo, agent.git_token) == (False, "", None)
    on = parse(config(releaseAgent="true", agentGitRepo="https://github.com/acme/shop.git"), GCP).agent
    assert on.enabled and on.git_repo == "https://github.com/acme/shop.git"


@pytest.mark.parametrize(
    ("values", "key", "rule"),
    [
        ({"analysisInterval": "1 minute"}, "analysisInterval", "duration"),
        ({"analysisThreshold": "0"}, "analysisThreshold", "whole number from 1"),
        ({"analysisIterations": "-1"}, "analysisIterations", "whole number from 1"),
        ({"canaryPromotion": "yes"}, "canaryPromotion", "one of pr, auto"),
        ({"agentImage": "ghcr.io/acme/agent"}, "agentImage", "with a tag or digest"),
        ({"agentImage": "ghcr.io/acme/agent:latest @x"}, "agentImage", "with a tag or digest"),
        ({"agentGitRepo": "git@github.com:acme/shop.git"}, "agentGitRepo", "https URL"),
        ({"releaseAgent": "true"}, "releaseAgent", "needs istio-canary:agentGitRepo"),
        *[
            ({"agentRegistrySecret": name}, "agentRegistrySecret", "Kubernetes Secret name")
            for name in (
                "Registry_Creds",
                "registry creds",
                "-registry",
                "a..b",
                "x" * 64,  # a label of 64
                ".".join(["r" * 63] * 3 + ["r" * 62]),  # 254 in all
                "reg\n",
            )
        ],
        *[
            ({"agentGoogleServiceAccount": email}, "agentGoogleServiceAccount", "Google service account email")
            for email in (
                "canary-agent",  # the account id alone
                "abcde@acme-canary-dev.iam.gserviceaccount.com",  # an id of 5
                "a" * 31 + "@acme-canary-dev.iam.gserviceaccount.com",  # an id of 31
                "canary-agent-@acme-canary-dev.iam.gserviceaccount.com",  # the id ends with '-'
                "1canary@acme-canary-dev.iam.gserviceaccount.com",  # the id starts with a digit
                "Canary-Agent@acme-canary-dev.iam.gserviceaccount.com",
                "canary-agent@acme.iam.gserviceaccount.com",  # a project id of 4
                "canary-agent@acme-canary-dev.gserviceaccount.com",
                "canary-agent@acme-canary-dev.iam.gserviceaccount.com.example.com",
                "123456789-compute@developer.gserviceaccount.com",  # Google's default account: not the agent's
                " canary-agent@acme-canary-dev.iam.gserviceaccount.com",
            )
        ],
    ],
)
def test_bad_agent_settings_are_refused_naming_the_key(values, key, rule) -> None:
    with pytest.raises(ConfigError) as error:
        parse(config(**values), GCP)
    assert f"istio-canary:{key}: " in str(error.value) and rule in str(error.value)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("agentRegistrySecret", "agent-registry", "registry_secret"),
        ("agentRegistrySecret", "ghcr.io-pull", "registry_secret"),
        ("agentRegistrySecret", ".".join(["r" * 63] * 3 + ["r" * 61]), "registry_secret"),  # 253: the most
        ("agentRegistrySecret", "", "registry_secret"),
        ("agentGoogleServiceAccount", "canary-agent@acme-canary-dev.iam.gserviceaccount.com", "google_service_account"),
        ("agentGoogleServiceAccount", "reader@abcdef.iam.gserviceaccount.com", "google_service_account"),
        (
            "agentGoogleServiceAccount",
            "a" * 30 + "@p" + "0" * 29 + ".iam.gserviceaccount.com",
            "google_service_account",
        ),
        ("agentGoogleServiceAccount", "", "google_service_account"),
    ],
)
def test_registry_credential_settings_are_taken_as_given(key: str, value: str, field: str) -> None:
    agent = parse(
        config(releaseAgent="true", agentGitRepo="https://github.com/acme/shop.git", **{key: value}), GCP
    ).agent
    assert getattr(agent, field) == value


def test_registry_credential_settings_default_to_none() -> None:
    agent = parse(config(), GCP).agent
    assert (agent.registry_secret, agent.google_service_account) == ("", "")


def test_a_token_in_the_agent_repo_url_is_refused_and_not_echoed() -> None:
    with pytest.raises(ConfigError) as error:
        parse(config(agentGitRepo="https://x-access-token:ghp_s3cr3t@github.com/acme/shop.git"), GCP)
    assert "agentGitRepo" in str(error.value) and "ghp_s3cr3t" not in str(error.value)


def test_the_agents_namespace_is_not_the_apps() -> None:
    with pytest.raises(ConfigError, match="istio-canary:namespace: 'canary-agent' is not allowed"):
        parse(config(namespace="canary-agent"), GCP)


def test_an_agent_without_monitoring_needs_a_prometheus_url() -> None:
    agent = {"releaseAgent": "true", "agentGitRepo": "https://github.com/acme/shop.git", "monitoring": "false"}
    with pytest.raises(ConfigError, match="releaseAgent: true with istio-canary:monitoring false needs"):
        parse(config(**agent), GCP)
    assert parse(config(**agent, prometheusUrl="http://prometheus.obs:9090"), GCP).agent.enabled
