# istio-canary — two set-up commands: `make up` (deploy a stack) and `make test` (everything CI runs).
SHELL := /bin/bash
.DEFAULT_GOAL := help
# Empty: scripts/up.sh picks dev with Google credentials, else local.
STACK ?=
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLCHAIN_DIR ?= $(or $(ISTIO_CANARY_TOOLCHAIN),$(HOME)/.cache/istio-canary/toolchain)
export ISTIO_CANARY_TOOLCHAIN := $(TOOLCHAIN_DIR)

.PHONY: help venv lock up test unit integration engine lint toolchain checkov-venv integration-deps bench local-cluster manifests

help:
	@echo "make up [STACK=dev|local]  deploy (dev: GKE, needs pulumi + Google credentials; local: no cloud;"
	@echo "                            no STACK: dev with Google credentials, else local)"
	@echo "make test                  lint, unit, integration and engine tests (what CI runs)"
	@echo "make bench                 print benchmark numbers"
	@echo "make toolchain             build pulumi, plugins, kube-apiserver, etcd from Go modules (cached)"

# The venv is rebuilt only when a lock file or pyproject changes. Every package comes from the hash-checked
# lock (scripts/lock.sh writes it from requirements*.txt); the project itself adds no dependency of its own.
$(VENV)/.stamp: requirements-dev.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# --no-deps: the lock already lists every package; and pip < 24 (a new venv's) refuses githubkit's
	# hishel[async,httpx] extra in hash mode (pypa/pip#9644). pip check proves nothing is missing.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements-dev.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	$(PY) -m pip check
	touch $@

venv: $(VENV)/.stamp

# UP_ARGS goes to `pulumi up`, e.g. make up STACK=local UP_ARGS=--yes. The local stack builds the toolchain itself.
up: venv
	@scripts/up.sh "$(STACK)" $(UP_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/shellcheck scripts/*.sh toolchain/*.sh .ci/run

# Re-pin every package (with hashes) after editing requirements*.txt or pyproject's dependencies.
lock:
	scripts/lock.sh

checkov-venv:
	PYTHON=$(PYTHON) scripts/install-checkov.sh

# The Kubernetes objects of a mock run as YAML, e.g. for `checkov -d build/manifests`.
manifests: venv
	$(PY) scripts/dump_manifests.py build/manifests

integration-deps:
	scripts/install-integration-deps.sh

toolchain:
	toolchain/build.sh

unit: venv checkov-venv
	$(PY) -m pytest tests/unit

integration: venv integration-deps
	$(PY) -m pytest tests/integration

engine: venv toolchain
	. "$(TOOLCHAIN_DIR)/env.sh" && $(PY) -m pytest tests/engine

# One pytest run over every suite so the closing line counts them all.
test: venv lint checkov-venv integration-deps toolchain
	. "$(TOOLCHAIN_DIR)/env.sh" && $(PY) -m pytest tests --durations=15

local-cluster: venv toolchain
	. "$(TOOLCHAIN_DIR)/env.sh" && $(PY) -m toolchain.controlplane up --dir "$(TOOLCHAIN_DIR)/../local-cluster" --crds toolchain/istio_crds.yaml

bench: venv integration-deps toolchain
	. "$(TOOLCHAIN_DIR)/env.sh" && for b in bench/bench_*.py; do echo "== $$b"; $(PY) "$$b" || exit 1; done
