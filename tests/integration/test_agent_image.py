"""The release agent's image without a Docker engine: what the Dockerfile builds, done the same way outside it,
and the Dockerfile itself scanned with checkov's Dockerfile policies.

The build: the wheel from the files the Dockerfile copies (each let in by .dockerignore), a fresh venv, the
hash-locked requirements-canary.lock with --require-hashes, the wheel with --no-deps, `pip check` (the Dockerfile's
pip lines), then the image's ENTRYPOINT + CMD as written in the Dockerfile. The lock's packages come from the package
index, as in the image build and in CI: --require-hashes checks every file against the lock, so the index is a
transport, not a source of trust, and a wheelhouse made with `pip download` would have to come from that same index.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.k8s_common import NON_ROOT_UID
from components.release_agent import AGENT_NAMESPACE, HTTP_PORT, WORKDIR, agent_command
from tests.integration.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK = "requirements-canary.lock"
CHECKOV = ROOT / ".checkov-venv" / "bin" / "checkov"
DIGEST_PINNED = re.compile(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}")
# The index may be slow; a cold install of the lock (githubkit's schemas are large) takes about a minute here.
PIP_TIMEOUT_S = 900


def instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, FROM first."""
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, rest))
    return result


def last(stage: list[tuple[str, str]], keyword: str) -> str:
    values = [rest for key, rest in stage if key == keyword]
    assert values, f"no {keyword} in the image's stage"
    return values[-1]


def exec_form(value: str) -> list[str]:
    """ENTRYPOINT/CMD in exec form (a JSON list); shell form would put a shell between Kubernetes and canary."""
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(item, str) for item in parsed), value
    return parsed


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for a path: the last matching .dockerignore pattern decides (a `!` pattern lets it in)."""
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            matched = fnmatch.fnmatch(path, pattern[3:]) or fnmatch.fnmatch(path, pattern)
        else:
            matched = fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/")
        if matched:
            verdict = not negated
    return verdict


def dockerignore() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def image_stage() -> list[tuple[str, str]]:
    return stages(DOCKERFILE.read_text())[-1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the lock and the wheel, as the image does; returns its bin directory."""
    tmp = tmp_path_factory.mktemp("agent-image")
    build_stage = stages(DOCKERFILE.read_text())[0]
    context = tmp / "context"
    context.mkdir()
    for keyword, rest in build_stage:
        if keyword == "COPY":
            source = rest.split()[0]
            assert not ignored(source, dockerignore()), f"{source} is copied but .dockerignore keeps it out"
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, context / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(ROOT / source, context / source)
    dist = tmp / "dist"
    # The build stage's command; this venv's setuptools stands in for the base image's.
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist), "."], cwd=context)
    (wheel,) = dist.glob("*.whl")
    shutil.rmtree(context)  # nothing may read the source tree any more
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes", "-r", str(ROOT / LOCK)], cwd=tmp)
    run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], cwd=tmp)
    run([python, "-m", "pip", "check"], cwd=tmp)
    return venv / "bin"


