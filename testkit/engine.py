"""The engine-test harness: the real Pulumi CLI against a local kube-apiserver + etcd (toolchain/controlplane).

Toolchain lookup, the private environment of every CLI call, a copy of the project in a temporary git repository
driven through the CLI (`Project`), reading objects back from the API server (`Kube`), preview steps. No pytest
state: tests/engine/conftest.py builds its fixtures from these, and bench/bench_engine.py uses them as they are.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.controlplane import ISTIO_CRDS, ControlPlaneError, LocalControlPlane, find_binary

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv"
STACK = "local"
NAMESPACE = "test"
TOOLS = ("pulumi", "pulumi-language-python", "pulumi-resource-kubernetes", "kube-apiserver", "etcd")
# What the project copy needs to run the program; nothing else of the repository is copied.
PROJECT_FILES = ("Pulumi.yaml", "Pulumi.local.yaml", "__main__.py", "stacks", "components")
# The many-services layout on the local control plane (tests/engine/test_platform_stacks.py, bench/bench_fleet.py):
# a platform stack (Helm charts cannot be fetched offline; the Istio CRDs are pre-registered) and the keys every
# app stack on it shares. The platform's `kubeconfig` is the control plane's, added by the caller.
LOCAL_PLATFORM_CONFIG = {
    "clusterMode": "existing",
    "installMesh": "false",
    "monitoring": "false",
    "skipAwait": "true",
    "deployApp": "false",
}


def local_app_config(platform: str) -> dict[str, str]:
    """The keys every app stack on the local platform stack `platform` has."""
    return {"clusterMode": "stack", "platformStack": platform, "skipAwait": "true"}


COMMAND_TIMEOUT = 600  # seconds; every CLI call is bounded so a hung engine fails the test instead of the session
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "engine-test",
    "GIT_AUTHOR_EMAIL": "engine-test@example.invalid",
    "GIT_COMMITTER_NAME": "engine-test",
    "GIT_COMMITTER_EMAIL": "engine-test@example.invalid",
}


def toolchain() -> dict[str, Path]:
    """Every binary the engine tests need; raises ControlPlaneError naming all missing ones ("run make toolchain")."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in TOOLS:
        try:
            found[name] = Path(find_binary(name))
        except ControlPlaneError:
            missing.append(name)
    if missing:
        raise ControlPlaneError(f"engine-test toolchain incomplete, missing {', '.join(missing)}: run make toolchain")
    if not ISTIO_CRDS.is_file():
        raise ControlPlaneError(f"{ISTIO_CRDS} is missing: run make toolchain")
    return found


