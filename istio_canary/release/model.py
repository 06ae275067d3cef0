"""The validated settings of one stack: frozen, typed dataclasses for the cluster, the mesh, the app, the load
generator, monitoring, the release rules and the release agent.

istio_canary/release/settings.py builds them from stack config (and is the only place that does); components and the `canary`
tool read them. Only data and derived properties here: no parsing, no config access.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from istio_canary.release.app_shape import AppShape
from istio_canary.release.checks import Check
from istio_canary.release.names import duration_seconds, traffic_split
from istio_canary.release.tagpolicy import TagPolicy


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
    """The released service's GA + canary, their shape and the traffic split between them."""

    namespace: str
    name: str
    image: str
    ga_version: str
    canary_version: str
    canary_weight: int
    replicas: int
    public_host: str
    tls_credential_name: str
    app_shape: AppShape  # the container: port, probes, user, resources (not the traffic shape: canary_shape)
    canary_shape: str  # "" (weights), "mirror" or "header": istio_canary/release/traffic.py
    mirror_percent: int  # of GA's requests copied to the canary in the mirror step
    canary_match: str  # which requests the header step sends to the canary: header:<name>=<value> or cookie:...
    # GA's autoscaler minimum after a rollback (gaRollbackReplicas), when above `replicas`; 0: none.
    ga_rollback_replicas: int = 0

    @property
    def split(self) -> dict[str, int]:
        """The traffic split as percentages, e.g. {"ga": 90, "canary": 10}."""
        return traffic_split(self.canary_weight)


@dataclass(frozen=True)
class LoadSettings:
    """The hey load generator."""

    enabled: bool
    rate: int
    concurrency: int
    path: str


@dataclass(frozen=True)
class MonitoringSettings:
    """Prometheus and Grafana, each from a Helm chart pinned to one exact version."""

    enabled: bool
    prometheus_chart_version: str
    grafana_chart_version: str


@dataclass(frozen=True)
class AcceptanceCheck:
    """An HTTP check that must answer `status` within `timeout_s` before a step is proposed (canaryAcceptance)."""

    url: str
    status: int
    timeout_s: float
    steps: tuple[str, ...]  # the steps it gates (mirror, header, 10, finish ...); empty: every step

    def gates(self, step: str) -> bool:
        return not self.steps or step in self.steps


THRESHOLD_JUDGE = "threshold"
STATISTICAL_JUDGE = "statistical"
JUDGES = (THRESHOLD_JUDGE, STATISTICAL_JUDGE)


@dataclass(frozen=True)
class StatisticalRules:
    """What the statistical judge (istio_canary/release/statistical.py) needs: its error budgets, the effects it
    must tell apart from "no worse than GA", and the stack's thresholds, which stay guardrails."""

    false_rollback_pct: float = 1.0  # chance per release that a canary as good as GA is rolled back by a test
    missed_detection_pct: float = 5.0  # chance per step that a canary worse by the effects below passes it
    error_ratio: float = 2.0  # the canary's error rate this many times the comparator's is "worse"
    error_tolerance_pct: float = 0.5  # a canary shown under this error rate passes the comparison whatever GA's
    slower_pairs_pct: float = 56.0  # "worse" latency: a canary request slower than GA's in this share of pairs
    share_tolerance_pct: float = 5.0  # the data plane may send this many points more or less than the weight
    analysed_steps: int = 3  # the steps judged against GA: the false-rollback budget is split over them
    planned_looks: int = 20  # looks a step is planned to decide within (4 x analysisIterations)
    first_weight: int | None = None  # the schedule's first weight: its step weighs twice (None: all alike)
    min_requests: int = 100  # the guardrails: the stack's analysisMinRequests, MinSuccessRate, MaxP99Ms
    min_success_rate: float = 99.0
    max_p99_ms: float = 500.0


@dataclass(frozen=True)
class ReleaseSettings:
    """What the `canary` command needs: the promotion schedule and the checks the analysis judges."""

    steps: tuple[int, ...]  # the weights
    shapes: tuple[str, ...]  # the steps before the weights: mirror, header (istio_canary/release/traffic.py)
    acceptance: tuple[AcceptanceCheck, ...]  # run by promote (and so the agent) before a step is proposed
    checks: tuple[Check, ...]  # the built-in ones with this stack's thresholds, then the stack's own
    window: str
    canary_tags: TagPolicy  # which registry tag may become the next canaryVersion
    ga_tags: TagPolicy | None  # which tag may move gaVersion while no release runs; None: GA moves only by release
    watch_images: bool  # the agent runs `canary watch-images` every interval
    prometheus_url: str
    interval: str  # how often the release agent judges the canary
    threshold: int  # consecutive failed analyses before the agent rolls back
    error_limit: int  # consecutive analyses that could not be judged (Prometheus answered garbage) before it does
    iterations: int  # consecutive passes at a live step before it proposes the next
    promotion: str  # "pr": a pull request per step; "auto": the agent pushes the step to main itself
    notice_after: str  # inconclusive/unavailable this long: one Slack notice
    drift_grace: str  # Git and the cluster may disagree this long (an `up` in flight) before it is drift
    judge: str = THRESHOLD_JUDGE  # analysisJudge: how an analysis reaches its verdict
    statistical: StatisticalRules = StatisticalRules()
    baseline: bool = False  # analysisBaseline: the statistical judge compares with <app>-baseline, not GA

    @property
    def fails_to_roll_back(self) -> int:
        """FAILs in a row the agent rolls back on. The threshold judge: analysisThreshold, against noise in one
        window's numbers. The statistical judge: 1, its first FAIL: its tests have already paid, out of
        analysisFalseRollbackPct, for noise and for being looked at every interval (a sequential test stops
        at its first crossing)."""
        return 1 if self.judge == STATISTICAL_JUDGE else self.threshold

    # The durations in seconds: each converted here, in one place, for every reader (the agent, its history).
    @property
    def interval_s(self) -> int:
        return duration_seconds(self.interval)

    @property
    def window_s(self) -> int:
        return duration_seconds(self.window)

    @property
    def notice_after_s(self) -> int:
        return duration_seconds(self.notice_after)

    @property
    def drift_grace_s(self) -> int:
        return duration_seconds(self.drift_grace)


@dataclass(frozen=True)
class AgentSettings:
    """The `canary agent` Deployment. Its secrets are Pulumi secrets, read only by load(): parse() leaves None."""

    enabled: bool
    image: str
    git_repo: str  # https URL of this repository, without credentials
    git_token_secret: str  # a Secret made outside Pulumi holding the token; "" means the stack secret agentGitToken
    registry_secret: str  # a kubernetes.io/dockerconfigjson Secret made outside Pulumi; "" means none mounted
    google_service_account: str  # the GSA its ServiceAccount acts as (GKE Workload Identity); "" means none
    git_token: Any = None  # pulumi.Output[str] | None: a token whose pushes start workflows (not GITHUB_TOKEN)
    slack_webhook_url: Any = None  # pulumi.Output[str] | None


@dataclass(frozen=True)
class LayoutSettings:
    """Which part of the house this stack builds: everything (the dev stack), a platform with no app of its own
    (deploy_app False), or one app on a platform stack (platform_stack set, clusterMode stack)."""

    platform_stack: str
    deploy_app: bool


@dataclass(frozen=True)
class Settings:
    """Everything the program builds, validated."""

    cluster: ClusterSettings
    mesh: MeshSettings
    app: AppSettings
    load: LoadSettings
    monitoring: MonitoringSettings
    release: ReleaseSettings
    agent: AgentSettings
    layout: LayoutSettings
    skip_await: bool
