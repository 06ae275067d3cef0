#!/usr/bin/env bash
# `make up STACK=local`: deploy the `local` stack (Pulumi.local.yaml: existing cluster, no Istio install,
# skipAwait) without any cloud account.
#
#   1. Pulumi CLI and plugins: from PATH, else the `make toolchain` cache (its env.sh).
#   2. Cluster: the current kube context if it answers (KUBECONFIG or ~/.kube/config). Otherwise the local
#      control plane (etcd + kube-apiserver, no kubelet) in $LOCAL_DIR: reused when it already runs (also one
#      started by `make local-cluster`), else started in the background with the minimal Istio CRDs.
#      It keeps running after this script; stop it with `kill $(cat $LOCAL_DIR/controlplane.pid)`.
#   3. State: a file backend in $LOCAL_DIR/state unless PULUMI_BACKEND_URL is set. The passphrase comes
#      from PULUMI_CONFIG_PASSPHRASE (pulumi asks when it is unset); `pulumi stack init` writes an
#      encryptionsalt into Pulumi.local.yaml the first time.
#   4. `pulumi refresh --run-program`: a restarted local control plane starts from an empty etcd with new
#      certificates and port, so the state must forget what is gone; --run-program makes the refresh use
#      the provider config the program computes now (plain refresh uses the stale kubeconfig in the state
#      and fails with "unreachable cluster"). Then `pulumi up --stack local` with this script's arguments.
#
# Env: ISTIO_CANARY_TOOLCHAIN (toolchain cache), ISTIO_CANARY_LOCAL_DIR (control plane + state),
#      PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE.
set -euo pipefail
cd "$(dirname "$0")/.."

STACK=local
CACHE="${ISTIO_CANARY_TOOLCHAIN:-$HOME/.cache/istio-canary/toolchain}"
# The same directory `make local-cluster` uses, so either can start the control plane the other reuses.
LOCAL_DIR="${ISTIO_CANARY_LOCAL_DIR:-$(dirname "$CACHE")/local-cluster}"
PY="${PYTHON:-.venv/bin/python}"
CRDS=tests/engine/istio_crds.yaml
START_TIMEOUT=180  # seconds for the control plane to answer

fail() { printf 'make up STACK=local: %s\n' "$*" >&2; exit 1; }
say() { printf 'make up STACK=local: %s\n' "$*" >&2; }

# kube_ok [kubeconfig]: does that kubeconfig (default: the ambient one) reach a ready API server?
kube_ok() {
    command -v kubectl >/dev/null 2>&1 || return 1
    if [ -n "${1:-}" ]; then
        KUBECONFIG="$1" kubectl get --raw=/readyz --request-timeout=5s >/dev/null 2>&1
    else
        kubectl config current-context >/dev/null 2>&1 && kubectl get --raw=/readyz --request-timeout=5s >/dev/null 2>&1
    fi
}

# --- 1. tools ----------------------------------------------------------------------------------
if ! command -v pulumi >/dev/null 2>&1; then
    [ -f "$CACHE/env.sh" ] || fail "no Pulumi CLI on PATH and no $CACHE/env.sh: run make toolchain"
    # shellcheck disable=SC1091
    . "$CACHE/env.sh"
fi
export PULUMI_SKIP_UPDATE_CHECK=true
[ -x "$PY" ] || fail "no $PY: run make venv"

# --- 2. cluster --------------------------------------------------------------------------------
if kube_ok; then
    say "using kube context $(kubectl config current-context)"
    kubectl get crd virtualservices.networking.istio.io >/dev/null 2>&1 \
        || fail "the cluster has no Istio CRDs; install Istio first (the local stack sets installMesh: false)"
elif kube_ok "$LOCAL_DIR/kubeconfig"; then
    export KUBECONFIG="$LOCAL_DIR/kubeconfig"
    say "using the running local control plane ($KUBECONFIG)"
else
    mkdir -p "$LOCAL_DIR"
    say "no reachable cluster: starting the local control plane in $LOCAL_DIR"
    # setsid + nohup: the control plane outlives this script (and a Ctrl-C of `pulumi up`).
    setsid nohup "$PY" -m toolchain.controlplane up --dir "$LOCAL_DIR" --crds "$CRDS" \
        >"$LOCAL_DIR/controlplane.log" 2>&1 </dev/null &
    echo $! >"$LOCAL_DIR/controlplane.pid"
    for _ in $(seq "$START_TIMEOUT"); do
        grep -q '^export KUBECONFIG=' "$LOCAL_DIR/controlplane.log" 2>/dev/null && break
        kill -0 "$(cat "$LOCAL_DIR/controlplane.pid")" 2>/dev/null \
            || fail "the control plane exited: $(tail -n 20 "$LOCAL_DIR/controlplane.log")"
        sleep 1
    done
    grep -q '^export KUBECONFIG=' "$LOCAL_DIR/controlplane.log" \
        || fail "the control plane did not come up in ${START_TIMEOUT}s: $(tail -n 20 "$LOCAL_DIR/controlplane.log")"
    export KUBECONFIG="$LOCAL_DIR/kubeconfig"
    say "local control plane up (pid $(cat "$LOCAL_DIR/controlplane.pid")); stop it with: kill $(cat "$LOCAL_DIR/controlplane.pid")"
fi

# --- 3. state ----------------------------------------------------------------------------------
if [ -z "${PULUMI_BACKEND_URL:-}" ]; then
    mkdir -p "$LOCAL_DIR/state"
    export PULUMI_BACKEND_URL="file://$LOCAL_DIR/state"
fi
pulumi stack select --create "$STACK" >/dev/null

# --- 4. refresh, then up -------------------------------------------------------------------------
pulumi refresh --stack "$STACK" --run-program --yes --skip-preview
exec pulumi up --stack "$STACK" "$@"