def cli_env(bins: dict[str, Path], home: Path, kubeconfig: str) -> dict[str, str]:
    """Environment of every pulumi call: toolchain first on PATH, private PULUMI_HOME, file backend, no network."""
    dirs = [str(bins[n].parent) for n in ("pulumi", "pulumi-language-python", "pulumi-resource-kubernetes")]
    # Plugins on PATH are "ambient": the engine uses them whatever version the SDK asks for, so the provider
    # built from Go modules serves the pulumi-kubernetes SDK pinned in requirements.txt.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env.update(
        {
            "PATH": os.pathsep.join([*dict.fromkeys(dirs), env.get("PATH", "")]),
            "PULUMI_HOME": str(home / ".pulumi"),
            "PULUMI_BACKEND_URL": f"file://{home / 'backend'}",
            "PULUMI_CONFIG_PASSPHRASE": "test",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "KUBECONFIG": kubeconfig,
            **GIT_IDENTITY,
        }
    )
    (home / "backend").mkdir(parents=True, exist_ok=True)
    return env


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it, found through /proc (plugins and servers that start sessions of their
    own are not in the parent's process group)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process went away while we looked
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


# --- Kubernetes API ---------------------------------------------------------------------------------


class Kube:
    """Reads objects back from the control plane's API server (its admin client certificate)."""

    def __init__(self, plane: LocalControlPlane) -> None:
        self.plane = plane

    def get(self, path: str, retry_for: float = 30) -> dict | None:
        """GET an object; None on 404, AssertionError on any other failure.

        429 is retried (bounded) as client-go does: after a restart the API server answers /readyz while a
        custom resource's storage is still "(re)initializing".
        """
        deadline = time.monotonic() + retry_for
        while True:
            status, body = self.plane.request("GET", path)
            if status != 429 or time.monotonic() > deadline:
                break
            time.sleep(float((body.get("details") or {}).get("retryAfterSeconds", 1)) if isinstance(body, dict) else 1)
        if status == 404:
            return None
        assert status == 200, f"GET {path}: {status} {body}"
        return body

    def items(self, path: str) -> list[dict]:
        """The items of a list endpoint (empty for a 404)."""
        found = self.get(path)
        return [] if found is None else found["items"]

    def ready(self, timeout: float = 90) -> None:
        """Wait until /readyz answers ok (bounded); connection errors count as not ready."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                status, last = self.plane.request("GET", "/readyz", timeout=3)
                if status == 200:
                    return
            except OSError as err:
                last = err
            time.sleep(0.3)
        raise TimeoutError(f"{self.plane.server}/readyz not ok after {timeout}s: {last}")


# Where each kind of the app lives in the API; `name` is the object name the program uses.
KINDS = {
    "Namespace": "/api/v1/namespaces",
    "Deployment": f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
    "Service": f"/api/v1/namespaces/{NAMESPACE}/services",
    "DestinationRule": f"/apis/networking.istio.io/v1/namespaces/{NAMESPACE}/destinationrules",
    "VirtualService": f"/apis/networking.istio.io/v1/namespaces/{NAMESPACE}/virtualservices",
    "Gateway": f"/apis/networking.istio.io/v1/namespaces/{NAMESPACE}/gateways",
    "PeerAuthentication": f"/apis/security.istio.io/v1/namespaces/{NAMESPACE}/peerauthentications",
}


# What an app stack (clusterMode stack) adds in its namespace: the platform agent's Role and RoleBinding.
RBAC_KINDS = {
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
}


def app_kinds(namespace: str) -> dict[str, str]:
    """KINDS for an app in `namespace`, plus the RBAC_KINDS of an app stack."""
    found = {
        kind: path.replace(f"/namespaces/{NAMESPACE}/", f"/namespaces/{namespace}/") for kind, path in KINDS.items()
    }
    return found | {kind: path.format(namespace=namespace) for kind, path in RBAC_KINDS.items()}


@dataclass(frozen=True)
class AppNamespace:
    """The app objects of one namespace on the API server (any app, not only the `local` stack's in `test`)."""

    kube: Kube
    namespace: str

    def get(self, kind: str, name: str) -> dict | None:
        """One object by kind and name, or None."""
        return self.kube.get(f"{app_kinds(self.namespace)[kind]}/{name}")

    def objects(self) -> set[tuple[str, str]]:
        """Every (kind, name) of the app kinds in the namespace, the Namespace itself excluded."""
        return {
            (kind, item["metadata"]["name"])
            for kind, path in app_kinds(self.namespace).items()
            if kind != "Namespace"
            for item in self.kube.items(path)
        }

    def versions(self) -> dict[tuple[str, str], str]:
        """(kind, name) -> metadata.resourceVersion for the namespace and every app object in it."""
        found = {("Namespace", self.namespace): rv} if (rv := self._namespace_version()) else {}
        for kind, path in app_kinds(self.namespace).items():
            if kind != "Namespace":
                found.update(
                    {(kind, i["metadata"]["name"]): i["metadata"]["resourceVersion"] for i in self.kube.items(path)}
                )
        return found

    def _namespace_version(self) -> str:
        namespace = self.get("Namespace", self.namespace)
        return namespace["metadata"]["resourceVersion"] if namespace else ""

    def finalize(self) -> bool:
        """Complete the delete of this namespace if it is Terminating (what kube-controller-manager's namespace
        controller would do; the control plane's finalize_terminating_namespaces does it for every namespace).
        True when it was finalized."""
        namespace = self.get("Namespace", self.namespace)
        if not namespace or namespace.get("status", {}).get("phase") != "Terminating":
            return False
        namespace["spec"]["finalizers"] = []
        status, body = self.kube.plane.request("PUT", f"/api/v1/namespaces/{self.namespace}/finalize", namespace)
        assert status == 200, f"finalize namespace {self.namespace}: {status} {body}"
        return True


def obj(kube: Kube, kind: str, name: str) -> dict | None:
    """One object of the app by kind and name, or None."""
    return kube.get(f"{KINDS[kind]}/{name}")


def namespace_objects(kube: Kube) -> set[tuple[str, str]]:
    """Every (kind, name) of the app's kinds that exists in the test namespace."""
    return {
        (kind, item["metadata"]["name"]) for kind in KINDS if kind != "Namespace" for item in kube.items(KINDS[kind])
    }


def resource_versions(kube: Kube) -> dict[tuple[str, str], str]:
    """(kind, name) -> metadata.resourceVersion for the namespace and everything in it."""
    versions = {}
    for kind, path in KINDS.items():
        for item in kube.items(path):
            if kind == "Namespace" and item["metadata"]["name"] != NAMESPACE:
                continue
            versions[(kind, item["metadata"]["name"])] = item["metadata"]["resourceVersion"]
    return versions


# --- the project under test --------------------------------------------------------------------------


@dataclass
class Run:
    """The outcome of one CLI call."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Project:
    """A copy of the project in a temporary git repository, driven through the real CLI."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    @classmethod
    def create(cls, root: Path, env: dict[str, str], kubeconfig: str, source: Path = REPO) -> Project:
        """Copy the program files of `source` (a checkout), point the virtualenv at the repository's, `git init`,
        `pulumi stack init`. `source` is only read."""
        project = cls.copy(root, env, source)
        project.run(["pulumi", "stack", "init", STACK, "--non-interactive"])
        project.config_set("kubeconfig", kubeconfig)
        project.git("add", "-A")
        project.git("commit", "-q", "-m", "local stack: engine-test control plane")
        return project

    @classmethod
    def copy(cls, root: Path, env: dict[str, str], source: Path = REPO) -> Project:
        """What `create` does before its stack: copy the program files of `source`, point the virtualenv at the
        repository's, `git init`. No stack exists yet (`init_stack` makes them); `source` is only read."""
        root.mkdir(parents=True, exist_ok=True)
        for name in PROJECT_FILES:
            src = source / name
            if src.is_dir():
                shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, root / name)
        project_yaml = (root / "Pulumi.yaml").read_text()
        assert "virtualenv: .venv" in project_yaml, "Pulumi.yaml no longer says `virtualenv: .venv`"
        # An absolute path: the copy runs the same interpreter and packages as the repository.
        (root / "Pulumi.yaml").write_text(project_yaml.replace("virtualenv: .venv", f"virtualenv: {VENV}"))
        (root / ".gitignore").write_text("__pycache__/\n*.pyc\n")
        project = cls(root, env)
        project.git("init", "-q", "-b", "main")
        return project

    def run(self, argv: list[str], *, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> Run:
        """Run a command in the project, bounded; with check, fail with its output on a non-zero exit."""
        start = time.monotonic()
        proc = subprocess.run(
            argv, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        run = Run(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}\n{run.output[-6000:]}")
        return run

    def pulumi(self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT, stack: str = STACK) -> Run:
        """`pulumi <args> --stack <stack> --non-interactive` (the `local` stack unless told)."""
        return self.run(["pulumi", *args, "--stack", stack, "--non-interactive"], check=check, timeout=timeout)

    def git(self, *args: str) -> Run:
        """git in the project repository."""
        return self.run(["git", *args], timeout=60)

    def init_stack(self, stack: str) -> Run:
        """`pulumi stack init <stack>` (it becomes the selected stack, as for a user)."""
        return self.run(["pulumi", "stack", "init", stack, "--non-interactive"])

    def config_set(self, key: str, value: str, *, stack: str = STACK, path: bool = False) -> Run:
        """`pulumi config set <key> <value>`, as a user types it (a string value); with `path`,
        `pulumi config set --path 'key[0]' -- <value>` (a list item; `--` lets the value start with `-`)."""
        if not path:
            return self.pulumi("config", "set", key, value, stack=stack)
        return self.run(["pulumi", "config", "set", "--stack", stack, "--non-interactive", "--path", key, "--", value])

    def preview(self, check: bool = True, *, stack: str = STACK) -> tuple[Run, dict]:
        """`pulumi preview --json`; returns the run and the parsed JSON ({} when it is not JSON)."""
        run = self.pulumi("preview", "--json", check=check, stack=stack)
        try:
            return run, json.loads(run.stdout)
        except ValueError:
            return run, {}

    def up(self, check: bool = True, *, stack: str = STACK) -> Run:
        """`pulumi up --yes --skip-preview`."""
        return self.pulumi("up", "--yes", "--skip-preview", check=check, stack=stack)

    def export(self, *, stack: str = STACK) -> dict:
        """`pulumi stack export` as JSON."""
        return json.loads(self.pulumi("stack", "export", stack=stack).stdout)

    def outputs(self, *, stack: str = STACK) -> dict:
        """`pulumi stack output --json --show-secrets`: the stack's outputs, secrets in the clear."""
        return json.loads(self.pulumi("stack", "output", "--json", "--show-secrets", stack=stack).stdout)


@dataclass(frozen=True)
class Step:
    """One step of a preview, reduced to what the tests compare."""

    op: str
    type: str
    name: str  # metadata.name of a Kubernetes object, else the Pulumi name

    @property
    def kind(self) -> str:
        return self.type.rsplit(":", 1)[-1]


def _step(step: dict) -> Step:
    state = step.get("newState") or step.get("oldState") or {}
    metadata = (state.get("inputs") or {}).get("metadata") or {}
    return Step(step["op"], state.get("type", ""), metadata.get("name") or step["urn"].rsplit("::", 1)[-1])


def steps(preview: dict) -> list[Step]:
    """The preview's steps for Kubernetes objects (not providers, components or the stack), same included."""
    return [s for s in map(_step, preview.get("steps", [])) if s.type.startswith("kubernetes:")]


def only_update(preview: dict) -> dict:
    """The one `update` step of a preview (its oldState and newState): a step's or a revert's single change."""
    (step,) = [s for s in preview["steps"] if s["op"] == "update"]
    return step


def changes(preview: dict) -> list[Step]:
    """Every step of the preview that is not `same`, for any resource (providers and the stack included)."""
    return [s for s in map(_step, preview.get("steps", [])) if s.op != "same"]


def stack_objects(export: dict) -> set[tuple[str, str]]:
    """(kind, name) of every Kubernetes object the stack's state holds, Namespaces excluded."""
    found = set()
    for res in export["deployment"].get("resources", []):
        typ = res["type"]
        if not typ.startswith("kubernetes:") or typ.endswith(":Namespace"):
            continue
        found.add((typ.rsplit(":", 1)[-1], res["outputs"]["metadata"]["name"]))
    return found
