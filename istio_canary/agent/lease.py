"""One leader among agent replicas: a `coordination.k8s.io/v1` Lease, taken over only once it has expired.

Writes go through the Lease's resourceVersion, so two agents racing for an expired Lease cannot both win: the
API server answers the second with 409 Conflict. A lost or unreadable Lease means "not the leader": the
agent then only serves /healthz and /metrics.

Every pass starts here, so the Lease must never hold a pass (and with it a rollback): each call to the API has a
request timeout, and when the API hangs or fails, a leader stays the leader until its own Lease would have expired,
since nobody else may take the Lease before then. The time of the last renewal is kept in this process, the one
thing the agent remembers between passes, because the loop makes a new Lease each pass.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

REQUEST_TIMEOUT_S = 5.0
# (namespace, name, identity) -> monotonic time until which this process's last renewal holds the Lease.
_HELD_UNTIL: dict[tuple[str, str, str], float] = {}
_HELD_LOCK = threading.Lock()


class Lease:
    """The agent's claim on `name` in `namespace`, held for `duration_s` after each renewal."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        name: str,
        identity: str,
        duration_s: int,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.api_client = api_client
        self.namespace, self.name, self.identity, self.duration_s = namespace, name, identity, duration_s
        self.request_timeout_s = request_timeout_s

    @property
    def _key(self) -> tuple[str, str, str]:
        return (self.namespace, self.name, self.identity)

    def acquire(self, now: dt.datetime | None = None) -> bool:
        """Take or renew the Lease; True when this agent holds it afterwards, or still holds it from its last
        renewal while the API cannot answer."""
        started = time.monotonic()
        try:
            held = self._acquire(now)
        except Exception:  # noqa: BLE001 - a timeout, a refused connection, a 5xx: the API did not decide
            with _HELD_LOCK:
                return time.monotonic() < _HELD_UNTIL.get(self._key, 0.0)
        with _HELD_LOCK:
            if held:
                _HELD_UNTIL[self._key] = started + self.duration_s
            else:
                _HELD_UNTIL.pop(self._key, None)
        return held

    def _acquire(self, now: dt.datetime | None) -> bool:
        """Take or renew the Lease; False when another agent holds it; raises when the API does not answer."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        timeout = self.request_timeout_s
        now = now or dt.datetime.now(dt.UTC)
        api = client.CoordinationV1Api(self.api_client)
        spec = client.V1LeaseSpec(
            holder_identity=self.identity, lease_duration_seconds=self.duration_s, renew_time=now, acquire_time=now
        )
        try:
            lease = api.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name), spec=spec)
            try:
                api.create_namespaced_lease(self.namespace, body, _request_timeout=timeout)
            except ApiException as exc:
                if exc.status == 409:  # created by another agent a moment ago
                    return False
                raise
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
            # carries resourceVersion: 409 when another agent renewed it first
            api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True
