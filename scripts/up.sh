#!/usr/bin/env bash
# `make up [STACK=<stack>]`: check what the stack needs, then `pulumi up`. Stops early with what to install or set.
# Without STACK: the dev stack (GKE) when Google credentials are there, else the no-cloud local stack.
set -euo pipefail
cd "$(dirname "$0")/.."
stack="${1:-}"
shift || true  # the rest goes to `pulumi up`

fail() { printf 'make up: %s\n' "$*" >&2; exit 1; }

# Google credentials: a key file, key JSON, or gcloud's application default credentials.
adc="${CLOUDSDK_CONFIG:-$HOME/.config/gcloud}/application_default_credentials.json"
has_google_credentials() {
  [ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ] || [ -n "${GOOGLE_CREDENTIALS:-}" ] || [ -f "$adc" ]
}

if [ -z "$stack" ]; then
  if has_google_credentials; then
    stack=dev
  else
    printf 'make up: %s\n' >&2 \
      "no Google credentials (gcloud application default credentials, GOOGLE_APPLICATION_CREDENTIALS): deploying" \
      "the no-cloud local stack, as 'make up STACK=local' does. For GKE: 'gcloud auth application-default login'," \
      "then 'make up STACK=dev'."
    stack=local
  fi
fi

if [ "$stack" = "local" ]; then
  exec scripts/up-local.sh "$@"
fi

command -v pulumi >/dev/null 2>&1 || fail "no Pulumi CLI on PATH. Install it (https://www.pulumi.com/docs/install/) \
or build it from Go modules with 'make toolchain' and '. ~/.cache/istio-canary/toolchain/env.sh'."

if [ ! -f "Pulumi.$stack.yaml" ]; then
  stacks=""; for f in Pulumi.*.yaml; do f="${f#Pulumi.}"; stacks+="${f%.yaml} "; done
  fail "no Pulumi.$stack.yaml; stacks in this repo: $stacks"
fi

if grep -q 'clusterMode: existing' "Pulumi.$stack.yaml"; then
  exec pulumi up --stack "$stack" "$@"
fi

# GKE stacks: Google credentials, the kubeconfig auth plugin, and a real project id.
if ! has_google_credentials; then
  fail "no Google credentials. Run 'gcloud auth application-default login', or set GOOGLE_APPLICATION_CREDENTIALS \
to a service-account key file (CI uses workload identity federation)."
fi
command -v gke-gcloud-auth-plugin >/dev/null 2>&1 || fail "gke-gcloud-auth-plugin not on PATH; the kubeconfig \
this stack builds uses it. Run 'gcloud components install gke-gcloud-auth-plugin'."
if grep -q 'gcp:project: change-me' "Pulumi.$stack.yaml"; then
  fail "gcp:project in Pulumi.$stack.yaml is still the placeholder. Run 'pulumi config set gcp:project <your-project-id> --stack $stack'."
fi
exec pulumi up --stack "$stack" "$@"
