"""Fixtures: real Prometheus, real OCI registry, real git repositories (bare origin + clone), HTTP stubs."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import servers
from testkit.stackfiles import STACK_TEMPLATE, stack_text  # noqa: F401 - re-exported to the tests

ROOT = Path(__file__).resolve().parents[2]


def project_dir(directory: Path, stack: str) -> Path:
    """`directory` as a Pulumi project without git: the project file and a `dev` stack file holding `stack`."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", directory / "Pulumi.yaml")
    (directory / "Pulumi.dev.yaml").write_text(stack)
    return directory


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return stdout."""
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


class Repo:
    """A clone of a bare origin holding Pulumi.yaml and Pulumi.dev.yaml."""

    def __init__(self, work: Path, origin: Path) -> None:
        self.work = work
        self.origin = origin
        self.stack = work / "Pulumi.dev.yaml"

    def write_stack(self, text: str, message: str = "stack config") -> None:
        """Commit and push a new stack file."""
        self.stack.write_text(text)
        git(self.work, "add", "Pulumi.dev.yaml")
        git(self.work, "commit", "-qm", message)
        git(self.work, "push", "-q", "origin", "HEAD:main")

    def head(self) -> str:
        """HEAD commit id."""
        return git(self.work, "rev-parse", "HEAD").strip()

    def message(self, rev: str = "HEAD") -> str:
        """Full commit message of `rev`."""
        return git(self.work, "log", "-1", "--format=%B", rev)

    def count(self) -> int:
        """Commits on HEAD."""
        return int(git(self.work, "rev-list", "--count", "HEAD"))

    def origin_head(self) -> str:
        """The commit main points to in the bare origin."""
        return git(self.origin, "rev-parse", "refs/heads/main").strip()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    # Never post to a real webhook or query a real Prometheus from a developer's environment.
    for name in ("SLACK_WEBHOOK_URL", "PROMETHEUS_URL", "CANARY_STACK", "CANARY_REGISTRY_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    # Nor read a developer's registry or Google credentials: an empty Docker config, no ADC file, no GCE probe.
    for name in ("CANARY_REGISTRY_PASSWORD", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path_factory.mktemp("docker-config")))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path_factory.mktemp("gcloud-config")))


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """A bare origin and a clone with the project file and a commented stack file at weight 0."""
    origin = tmp_path / "origin.git"
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True, timeout=30)
    subprocess.run(["git", "clone", "-q", str(origin), str(work)], check=True, timeout=30, capture_output=True)
    for key, value in (("user.name", "Canary Test"), ("user.email", "canary@example.com"), ("commit.gpgsign", "false")):
        git(work, "config", key, value)
    git(work, "checkout", "-q", "-b", "main")
    shutil.copy(ROOT / "Pulumi.yaml", work / "Pulumi.yaml")
    git(work, "add", "Pulumi.yaml")
    result = Repo(work, origin)
    result.write_stack(stack_text(), "initial stack")
    return result


@pytest.fixture(scope="session")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.PrometheusServer]:
    """One real Prometheus for the session, one namespace per scenario (see servers.SCENARIOS)."""
    with servers.prometheus(tmp_path_factory.mktemp("prometheus")) as server:
        yield server


REGISTRY_TAGS = ["5.9.9", "6.8.0", "6.9.0", "6.9.1", "6.10.0-rc.1", "6.9.2-beta.1", "7.0.0", "latest", "main-abc123"]


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real registry holding stefanprodan/podinfo with REGISTRY_TAGS; yields its base URL."""
    with servers.registry(tmp_path_factory.mktemp("registry")) as url:
        servers.push_tags(url, "stefanprodan/podinfo", REGISTRY_TAGS)
        yield url
