"""The released service's GA + canary behind one Service, split by the router's objects (istio_canary/routers/:
Istio's DestinationRule and VirtualService); its Gateway and strict mTLS; autoscalers when the shape asks for them.
The container's shape (port, probes, user...) is AppShape. With analysisBaseline a third Deployment, <app>-baseline,
runs gaVersion in the canary's shape at the canary's share: the statistical judge's warm comparator."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.k8s_common import (
    child_options,
    restricted_container_security_context,
    restricted_pod_security_context,
)
from istio_canary.release.app_shape import AppShape
from istio_canary.release.names import BASELINE, subsets, traffic_split, workload
from istio_canary.release.traffic import Match
from istio_canary.routers import router
from istio_canary.routers.base import RoutedService, pulumi_name, route_of

SUBSET_LABEL = "release"
FRESH_FOR = "istio-canary/baseline-for"  # the baseline pods' annotation: the canary version they started beside


@dataclass(frozen=True)
class CanaryAppArgs:
    """Typed inputs of the CanaryApp component."""

    provider: k8s.Provider
    namespace: str
    name: str
    image: str
    ga_version: str
    canary_version: str
    canary_weight: int
    replicas: int
    public_host: str
    tls_credential_name: str
    app_shape: AppShape
    canary_shape: str  # a traffic shape (istio_canary/release/traffic.py): "" (weights), "mirror" or "header"
    mirror_percent: int
    canary_match: str
    # The labels of the mesh's ingress gateway pods, which the Gateway object selects.
    gateway_selector: dict[str, str]
    # GA's autoscaler minimum after a rollback, when above `replicas` (capped at max_replicas); 0: none.
    ga_rollback_replicas: int
    baseline: bool  # analysisBaseline: run and route <app>-baseline (gaVersion) beside the canary
    depends_on: tuple[pulumi.Resource, ...] = ()


class CanaryApp(pulumi.ComponentResource):
    """Namespace with injection, <app>-ga/<app>-canary (and <app>-baseline), Service, the router's objects, Gateway."""

    namespace: str
    service_name: str
    gateway_name: str
    deployment_names: dict[str, str]
    split: dict[str, int]
    port: int
    route: k8s.apiextensions.CustomResource  # the routing object a traffic step changes

    def __init__(self, name: str, args: CanaryAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("istio-canary:app:CanaryApp", name, None, opts)
        self.namespace = args.namespace
        self.service_name = args.name
        self.gateway_name = f"{args.name}-gateway"
        self.deployment_names = {subset: workload(args.name, subset) for subset in subsets(args.baseline)}
        self.split = traffic_split(args.canary_weight, args.baseline)
        self.port = args.app_shape.port
        shape = args.app_shape
        namespace = k8s.core.v1.Namespace(
            f"{args.namespace}-namespace",
            metadata={"name": args.namespace, "labels": {"istio-injection": "enabled"}},
            opts=child_options(self, args.provider, args.depends_on),
        )
        # Everything in the namespace waits for it; Istio objects also wait for the mesh's CRDs.
        in_namespace = child_options(self, args.provider, [namespace])
        istio_objects = child_options(self, args.provider, [namespace, *args.depends_on])
        versions = {"ga": args.ga_version, BASELINE: args.ga_version, "canary": args.canary_version}
        for subset, deployment_name in self.deployment_names.items():
            deployment = self._deployment(deployment_name, subset, versions[subset], args, in_namespace)
            if shape.max_replicas:
                self._autoscaler(deployment_name, subset, deployment, args, in_namespace)
        k8s.core.v1.Service(
            f"{args.name}-service",
            metadata=self._meta(args.name, args),
            spec={
                "type": "ClusterIP",
                "selector": {"app": args.name},
                "ports": [
                    {"name": shape.port_name, "port": shape.port, "targetPort": shape.port_name, "protocol": "TCP"}
                ],
            },
            opts=in_namespace,
        )
        service = RoutedService(
            name=args.name,
            namespace=args.namespace,
            port=shape.port,
            public_host=args.public_host,
            gateway=self.gateway_name,
            subset_label=SUBSET_LABEL,
            subsets=tuple(self.deployment_names),
        )
        traffic_router = router()
        declared = traffic_router.objects(
            service, self.split, args.canary_shape, args.mirror_percent, Match.parse(args.canary_match)
        )
        for routing in declared:
            resource = k8s.apiextensions.CustomResource(
                pulumi_name(args.name, routing["kind"]),
                api_version=routing["apiVersion"],
                kind=routing["kind"],
                metadata=self._meta(routing["metadata"]["name"], args),
                spec=routing["spec"],
                opts=istio_objects,
            )
            if routing is route_of(traffic_router, declared):
                self.route = resource
        k8s.apiextensions.CustomResource(
            f"{args.name}-gateway",
            api_version="networking.istio.io/v1",
            kind="Gateway",
            metadata=self._meta(self.gateway_name, args),
            spec={"selector": dict(args.gateway_selector), "servers": self._servers(args)},
            opts=istio_objects,
        )
        k8s.apiextensions.CustomResource(
            f"{args.name}-peerauthentication",
            api_version="security.istio.io/v1",
            kind="PeerAuthentication",
            metadata=self._meta("default", args),
            spec={"mtls": {"mode": "STRICT"}},
            opts=istio_objects,
        )
        self.register_outputs({"split": self.split})

    @staticmethod
    def _meta(name: str, args: CanaryAppArgs, labels: dict[str, str] | None = None) -> dict:
        return {"name": name, "namespace": args.namespace, "labels": {"app": args.name, **(labels or {})}}

    @staticmethod
    def _servers(args: CanaryAppArgs) -> list[dict]:
        http: dict = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [args.public_host]}
        if not args.tls_credential_name:
            return [http]
        http["tls"] = {"httpsRedirect": True}
        https = {
            "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
            "hosts": [args.public_host],
            "tls": {"mode": "SIMPLE", "credentialName": args.tls_credential_name},
        }
        return [http, https]

    def _deployment(
        self, name: str, subset: str, version: str, args: CanaryAppArgs, opts: pulumi.ResourceOptions
    ) -> k8s.apps.v1.Deployment:
        selector = {"app": args.name, SUBSET_LABEL: subset}
        shape = args.app_shape
        # `version` feeds Istio's destination_version metric label; it is not in the selector, so a tag
        # bump stays an in-place rolling update of this one Deployment.
        pod_labels = {**selector, "version": version}
        container: dict = {"name": args.name, "image": f"{args.image}:{version}", "imagePullPolicy": "Always"}
        if shape.command:
            container["command"] = list(shape.command)
        if shape.args:
            container["args"] = list(shape.args)
        if shape.env:
            container["env"] = [{"name": key, "value": value} for key, value in shape.env]
        container["ports"] = [{"name": shape.port_name, "containerPort": shape.port, "protocol": "TCP"}]
        for probe, path in (("livenessProbe", shape.liveness_path), ("readinessProbe", shape.readiness_path)):
            if path:
                container[probe] = {"httpGet": {"path": path, "port": shape.port_name}, "initialDelaySeconds": 1}
        container["resources"] = {
            "requests": {"cpu": shape.cpu_request, "memory": shape.memory_request},
            "limits": {"cpu": shape.cpu_limit, "memory": shape.memory_limit},
        }
        container["securityContext"] = restricted_container_security_context(shape.user)
        volumes = shape.volumes
        if volumes:
            container["volumeMounts"] = [{"name": volume, "mountPath": path} for volume, path in volumes.items()]
        pod_spec: dict = {
            "automountServiceAccountToken": False,
            "securityContext": restricted_pod_security_context(fs_group=shape.user if volumes else None),
            "containers": [container],
        }
        if volumes:
            pod_spec["volumes"] = [{"name": volume, "emptyDir": {}} for volume in volumes]
        spec: dict = {
            "replicas": args.replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        }
        if subset == BASELINE:
            # Fresh pods with every canary version: a new canaryVersion restarts the baseline too, so both start
            # cold together and warm up under the same share of traffic.
            spec["template"]["metadata"]["annotations"] = {FRESH_FOR: args.canary_version}
        if shape.max_replicas:
            # The autoscaler owns the count: a `replicas` here would be reset by every `pulumi up`.
            del spec["replicas"]
        return k8s.apps.v1.Deployment(
            name, metadata=self._meta(name, args, {SUBSET_LABEL: subset}), spec=spec, opts=opts
        )

    def _autoscaler(
        self,
        name: str,
        subset: str,
        deployment: k8s.apps.v1.Deployment,
        args: CanaryAppArgs,
        opts: pulumi.ResourceOptions,
    ) -> k8s.autoscaling.v2.HorizontalPodAutoscaler:
        """Scales one Deployment between `replicas` and max_replicas on CPU; GA and canary scale apart, so the
        canary's share of traffic decides its own size.

        After a rollback GA's minimum is the pods GA and the canary ran (ga_rollback_replicas, written in the
        rollback commit): GA was scaled for its share only, and the whole traffic arrives at once, faster than
        CPU-based scaling reacts. The autoscaler brings GA up to a raised minimum at its next sync, without the
        stabilisation window it applies to CPU-driven changes."""
        minimum = args.replicas
        if subset == "ga" and args.ga_rollback_replicas:
            minimum = min(max(args.replicas, args.ga_rollback_replicas), args.app_shape.max_replicas)
        return k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-autoscaler",
            metadata=self._meta(name, args, {SUBSET_LABEL: subset}),
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": minimum,
                "maxReplicas": args.app_shape.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": args.app_shape.target_cpu_percent},
                        },
                    }
                ],
            },
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[deployment])),
        )
