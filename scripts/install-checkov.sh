#!/usr/bin/env bash
# Installs checkov into its own virtualenv, .checkov-venv/ at the repo root.
# Checkov pins many libraries (boto3, packaging, pydantic...) that conflict with Pulumi's, so it never
# shares .venv. Idempotent: when the pinned version is already there it returns at once.
set -euo pipefail

CHECKOV_VERSION="3.3.30"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHECKOV_VENV:-$ROOT/.checkov-venv}"
PYTHON="${PYTHON:-python3}"

# `checkov --version` takes seconds (it imports every check); the dist-info directory answers instantly.
if compgen -G "$VENV/lib/python3*/site-packages/checkov-${CHECKOV_VERSION}.dist-info" >/dev/null \
  && [ -x "$VENV/bin/checkov" ]; then
  echo "checkov ${CHECKOV_VERSION}: present in ${VENV#"$ROOT"/}"
  exit 0
fi

echo "checkov ${CHECKOV_VERSION}: installing into ${VENV#"$ROOT"/}"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==${CHECKOV_VERSION}"
"$VENV/bin/checkov" --version
