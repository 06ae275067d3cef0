"""One leader among agent replicas: a `coordination.k8s.io/v1` Lease, taken over only once it has expired.

Writes go through the Lease's resourceVersion, so two agents racing for an expired Lease cannot both win: the
API server answers the second with 409 Conflict. A lost or unreadable Lease means "not the leader": the
agent then only serves /healthz and /metrics.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


class Lease:
    """The agent's claim on `name` in `namespace`, held for `duration_s` after each renewal."""

    def __init__(self, api_client: Any, namespace: str, name: str, identity: str, duration_s: int) -> None:
        self.api_client = api_client
        self.namespace, self.name, self.identity, self.duration_s = namespace, name, identity, duration_s

    def acquire(self, now: dt.datetime | None = None) -> bool:
        """Take or renew the Lease; True when this agent holds it afterwards."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        now = now or dt.datetime.now(dt.UTC)
        api = client.CoordinationV1Api(self.api_client)
        spec = client.V1LeaseSpec(
            holder_identity=self.identity, lease_duration_seconds=self.duration_s, renew_time=now, acquire_time=now
        )
        try:
            lease = api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                return False
            body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name), spec=spec)
            try:
                api.create_namespaced_lease(self.namespace, body)
            except ApiException:  # created by another agent a moment ago
                return False
            return True
        current = lease.spec or client.V1LeaseSpec()
        held = current.holder_identity
        renewed = current.renew_time or current.acquire_time
        expired = renewed is None or renewed + dt.timedelta(seconds=current.lease_duration_seconds or 0) < now
        if held not in (self.identity, None) and not expired:
            return False
        if held == self.identity:
            spec.acquire_time = current.acquire_time or now
        lease.spec = spec
        try:
            api.replace_namespaced_lease(self.name, self.namespace, lease)  # carries resourceVersion: 409 on a race
        except ApiException:
            return False
        return True
