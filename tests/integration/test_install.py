"""`pip install .` (not editable): the installed `canary` finds the project's files in the repository it is
pointed at (-C), never in its own source tree, which a wheel, pipx or a container image does not have."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import re2
import ruamel.yaml
import yaml

from istio_canary.cli import EXIT_OK, EXIT_REFUSED
from tests.integration.conftest import ROOT

PACKAGES = ("istio_canary",)


def _install(tmp_path: Path) -> Path:
    """Build and install the project from a copy of its packaged files into a fresh --target directory."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"),
            *("--target", str(target), str(source)),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    shutil.rmtree(source)  # nothing may read the source tree any more
    # The runtime dependencies, copied beside it: the run below starts Python without site-packages (-S), so
    # the development venv's editable install of this very project cannot stand in for a missing module.
    for module in (yaml, ruamel.yaml, re2):
        top = (
            Path(str(module.__file__)).parent if module is not ruamel.yaml else Path(str(module.__file__)).parent.parent
        )
        shutil.copytree(top, target / top.name, dirs_exist_ok=True)
    for extension in Path(yaml.__file__).parent.parent.glob("_yaml*"):
        (shutil.copytree if extension.is_dir() else shutil.copy)(extension, target / extension.name)
    return target


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    code = (
        "import sys, istio_canary; "
        f"assert istio_canary.__file__.startswith({str(site)!r}), istio_canary.__file__; "
        "from istio_canary.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-S", "-c", code, *args],
        cwd=cwd,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_installed_canary_reads_the_repositorys_project_file(tmp_path, repo):
    site = _install(tmp_path)
    assert not (site / "Pulumi.yaml").exists()
    status = _run(site, tmp_path, "status", "-C", str(repo.work))
    assert status.returncode == EXIT_OK, status.stderr
    assert "podinfo-canary" in status.stdout
    promote = _run(site, tmp_path, "promote", "-C", str(repo.work), "--no-notify")
    assert promote.returncode == EXIT_OK, promote.stderr
    assert 'canaryWeight: "10"' in repo.stack.read_text()
    # The schema is the repository's: a key this repository's Pulumi.yaml does not declare is refused.
    (repo.work / "Pulumi.yaml").unlink()
    missing = _run(site, tmp_path, "status", "-C", str(repo.work))
    assert missing.returncode == EXIT_REFUSED
    assert "no Pulumi.yaml here" in missing.stderr


def test_make_venv_installs_the_dev_lock_into_a_new_venv_with_its_own_pip(tmp_path):
    """The Makefile's own install lines, run in a venv as `python -m venv` makes it (with the pip the interpreter
    bundles, older than 24 here): hash-checked, complete (pip check), and nothing left to resolve."""
    base = getattr(sys, "_base_executable", sys.executable)
    venv = tmp_path / "venv"
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    recipe = [
        line.strip().replace("$(PY)", str(python))
        for line in (ROOT / "Makefile").read_text().splitlines()
        if line.startswith("\t$(PY) -m pip") and ("requirements-dev.lock" in line or "pip check" in line)
    ]
    assert len(recipe) == 2 and "--require-hashes" in recipe[0], recipe
    for command in recipe:
        done = subprocess.run(command.split(), cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    imported = subprocess.run(
        [str(python), "-c", "import githubkit, kubernetes, prometheus_client, pulumi, hypothesis"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