def run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    assert done.returncode == 0, (
        f"{command[:4]}... exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )


def in_image(bin_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run argv as the image would: its PATH first, no source tree, a HOME of its own."""
    home = bin_dir.parent.parent / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home)}
    return subprocess.run(list(argv), cwd=home, env=env, capture_output=True, text=True, timeout=120, check=False)


# --- the Dockerfile says what the test does --------------------------------------------------------------------


def test_the_image_installs_the_lock_with_hashes_then_the_wheel_without_dependencies(image_stage) -> None:
    runs = [rest for keyword, rest in image_stage if keyword == "RUN"]
    assert any(f"pip install --no-cache-dir --no-deps --require-hashes -r /tmp/{LOCK}" in command for command in runs)
    assert any("pip install --no-cache-dir --no-deps /tmp/dist/*.whl" in command for command in runs)
    assert any("pip check" in command for command in runs)
    (build,) = [rest for keyword, rest in stages(DOCKERFILE.read_text())[0] if keyword == "RUN"]
    assert "pip wheel --no-cache-dir --no-deps --no-build-isolation" in build


def test_every_stage_starts_from_the_same_base_pinned_by_digest() -> None:
    bases = {stage[0][1].split()[0] for stage in stages(DOCKERFILE.read_text())}
    assert len(bases) == 1, bases
    (base,) = bases
    assert DIGEST_PINNED.fullmatch(base), base
    assert not base.split("@")[0].endswith(":latest")


def test_the_image_runs_as_the_pods_numeric_user_and_serves_the_agents_port(image_stage) -> None:
    assert last(image_stage, "USER") == f"{NON_ROOT_UID}:{NON_ROOT_UID}"
    assert last(image_stage, "EXPOSE") == str(HTTP_PORT)
    assert last(image_stage, "WORKDIR") == WORKDIR
    assert f"127.0.0.1:{HTTP_PORT}/healthz" in last(image_stage, "HEALTHCHECK")


def test_the_build_context_is_the_packaged_sources_and_the_lock_only() -> None:
    patterns = dockerignore()
    for kept in (
        "pyproject.toml",
        LOCK,
        "istio_canary/cli.py",
        "istio_canary/release/settings.py",
    ):
        assert not ignored(kept, patterns), kept
    for left_out in (
        ".git/config",
        ".venv/bin/python",
        "Pulumi.dev.yaml",
        "tests/unit/conftest.py",
        "istio_canary/__pycache__/cli.cpython-311.pyc",
        "components/release_agent.py",  # the Pulumi program's; the wheel ships istio_canary only
        "stacks/wiring.py",
    ):
        assert ignored(left_out, patterns), left_out


# --- the image's command, from a non-editable install in a fresh venv ------------------------------------------


def test_the_installed_canary_is_the_wheels_not_the_source_trees(installed: Path) -> None:
    done = in_image(installed, str(installed / "python"), "-c", "import istio_canary; print(istio_canary.__file__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(installed.parent)), done.stdout
    assert not str(ROOT) in done.stdout


def test_canary_lists_the_agent_command(installed: Path) -> None:
    done = in_image(installed, "canary", "--help")
    assert done.returncode == 0, done.stderr
    assert re.search(r"\{[^}]*\bagent\b[^}]*\}", done.stdout), done.stdout


def test_the_images_entrypoint_and_command_run(installed: Path, image_stage) -> None:
    argv = exec_form(last(image_stage, "ENTRYPOINT")) + exec_form(last(image_stage, "CMD"))
    assert argv == ["canary", "agent"]
    done = in_image(installed, *argv, "--help")
    assert done.returncode == 0, done.stderr
    # Every flag of the Deployment's command line is one the installed command knows.
    flags = [
        item
        for item in agent_command("dev", "https://github.com/acme/shop.git", AGENT_NAMESPACE)
        if item.startswith("--")
    ]
    assert flags and all(flag in done.stdout for flag in flags), done.stdout


def test_the_agent_refuses_to_start_without_its_token(installed: Path, tmp_path: Path) -> None:
    # What a pod without the Secret's token would do: stop at once and say why (exit 4), not idle silently.
    command = agent_command("dev", "https://github.com/acme/shop.git", AGENT_NAMESPACE)
    command[command.index("--workdir") + 1] = str(tmp_path / "work")
    done = in_image(installed, *command)
    assert done.returncode == 4, done.stderr
    assert "CANARY_GIT_TOKEN" in done.stderr


# --- checkov's Dockerfile policies --------------------------------------------------------------------------------


def checkov_dockerfile(path: Path) -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(
            f"checkov is not installed at {CHECKOV}; run `make test` (or scripts/install-checkov.sh)", pytrace=False
        )
    command = [str(CHECKOV), "--framework", "dockerfile", "-f", str(path), "--skip-download", "-o", "json"]
    done = subprocess.run(command, cwd=path.parent, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["check_type"] == "dockerfile", done.stdout[:2000]
    return report


def test_checkov_finds_nothing_in_the_dockerfile() -> None:
    report = checkov_dockerfile(DOCKERFILE)
    failed = [f"{c['check_id']} {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert failed == []
    passed = {c["check_id"] for c in report["results"]["passed_checks"]}
    # Non-root user, a HEALTHCHECK, a base that is not `latest`: passed, not merely absent from the findings.
    assert {"CKV_DOCKER_2", "CKV_DOCKER_3", "CKV_DOCKER_7", "CKV_DOCKER_8"} <= passed
    assert report["summary"]["parsing_errors"] == 0


def test_checkov_would_catch_a_root_image_on_latest_without_healthcheck(tmp_path: Path) -> None:
    text = DOCKERFILE.read_text()
    text = re.sub(r"^FROM \S+", "FROM python:latest", text, flags=re.MULTILINE)
    text = re.sub(r"^(USER|HEALTHCHECK) .*(\n\s+.*)?$", "", text, flags=re.MULTILINE)
    broken = tmp_path / "Dockerfile"
    broken.write_text(text)
    failed = {c["check_id"] for c in checkov_dockerfile(broken)["results"]["failed_checks"]}
    assert {"CKV_DOCKER_2", "CKV_DOCKER_3", "CKV_DOCKER_7"} <= failed


def test_no_secret_reaches_a_layer() -> None:
    # Secrets come at run time (the pod's Secret), never as build arguments or image environment.
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        assert keyword != "ARG", rest
        if keyword == "ENV":
            assert not re.search(r"TOKEN|WEBHOOK|PASSPHRASE|SECRET|PASSWORD", rest), rest
    assert "--mount=type=secret" not in DOCKERFILE.read_text()  # nothing to mount: the build needs no credential
