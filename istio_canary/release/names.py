"""Names and primitive value rules shared by the components, istio_canary/release/settings.py and the release tools.

Components never import stacks/, so the rules both need live here (stacks may import components).
"""

from __future__ import annotations

import re

# A Kubernetes name that is also safe to paste inside a PromQL string: a DNS label (RFC 1123).
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# A Prometheus range duration for rate()/increase() windows. No `ms`: a window shorter than a scrape
# interval holds no two samples, so rate() over it is always empty.
DURATION = re.compile(r"[1-9][0-9]*(s|m|h|d)")
SUBSETS = ("ga", "canary")
# Namespaces the platform owns: the app's namespace must be none of these (one Namespace object per name).
ISTIO_NAMESPACE = "istio-system"
MONITORING_NAMESPACE = "monitoring"
KUBERNETES_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


def workload(app: str, subset: str) -> str:
    """The Deployment (and Istio `destination_workload`) name of one subset, e.g. `podinfo-canary`."""
    return f"{app}-{subset}"


def traffic_split(canary_weight: int) -> dict[str, int]:
    """Percent of traffic per subset: the canary gets its weight, GA the rest, e.g. 10 -> {"ga": 90, "canary": 10}."""
    if not 0 <= canary_weight <= 100:
        # A VirtualService with a negative route weight would only be refused by Istio, at `pulumi up`.
        raise ValueError(f"canary weight {canary_weight} is not a percentage from 0 to 100")
    return {"ga": 100 - canary_weight, "canary": canary_weight}


def duration_seconds(duration: str) -> int:
    """`30s`, `5m`, `1h`, `1d` (a DURATION) in seconds."""
    if not DURATION.fullmatch(duration):
        raise ValueError(f"{duration!r} is not a duration such as 30s, 5m or 1h")
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[duration[-1]]


# The release agent's own series (istio_canary/agent/metrics.py exports them; the dashboard and `canary status` read them).
AGENT_VERDICT = "canary_agent_verdict"
AGENT_DECISIONS = "canary_agent_decisions"
AGENT_WEIGHT = "canary_agent_weight"
AGENT_DRIFT = "canary_agent_drift"
AGENT_SHAPE = "canary_agent_shape"  # 1 for the shape the live VirtualService has: weights, mirror or header
# The statistical judge's numbers of the newest look, by check and quantity (istio_canary/release/statistical.py):
# the error test's log-likelihood ratio and its boundaries, the share of slower pairs, the traffic share.
AGENT_EVIDENCE = "canary_agent_evidence"
AGENT_LAST_ITERATION = "canary_agent_last_iteration_timestamp_seconds"
AGENT_NAME = "canary-agent"


def agent_lease_name(stack: str) -> str:
    """The Lease `canary agent --stack <stack>` takes (leader election: a second agent waits until it is free)."""
    return f"{AGENT_NAME}-{stack}"
