"""The README's set-up commands in a fresh clone, as a newcomer without a cloud account types them.

The clone holds the working tree as it stands (committed in the clone, so `git status` starts empty). The user
has run `make toolchain` (the cache is shared) and has no cloud account, no kube context, no KUBECONFIG and
no `kubeconfig` in any stack config: HOME is a fresh directory. Then:

1. the engine tests' own set-up (Project.create: copy, `pulumi stack init`, `config set`) on the clone,
2. `make up UP_ARGS=--yes`: without Google credentials it deploys the local stack and says so,
3. `make up STACK=local UP_ARGS=--yes` (the README's no-cloud command): reuses the running control plane,
4. the app is on the API server, `git status --porcelain` of the clone is empty (Pulumi.local.yaml
   byte-identical), and the engine tests' set-up still works, preview included.

Everything is bounded; the control plane `make up` leaves running is stopped at the end, its children too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from testkit.engine import COMMAND_TIMEOUT, NAMESPACE, REPO, Project, cli_env, process_tree
from toolchain.controlplane import TOOLCHAIN_CACHE, KubeClient

GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid"}
GIT.update({"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"})
# Environment a fresh machine does not have: cloud credentials, kube config, Pulumi and our own settings, an
# enclosing make (`make test` runs pytest) and an activated venv.
FOREIGN_ENV = ("PULUMI_", "ISTIO_CANARY_", "GOOGLE_", "CLOUDSDK_", "KUBE", "MAKE", "MFLAGS", "VIRTUAL_ENV")


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout


def clone_working_tree(dest: Path) -> Path:
    """`git clone` of the repository with its working tree as it stands (tracked and new files, deletions)
    committed on top, so the clone starts clean. The repository is only read."""
    git(dest.parent, "clone", "-q", str(REPO), str(dest))
    listed = git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for rel in filter(None, listed):
        src, dst = REPO / rel, dest / rel
        if src.is_symlink() or src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.unlink(missing_ok=True)
            shutil.copy2(src, dst, follow_symlinks=False)
    for rel in filter(None, git(dest, "ls-files", "-z").split("\0")):
        if not (REPO / rel).is_symlink() and not (REPO / rel).exists():  # deleted or moved in the working tree
            (dest / rel).unlink()
    git(dest, "add", "-A")
    if git(dest, "status", "--porcelain"):
        git(dest, "commit", "-q", "-m", "the working tree under test")
    return dest


def share_venv(clone: Path) -> None:
    """A `.venv` in the clone that sees the repository venv's packages (a .pth line), stamped as up to date, so
    `make up` neither runs pip nor touches the repository's venv (an editable install of the clone there would
    redirect the repository's own)."""
    venv = clone / ".venv"
    base_python = getattr(sys, "_base_executable", sys.executable)  # the interpreter this venv was made from
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "istio_canary_repo_venv.pth").write_text("".join(f"{p}\n" for p in paths))
    (venv / ".stamp").touch()  # newer than the clone's requirements files: make's venv target is satisfied


