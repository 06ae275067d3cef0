#!/usr/bin/env bash
# Installs the real servers the integration tests run against: Prometheus + promtool and the CNCF
# distribution registry (Debian: docker-registry; tags are pushed through its HTTP API, so no skopeo),
# and the tests' Node tools (tests/js: @mermaid-js/parser, from its package-lock.json).
# Idempotent: when every binary is already on PATH it returns without touching apt.
set -euo pipefail

# binary -> Debian package that ships it
declare -A PACKAGE_OF=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [docker-registry]=docker-registry
)

# Node tools of the tests (tests/js: @mermaid-js/parser), from the committed package-lock.json.
if [ ! -d "$(dirname "$0")/../tests/js/node_modules/@mermaid-js/parser" ]; then
  command -v npm >/dev/null 2>&1 || { echo "integration deps: npm not found (Node 20+ is needed)" >&2; exit 1; }
  npm ci --prefix "$(dirname "$0")/../tests/js" --no-audit --no-fund --loglevel=error
fi

missing=()
for binary in "${!PACKAGE_OF[@]}"; do
  command -v "$binary" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$binary]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "integration deps: all present"
  exit 0
fi
# De-duplicate (prometheus ships two of the binaries).
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "integration deps: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps it small; policy-rc.d stops Debian from starting the services,
# the tests start their own copies on free ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

for binary in "${!PACKAGE_OF[@]}"; do
  command -v "$binary" >/dev/null 2>&1 || { echo "integration deps: $binary still missing" >&2; exit 1; }
done
echo "integration deps: installed"
