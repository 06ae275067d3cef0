"""Names, paths and the error every module of the control plane shares."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLCHAIN_CACHE = Path(os.environ.get("ISTIO_CANARY_TOOLCHAIN", Path.home() / ".cache/istio-canary/toolchain"))
# Minimal Istio CRDs (v1, free-form spec) for an API server without Istio: the engine tests and `make up STACK=local`.
ISTIO_CRDS = REPO / "toolchain" / "istio_crds.yaml"

CONTEXT_NAME = "istio-canary-local"  # kubeconfig cluster and context
USER_NAME = "istio-canary-admin"  # the admin client certificate's CN
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service, a SAN of the serving cert


class ControlPlaneError(RuntimeError):
    """Starting or talking to the local control plane failed; the message says why (with a log tail)."""
