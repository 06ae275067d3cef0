"""`make up` stops with what to install or set before it ever runs `pulumi up` without prerequisites."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_up(tmp_path: Path, *, with_pulumi: bool, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if with_pulumi:
        # A tripwire, not a fake: the guards must stop before any pulumi command runs.
        tripwire = bin_dir / "pulumi"
        tripwire.write_text(f"#!/bin/sh\necho called > {tmp_path}/pulumi-called\nexit 99\n")
        tripwire.chmod(0o755)
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    return subprocess.run(
        ["scripts/up.sh", "dev"],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_without_pulumi_cli_it_says_what_to_install(tmp_path: Path) -> None:
    result = run_up(tmp_path, with_pulumi=False)
    assert result.returncode == 1
    assert "no Pulumi CLI on PATH" in result.stderr
    assert "make toolchain" in result.stderr


def test_without_google_credentials_it_says_what_to_set(tmp_path: Path) -> None:
    result = run_up(tmp_path, with_pulumi=True)
    assert result.returncode == 1
    assert "no Google credentials" in result.stderr
    assert "gcloud auth application-default login" in result.stderr
    assert not (tmp_path / "pulumi-called").exists()


def test_with_credentials_but_placeholder_project_it_says_which_key(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text("{}")
    plugin = tmp_path / "bin" / "gke-gcloud-auth-plugin"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text("#!/bin/sh\nexit 0\n")
    plugin.chmod(0o755)
    result = run_up(tmp_path, with_pulumi=True, env={"GOOGLE_APPLICATION_CREDENTIALS": str(key)})
    assert result.returncode == 1
    assert "gcp:project" in result.stderr and "placeholder" in result.stderr
    assert not (tmp_path / "pulumi-called").exists()


def test_makefile_up_target_runs_the_guard() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert '@scripts/up.sh "$(STACK)" $(UP_ARGS)' in makefile
    assert os.access(ROOT / "scripts" / "up.sh", os.X_OK)
