"""A throwaway Kubernetes control plane on 127.0.0.1: etcd + kube-apiserver, nothing else.

    with LocalControlPlane(workdir) as plane:
        plane.kubeconfig_path   # kubeconfig, context "istio-canary-local", admin client cert
        plane.server            # https://127.0.0.1:<port>
        plane.apply_crds(ISTIO_CRDS)

One job per module:

- common.py: names, paths (REPO, ISTIO_CRDS, the toolchain cache) and ControlPlaneError
- pki.py: CA, serving cert, admin client cert, service-account keys (the `cryptography` library)
- process.py: finding the binaries, free ports, starting / waiting for / stopping a server process, logs
- kubeapi.py: KubeClient, HTTPS + client certificate, JSON in and out (also from any kubeconfig)
- kubeconfig.py: writing our kubeconfig, reading credentials from one
- crds.py: applying CRDs and waiting until they are Established
- namespaces.py: finalizing Terminating namespaces (no namespace controller here)
- plane.py: LocalControlPlane, which puts them together
- __main__.py: `python -m toolchain.controlplane up --dir DIR [--crds FILE]` and `ready --kubeconfig FILE`

There is no controller-manager, scheduler or kubelet: Pods never run, Deployments never become ready, and
nothing garbage-collects. A deleted Namespace would stay Terminating forever, so by default a thread plays the
namespace controller's last step (see namespaces.py).

Binaries: $ISTIO_CANARY_ETCD / $ISTIO_CANARY_KUBE_APISERVER, else the newest
<toolchain cache>/<name>-v*/<name> built by toolchain/build.sh, else PATH.
"""

from .common import CONTEXT_NAME, ISTIO_CRDS, REPO, TOOLCHAIN_CACHE, USER_NAME, ControlPlaneError
from .crds import apply_crds, load_documents
from .kubeapi import KubeClient
from .kubeconfig import Credentials, read_credentials, write_kubeconfig
from .pki import Pki, make_pki
from .plane import LocalControlPlane
from .process import find_binary, free_port

__all__ = [
    "CONTEXT_NAME",
    "ISTIO_CRDS",
    "REPO",
    "TOOLCHAIN_CACHE",
    "USER_NAME",
    "ControlPlaneError",
    "Credentials",
    "KubeClient",
    "LocalControlPlane",
    "Pki",
    "apply_crds",
    "find_binary",
    "free_port",
    "load_documents",
    "make_pki",
    "read_credentials",
    "write_kubeconfig",
]
