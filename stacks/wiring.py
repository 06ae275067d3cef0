"""Wires a stack's components from validated settings: cluster -> the one Kubernetes provider -> mesh -> canary
app -> load generator (and monitoring, then the release agent); and the stack outputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import pulumi

from components.agent_access import AgentAccess, AgentAccessArgs
from components.canary_app import CanaryApp, CanaryAppArgs
from components.cluster import Cluster, ClusterArgs
from components.load_generator import LoadGenerator, LoadGeneratorArgs
from components.mesh import Mesh, MeshArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.platform_ref import PlatformRef, PlatformRefArgs
from components.release_agent import ReleaseAgent, ReleaseAgentArgs
from istio_canary.release.model import STATISTICAL_JUDGE
from istio_canary.release.settings import Settings

# Test-only (skipAwait): an API server without kubelets never makes a pod ready, and nothing runs the
# namespace finalizer's garbage collection in the foreground.
SKIP_AWAIT_ANNOTATIONS = {
    "pulumi.com/skipAwait": "true",
    "pulumi.com/deletionPropagationPolicy": "background",
}


@dataclass(frozen=True)
class BuiltStack:
    """The components one run of the program built, for stack outputs and tests."""

    cluster: Cluster | PlatformRef
    mesh: Mesh
    app: CanaryApp | None  # None in a platform stack (deployApp false)
    load: LoadGenerator | None
    monitoring: Monitoring | None
    agent: ReleaseAgent | None


def skip_await(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """Annotate every Kubernetes object so the provider neither waits for readiness nor for cascading deletes."""
    if not args.type_.startswith("kubernetes:") or args.type_.startswith("kubernetes:helm"):
        return None
    if args.type_ == "pulumi:providers:kubernetes":
        return None
    metadata = args.props.get("metadata")
    if not isinstance(metadata, dict):
        return None
    annotations = {**(metadata.get("annotations") or {}), **SKIP_AWAIT_ANNOTATIONS}
    props = {**args.props, "metadata": {**metadata, "annotations": annotations}}
    return pulumi.ResourceTransformationResult(props=props, opts=args.opts)


def agent_prometheus_url(settings: Settings, monitoring: Monitoring | None) -> str:
    """The Prometheus the release agent asks: this stack's monitoring, else prometheusUrl (an existing one)."""
    # prometheusUrl is what a person or CI outside the cluster uses (often a port-forward); inside, the
    # monitoring component's Service address is the one that works.
    return monitoring.prometheus_url if monitoring else settings.release.prometheus_url


def build(settings: Settings) -> BuiltStack:
    """Wire the components from validated settings."""
    # Per-component transformations reach every child without global state that outlives one program run.
    opts = pulumi.ResourceOptions(transformations=[skip_await] if settings.skip_await else [])
    # Settings and component args share field names, so a renamed field fails here, loudly.
    cluster: Cluster | PlatformRef
    if settings.cluster.mode == "stack":  # an app stack: the platform stack made the cluster and the mesh
        cluster = PlatformRef("platform", PlatformRefArgs(platform_stack=settings.layout.platform_stack), opts)
    else:
        cluster = Cluster("cluster", ClusterArgs(**asdict(settings.cluster)), opts)
    mesh = Mesh("istio", MeshArgs(provider=cluster.provider, **asdict(settings.mesh)), opts)
    a = settings.app
    app = None
    if settings.layout.deploy_app:
        app = CanaryApp(
            a.name,
            CanaryAppArgs(
                provider=cluster.provider,
                gateway_selector=mesh.gateway_selector,
                depends_on=tuple(mesh.ready),
                # Shallow: the app shape stays an AppShape (asdict would turn it into a dict).
                **{field.name: getattr(a, field.name) for field in fields(a)},
            ),
            opts,
        )
    if app is not None and settings.cluster.mode == "stack":
        # The platform's release agent (if it runs one) reads this app's live state.
        AgentAccess(f"{a.name}-agent-access", AgentAccessArgs(cluster.provider, a.namespace, (app,)), opts)
    load = None
    if settings.load.enabled and app is not None:
        load = LoadGenerator(
            f"{a.name}-load",
            LoadGeneratorArgs(
                provider=cluster.provider,
                namespace=a.namespace,
                target_url=f"http://{a.name}.{a.namespace}:{a.app_shape.port}{settings.load.path}",
                rate=settings.load.rate,
                concurrency=settings.load.concurrency,
                depends_on=(app,),
            ),
            opts,
        )
    monitoring = None
    if settings.monitoring.enabled:
        m = settings.monitoring
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                provider=cluster.provider,
                prometheus_chart_version=m.prometheus_chart_version,
                grafana_chart_version=m.grafana_chart_version,
                app_namespace=a.namespace,
                app_name=a.name if app is not None else "",
                checks=settings.release.checks,
                statistical=settings.release.judge == STATISTICAL_JUDGE,
                # After the mesh: the namespace's injection label means nothing before istiod's webhook exists.
                depends_on=tuple(mesh.ready),
            ),
            opts,
        )
    agent = None
    if settings.agent.enabled:
        agent = ReleaseAgent(
            "canary-agent",
            ReleaseAgentArgs(
                provider=cluster.provider,
                stack=pulumi.get_stack(),
                image=settings.agent.image,
                git_repo=settings.agent.git_repo,
                git_token=settings.agent.git_token,
                git_token_secret=settings.agent.git_token_secret,
                slack_webhook_url=settings.agent.slack_webhook_url,
                registry_secret=settings.agent.registry_secret,
                google_service_account=settings.agent.google_service_account,
                prometheus_url=agent_prometheus_url(settings, monitoring),
                app_namespace=a.namespace if app is not None else "",
                # Its Role lives in the app's namespace; its first analysis wants Prometheus up.
                depends_on=(*([app] if app else []), *([monitoring] if monitoring else [])),
            ),
            opts,
        )
    return BuiltStack(cluster=cluster, mesh=mesh, app=app, load=load, monitoring=monitoring, agent=agent)


def export(built: BuiltStack) -> None:
    """Stack outputs: what a person needs after `pulumi up`."""
    pulumi.export("clusterName", built.cluster.cluster_name)
    pulumi.export("kubeconfig", built.cluster.kubeconfig)
    pulumi.export("kubeContext", built.cluster.context)  # with kubeconfig: what an app stack's provider uses
    pulumi.export("ingressAddress", built.mesh.ingress_address)
    if built.app is not None:
        pulumi.export("split", built.app.split)
    if built.monitoring:
        pulumi.export("prometheusUrl", built.monitoring.prometheus_url)
        pulumi.export("grafanaService", f"{built.monitoring.namespace}/{built.monitoring.grafana_service}")
