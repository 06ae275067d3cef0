"""The lock files pin every package that runs, with hashes, at the versions the human-edited pins name."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.MULTILINE)
LOCKS = {
    "requirements.lock": ["requirements.txt"],
    "requirements-dev.lock": ["requirements.txt", "requirements-dev.txt"],
}


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    return {_name(name): version for name, version in PIN.findall(path.read_text())}


def entries(lock: Path) -> list[str]:
    """One text block per locked package: `name==version \\` and its `--hash` lines."""
    return [block for block in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text()) if PIN.match(block)]


@pytest.mark.parametrize("lock", [*LOCKS, "requirements-canary.lock"])
def test_every_locked_package_has_a_hash(lock: str) -> None:
    blocks = entries(ROOT / lock)
    assert blocks
    for block in blocks:
        assert "--hash=sha256:" in block, block.splitlines()[0]


@pytest.mark.parametrize(("lock", "sources"), LOCKS.items())
def test_the_lock_holds_every_pin_at_its_version(lock: str, sources: list[str]) -> None:
    locked = pins(ROOT / lock)
    for source in sources:
        for name, version in pins(ROOT / source).items():
            assert locked.get(name) == version, f"{lock}: {name} is {locked.get(name)}, {source} says {version}"


def test_the_canary_tool_lock_matches_the_dev_lock() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {_name(re.split(r"[<>=!~ ]", dependency)[0]) for dependency in dependencies}
    canary, dev = pins(ROOT / "requirements-canary.lock"), pins(ROOT / "requirements-dev.lock")
    assert wanted <= set(canary)
    for name, version in canary.items():
        assert dev.get(name) == version, f"{name}: the canary tool would run {version}, the tests ran {dev.get(name)}"


def test_workflows_install_only_hash_checked_packages() -> None:
    for workflow in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        for line in workflow.read_text().splitlines():
            for command in re.findall(r"pip install [^&\n]*", line):
                assert "--require-hashes" in command or "--no-deps" in command, f"{workflow.name}: {command}"