def newcomer_env(home: Path, local_dir: Path) -> dict[str, str]:
    """A user after `make toolchain` with no cloud account and no kube context."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and not p.startswith((str(TOOLCHAIN_CACHE), str(REPO)))
    )
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    # Not the user's: the toolchain cache lives under the real HOME; the control plane and state go to a
    # directory of this test instead of ~/.cache/istio-canary/local-cluster.
    env["ISTIO_CANARY_TOOLCHAIN"] = str(TOOLCHAIN_CACHE)
    env["ISTIO_CANARY_LOCAL_DIR"] = str(local_dir)
    # No PULUMI_CONFIG_PASSPHRASE: the README's `make up STACK=local UP_ARGS=--yes` is typed without one.
    env.pop("PULUMI_CONFIG_PASSPHRASE", None)
    env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
    go = shutil.which("go")
    if go:  # a stale toolchain would rebuild with the real Go caches, never into the empty HOME
        names = ("GOCACHE", "GOMODCACHE", "GOPATH")
        values = subprocess.run([go, "env", *names], capture_output=True, text=True, timeout=60, check=True)
        env.update(zip(names, values.stdout.splitlines(), strict=True))
    return env


def make(clone: Path, env: dict[str, str], *args: str) -> str:
    """`make <args>` in the clone, bounded; returns its output, fails with it on a non-zero exit."""
    proc = subprocess.Popen(
        ["make", *args],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        for pid in process_tree(proc.pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        raise AssertionError(f"make {' '.join(args)} still running after {COMMAND_TIMEOUT}s:\n{out[-6000:]}") from None
    assert proc.returncode == 0, f"make {' '.join(args)} exited {proc.returncode}:\n{out[-8000:]}"
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_control_plane(local_dir: Path, timeout: float = 30) -> None:
    """SIGTERM the control plane `make up` left running (it stops etcd and kube-apiserver), bounded; then
    SIGKILL whatever of its tree is left."""
    pid_file = local_dir / "controlplane.pid"
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text())
    tree = process_tree(pid) if alive(pid) else []
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in tree if alive(p)]
    for p in left:
        with suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    assert not left, f"control plane processes {left} ignored SIGTERM for {timeout}s"


def kube_get(kubeconfig: Path, path: str) -> dict | None:
    """GET with the kubeconfig's cluster and client certificate; None on 404."""
    status, body = KubeClient.from_kubeconfig(kubeconfig).request("GET", path)
    assert status in (200, 404), f"GET {path}: {status} {body}"
    return body if status == 200 else None


def engine_setup(bins: dict[str, Path], home: Path, clone: Path, kubeconfig: Path | None) -> Project:
    """What the engine tests' `project` fixture does, from the clone: copy, `stack init`, `config set kubeconfig`."""
    path = str(kubeconfig or home / "no-cluster-yet")
    return Project.create(home / "project", cli_env(bins, home, path), path, source=clone)


@pytest.fixture
def local_dir(tmp_path: Path) -> Iterator[Path]:
    """Where `make up` keeps the control plane and state; the control plane is stopped afterwards."""
    path = tmp_path / "local-cluster"
    yield path
    stop_control_plane(path)


def test_readme_commands_in_a_fresh_clone(bins: dict[str, Path], tmp_path: Path, local_dir: Path) -> None:
    clone = clone_working_tree(tmp_path / "istio-canary")
    share_venv(clone)
    tracked_stack_file = (clone / "Pulumi.local.yaml").read_bytes()
    env = newcomer_env(tmp_path / "home", local_dir)

    # The engine tests' set-up before `make up` (one order) ...
    engine_setup(bins, tmp_path / "engine-before", clone, kubeconfig=None)

    # ... a newcomer's plain `make up`: no Google credentials, so the local stack, saying so and how to reach GKE.
    out = make(clone, env, "up", "UP_ARGS=--yes")
    assert "no Google credentials" in out and "make up STACK=dev" in out, out[-4000:]
    assert "starting the local control plane" in out, out[-4000:]
    kubeconfig = local_dir / "kubeconfig"
    assert kubeconfig.is_file()

    # The README's no-cloud command on top: the same control plane and stack, nothing to change.
    out = make(clone, env, "up", "STACK=local", "UP_ARGS=--yes")
    assert "using the running local control plane" in out, out[-4000:]

    # The app is live on the API server.
    deployments = {"podinfo-ga", "podinfo-canary", "podinfo-load"}
    for name in deployments:
        assert kube_get(kubeconfig, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}"), name
    vs = kube_get(kubeconfig, f"/apis/networking.istio.io/v1/namespaces/{NAMESPACE}/virtualservices/podinfo")
    assert vs is not None, "VirtualService podinfo missing"
    route = vs["spec"]["http"][0]["route"]
    assert {r["destination"]["subset"]: r.get("weight", 0) for r in route} == {"ga": 100, "canary": 0}

    # The repository is untouched by the main job.
    assert git(clone, "status", "--porcelain") == ""
    assert (clone / "Pulumi.local.yaml").read_bytes() == tracked_stack_file

    # ... and the engine tests' set-up after `make up` (the other order): stack init, config set, a preview.
    run, preview = engine_setup(bins, tmp_path / "engine-after", clone, kubeconfig).preview()
    assert run.returncode == 0 and preview.get("steps"), run.output[-4000:]
    assert git(clone, "status", "--porcelain") == ""
