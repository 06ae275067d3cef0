#!/usr/bin/env bash
# `make up STACK=local` (and a plain `make up` without Google credentials): deploy the `local` stack
# (Pulumi.local.yaml: existing cluster, no Istio install, skipAwait) without any cloud account.
#
#   1. Pulumi CLI, plugins, kube-apiserver, etcd: toolchain/build.sh (reuses its cache; a cold build takes
#      ~20 min), then Pulumi from PATH, else the toolchain's env.sh.
#   2. Cluster: the current kube context if it answers (KUBECONFIG or ~/.kube/config). Otherwise the local
#      control plane (etcd + kube-apiserver, no kubelet) in $LOCAL_DIR: reused when it already runs (also one
#      started by `make local-cluster`), else started in the background with the minimal Istio CRDs.
#      It keeps running after this script; stop it with `kill $(cat $LOCAL_DIR/controlplane.pid)`.
#   3. State: a file backend in $LOCAL_DIR/state unless PULUMI_BACKEND_URL is set; the passphrase comes from
#      PULUMI_CONFIG_PASSPHRASE(_FILE), else, for that local state only, an empty one (the stack has no secrets).
#   4. Stack config: $LOCAL_DIR/stack/Pulumi.local.yaml, made on every run from the tracked Pulumi.local.yaml
#      plus the kubeconfig path and context of the cluster from step 2 (and the stack's encryptionsalt, kept
#      from the previous run). Every pulumi command gets it with --config-file, so the tracked file is never
#      written (`pulumi stack init` would add an encryptionsalt to it and rewrite its values). The stack is
#      created with `pulumi stack init` in $LOCAL_DIR/stack (a copy of Pulumi.yaml), for the same reason.
#      The kubeconfig is passed explicitly because the program, given an empty `kubeconfig`, does not make
#      the Kubernetes provider fall back to $KUBECONFIG (see docs/engine-tests.md, "make up STACK=local").
#   5. `pulumi refresh --run-program`: a restarted local control plane starts from an empty etcd with new
#      certificates and port, so the state must forget what is gone; --run-program makes the refresh use
#      the provider config the program computes now (plain refresh uses the stale kubeconfig in the state
#      and fails with "unreachable cluster"). Then `pulumi up --stack local` with this script's arguments.
#
# Env: ISTIO_CANARY_TOOLCHAIN (toolchain cache), ISTIO_CANARY_LOCAL_DIR (control plane, state, stack config),
#      PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE.
set -euo pipefail
cd "$(dirname "$0")/.."

STACK=local
CACHE="${ISTIO_CANARY_TOOLCHAIN:-$HOME/.cache/istio-canary/toolchain}"
# The same directory `make local-cluster` uses, so either can start the control plane the other reuses.
LOCAL_DIR="${ISTIO_CANARY_LOCAL_DIR:-$(dirname "$CACHE")/local-cluster}"
STACK_DIR="$LOCAL_DIR/stack"
STACK_CONFIG="$STACK_DIR/Pulumi.$STACK.yaml"
PY="${PYTHON:-.venv/bin/python}"
CRDS=toolchain/istio_crds.yaml
START_TIMEOUT=180  # seconds for the control plane to answer

fail() { printf 'make up STACK=local: %s\n' "$*" >&2; exit 1; }
say() { printf 'make up STACK=local: %s\n' "$*" >&2; }

# kube_ok: does the ambient kubeconfig (KUBECONFIG or ~/.kube/config) reach a ready API server? (needs kubectl)
kube_ok() {
    command -v kubectl >/dev/null 2>&1 || return 1
    kubectl config current-context >/dev/null 2>&1 && kubectl get --raw=/readyz --request-timeout=5s >/dev/null 2>&1
}
# plane_ok: does our local control plane answer with the kubeconfig it wrote? (no kubectl needed)
plane_ok() { "$PY" -m toolchain.controlplane ready --kubeconfig "$LOCAL_DIR/kubeconfig"; }

# --- 1. tools ----------------------------------------------------------------------------------
[ -x "$PY" ] || fail "no $PY: run make venv"
ISTIO_CANARY_TOOLCHAIN="$CACHE" toolchain/build.sh >/dev/null || fail "toolchain/build.sh failed (see above)"
if ! command -v pulumi >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    . "$CACHE/env.sh"
fi
export PULUMI_SKIP_UPDATE_CHECK=true

