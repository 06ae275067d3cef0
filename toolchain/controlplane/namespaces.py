"""The one step of the namespace controller a bare API server needs: finalizing deleted namespaces.

Without a controller-manager a deleted Namespace stays Terminating forever, its `kubernetes` finalizer never
removed. `finalize_terminating_namespaces` removes it (PUT .../finalize); `NamespaceFinalizer` does so every
second in a daemon thread. Nothing checks that the namespace is empty: the objects in it stay in etcd.
"""

from __future__ import annotations

import ssl
import threading

from .kubeapi import KubeClient


def finalize_terminating_namespaces(client: KubeClient) -> list[str]:
    """Remove the `kubernetes` finalizer of every Terminating namespace; returns the names finalized."""
    status, body = client.request("GET", "/api/v1/namespaces", timeout=5)
    done: list[str] = []
    if status != 200:
        return done
    for ns in body.get("items", []):
        if ns.get("status", {}).get("phase") != "Terminating" or not ns.get("spec", {}).get("finalizers"):
            continue
        ns["spec"]["finalizers"] = []
        name = ns["metadata"]["name"]
        status, _ = client.request("PUT", f"/api/v1/namespaces/{name}/finalize", ns, timeout=5)
        if status == 200:
            done.append(name)
    return done


class NamespaceFinalizer:
    """A daemon thread finalizing Terminating namespaces every `interval` s until stop()."""

    def __init__(self, client: KubeClient, interval: float = 1.0) -> None:
        self.client = client
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ns-finalizer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                finalize_terminating_namespaces(self.client)
            except (OSError, ValueError, ssl.SSLError):
                continue  # the server may be restarting; try again next tick
