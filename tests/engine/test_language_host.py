"""Our own pulumi-language-python (toolchain/pulumi-language-python) under the real Pulumi CLI.

No cluster needed: tiny programs in a temp project with a file backend check that config reaches the
program, exports and log messages come back, and that failures surface as the engine expects (an
unhandled exception is reported once with its traceback; a bare non-zero exit names the exit code).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from toolchain.controlplane import REPO, ControlPlaneError, find_binary

VENV = REPO / ".venv"

PROJECT_YAML = """name: langhost-{name}
runtime:
  name: python
  options:
    virtualenv: {venv}
"""


@pytest.fixture(scope="module")
def pulumi_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    try:
        pulumi = Path(find_binary("pulumi"))
        find_binary("pulumi-language-python")
    except ControlPlaneError as err:
        pytest.fail(str(err), pytrace=False)
    home = tmp_path_factory.mktemp("langhost")
    (home / "backend").mkdir()
    env = {
        "PATH": f"{pulumi.parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "PULUMI_HOME": str(home / ".pulumi"),
        "PULUMI_BACKEND_URL": f"file://{home / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": "test",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    return home, env


def project(home: Path, env: dict[str, str], name: str, program: str) -> Path:
    root = home / name
    root.mkdir()
    (root / "Pulumi.yaml").write_text(PROJECT_YAML.format(name=name, venv=VENV))
    (root / "__main__.py").write_text(program)
    init = run(root, env, "stack", "init", "t")
    assert init.returncode == 0, init.stderr
    return root


def run(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["pulumi", *args, "--non-interactive"],
        check=False,
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_config_exports_and_logs(pulumi_env: tuple[Path, dict[str, str]]) -> None:
    home, env = pulumi_env
    root = project(
        home,
        env,
        "ok",
        "import pulumi\n"
        "cfg = pulumi.Config()\n"
        "pulumi.log.info('hello from the program')\n"
        "pulumi.export('weight', cfg.require_int('weight'))\n"
        "pulumi.export('secret', cfg.require_secret('token'))\n"
        "pulumi.export('stack', pulumi.get_stack())\n",
    )
    assert run(root, env, "config", "set", "weight", "60").returncode == 0
    assert run(root, env, "config", "set", "--secret", "token", "s3cr3t").returncode == 0
    up = run(root, env, "up", "--yes")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "hello from the program" in up.stdout
    assert "warning: using pulumi-language-python from $PATH" not in up.stdout
    out = run(root, env, "stack", "output", "--json", "--show-secrets")
    assert out.returncode == 0, out.stderr
    assert '"weight": 60' in out.stdout and '"secret": "s3cr3t"' in out.stdout and '"stack": "t"' in out.stdout


def test_unhandled_exception_is_reported_once(pulumi_env: tuple[Path, dict[str, str]]) -> None:
    home, env = pulumi_env
    root = project(home, env, "boom", "raise ValueError('weight must be between 0 and 100')\n")
    up = run(root, env, "preview")
    assert up.returncode != 0
    assert "Program failed with an unhandled exception" in up.stdout
    assert "ValueError: weight must be between 0 and 100" in up.stdout
    assert "non-zero exit code" not in up.stdout  # the host bails: the shim already reported the error


def test_bare_exit_code_is_named(pulumi_env: tuple[Path, dict[str, str]]) -> None:
    home, env = pulumi_env
    root = project(home, env, "exit3", "import sys\nsys.exit(3)\n")
    up = run(root, env, "preview")
    assert up.returncode != 0
    assert "exit code: 3" in up.stdout + up.stderr