# --- 2. cluster: KCFG (one kubeconfig file) and KCTX (its context) ----------------------------
mkdir -p "$LOCAL_DIR"
if kube_ok; then
    KCTX="$(kubectl config current-context)"
    say "using kube context $KCTX"
    kubectl get crd virtualservices.networking.istio.io >/dev/null 2>&1 \
        || fail "the cluster has no Istio CRDs; install Istio first (the local stack sets installMesh: false)"
    case "${KUBECONFIG:-}" in
        "") KCFG="$HOME/.kube/config" ;;
        *:*)  # several files: the provider takes one, so flatten the context in use into one (0600)
            KCFG="$LOCAL_DIR/current-context.kubeconfig"
            (umask 077 && kubectl config view --flatten --minify >"$KCFG") ;;
        *) KCFG="$KUBECONFIG" ;;
    esac
elif plane_ok; then
    KCFG="$LOCAL_DIR/kubeconfig"
    say "using the running local control plane ($KCFG)"
else
    say "no reachable cluster: starting the local control plane in $LOCAL_DIR"
    rm -f "$LOCAL_DIR/controlplane.log"
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
    KCFG="$LOCAL_DIR/kubeconfig"
    say "local control plane up (pid $(cat "$LOCAL_DIR/controlplane.pid")); stop it with: kill $(cat "$LOCAL_DIR/controlplane.pid")"
fi
KCFG="$(realpath "$KCFG")"
KCTX="${KCTX:-}"  # empty for the local control plane: its kubeconfig's current context

# --- 3. state ----------------------------------------------------------------------------------
if [ -z "${PULUMI_BACKEND_URL:-}" ]; then
    mkdir -p "$LOCAL_DIR/state"
    export PULUMI_BACKEND_URL="file://$LOCAL_DIR/state"
    # This machine's own state of a stack that holds no secrets: without a passphrase of the user's, an empty one
    # (pulumi cannot ask: every command here runs --non-interactive, and would stop with "passphrase must be set").
    if [ -z "${PULUMI_CONFIG_PASSPHRASE+set}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
        export PULUMI_CONFIG_PASSPHRASE=""
        say "no PULUMI_CONFIG_PASSPHRASE: the local state in $LOCAL_DIR/state uses an empty one"
    fi
fi

# --- 4. stack and its config, outside the repository -------------------------------------------
mkdir -p "$STACK_DIR"
if ! pulumi stack select "$STACK" --non-interactive >/dev/null 2>&1; then
    # `stack init` writes the new stack's encryptionsalt into Pulumi.<stack>.yaml next to Pulumi.yaml:
    # here that is $STACK_CONFIG, not the tracked file.
    cp Pulumi.yaml "$STACK_DIR/Pulumi.yaml"
    (cd "$STACK_DIR" && pulumi stack init "$STACK" --non-interactive)
fi
salt="$(grep -m1 '^encryptionsalt:' "$STACK_CONFIG" 2>/dev/null || true)"
{ grep -v '^encryptionsalt:' "Pulumi.$STACK.yaml"; [ -z "$salt" ] || printf '%s\n' "$salt"; } >"$STACK_CONFIG.tmp"
mv "$STACK_CONFIG.tmp" "$STACK_CONFIG"
pulumi config set-all --stack "$STACK" --config-file "$STACK_CONFIG" --non-interactive \
    --plaintext "kubeconfig=$KCFG" --plaintext "kubeContext=$KCTX"
say "stack config: $STACK_CONFIG (Pulumi.$STACK.yaml + kubeconfig $KCFG${KCTX:+, context $KCTX})"
say "other pulumi commands on this stack: PULUMI_BACKEND_URL=$PULUMI_BACKEND_URL pulumi <command> --stack $STACK --config-file $STACK_CONFIG"

# --- 5. refresh, then up -------------------------------------------------------------------------
pulumi refresh --stack "$STACK" --config-file "$STACK_CONFIG" --run-program --yes --skip-preview
exec pulumi up --stack "$STACK" --config-file "$STACK_CONFIG" "$@"
