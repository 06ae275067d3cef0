"""Engine-test fixtures: the real Pulumi CLI against a local kube-apiserver + etcd.

Session fixtures start one LocalControlPlane (toolchain/controlplane/) with the minimal Istio CRDs, and copy the
project into a temporary git repository with a file backend (testkit/engine.py), so every test types the same
commands a user would (`pulumi config set`, `pulumi preview --json`, `pulumi up`, `git revert`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.engine import Kube, Project, cli_env, toolchain
from toolchain.controlplane import ISTIO_CRDS, ControlPlaneError, LocalControlPlane

# --- fixtures ---------------------------------------------------------------------------------------

# test_engine_* modules are one stack's story in file order: after the first failure the shared stack is in
# an unknown state, so later scenarios fail at once, naming it, instead of adding errors of their own.
_FIRST_FAILURE: dict[Path, str] = {}


def _is_scenario(item: pytest.Item) -> bool:
    return item.path.name.startswith("test_engine_")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Remember the first failed scenario of each test_engine_* module."""
    report = yield
    if report.failed and _is_scenario(item):
        _FIRST_FAILURE.setdefault(item.path, item.name)
    return report


@pytest.fixture(autouse=True)
def _scenarios_in_order(request: pytest.FixtureRequest) -> None:
    """Fail (never skip) a scenario whose stack an earlier scenario left broken."""
    first = _FIRST_FAILURE.get(request.node.path)
    if first and _is_scenario(request.node):
        pytest.fail(f"not run: the shared `local` stack is in an unknown state since {first} failed", pytrace=False)


@pytest.fixture(scope="session")
def bins() -> dict[str, Path]:
    """The toolchain binaries; a missing one FAILS the engine tests (never skips)."""
    try:
        return toolchain()
    except ControlPlaneError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One temp dir for the session: control plane, PULUMI_HOME, backend, project copy."""
    return tmp_path_factory.mktemp("engine")


@pytest.fixture(scope="session")
def control_plane(bins: dict[str, Path], work_dir: Path) -> Iterator[LocalControlPlane]:
    """One LocalControlPlane for the session with the Istio CRDs Established; always stopped.

    finalize_namespaces=False: the destroy test looks at what a bare API server does with a deleted namespace.
    """
    with LocalControlPlane(
        work_dir / "controlplane",
        finalize_namespaces=False,
        etcd=str(bins["etcd"]),
        kube_apiserver=str(bins["kube-apiserver"]),
    ) as plane:
        plane.apply_crds(ISTIO_CRDS)
        yield plane


@pytest.fixture(scope="session")
def kube(control_plane: LocalControlPlane) -> Kube:
    """A reader of the session's API server."""
    return Kube(control_plane)


@pytest.fixture(scope="session")
def project(bins: dict[str, Path], work_dir: Path, control_plane: LocalControlPlane) -> Project:
    """The `local` stack in a temporary git repository, pointed at the session's API server."""
    kubeconfig = str(control_plane.kubeconfig_path)
    env = cli_env(bins, work_dir, kubeconfig)
    version = subprocess.run(
        [str(bins["pulumi"]), "version"], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    print(f"engine tests: pulumi {version} ({bins['pulumi']}), python {sys.version.split()[0]}")
    return Project.create(work_dir / "project", env, kubeconfig)


@pytest.fixture
def own_project(bins: dict[str, Path], work_dir: Path, control_plane: LocalControlPlane) -> Callable[[str], Project]:
    """A `local` stack of its own: a project copy in `work_dir/<name>` with its own file backend (the session's
    backend holds the shared `local` stack of test_engine_stack.py), pointed at the session's API server."""

    def make(name: str) -> Project:
        kubeconfig = str(control_plane.kubeconfig_path)
        backend = work_dir / f"{name}-backend"
        backend.mkdir(exist_ok=True)
        env = {**cli_env(bins, work_dir, kubeconfig), "PULUMI_BACKEND_URL": f"file://{backend}"}
        return Project.create(work_dir / name, env, kubeconfig)

    return make
