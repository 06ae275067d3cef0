"""The README stays true: its config table is the schema, and its set-up commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.config_table import readme_table, table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_config_table_matches_the_schema() -> None:
    current = readme_table(README)
    assert current is not None, "README lost its config table markers"
    assert current == table(), "README config table is stale: run .venv/bin/python scripts/config_table.py --write"


def test_quick_start_has_exactly_two_setup_commands_and_they_exist() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", quick_start, re.DOTALL)
    assert block
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make up", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^up:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
