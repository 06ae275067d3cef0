"""The stack file editor keeps every byte it does not mean to change."""

from __future__ import annotations

import pytest

from istio_canary.stackfile import StackFile
from tests.integration.conftest import ROOT, project_dir, stack_text

REPO_STACKS = sorted(ROOT.glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("path", REPO_STACKS, ids=[p.name for p in REPO_STACKS])
def test_repository_stack_files_round_trip_unchanged(path):
    assert StackFile(path).render() == path.read_text()


@pytest.mark.parametrize(
    "steps",
    ["  istio-canary:canarySteps:\n    - 10\n    - 100\n", "  istio-canary:canarySteps:\n  - 10\n  - 100\n"],
    ids=["dash-indented", "dash-flush"],
)
def test_list_styles_survive_an_edit(tmp_path, steps):
    original = "config:\n  istio-canary:canaryWeight: 10  # live\n" + steps
    path = project_dir(tmp_path, original) / "Pulumi.dev.yaml"
    stack = StackFile(path)
    stack.set("canaryWeight", 60)  # same width: ruamel keeps an inline comment at its column
    assert stack.save()
    # `"60"`: as `pulumi config set` writes it; ruamel keeps an inline comment at its column
    assert path.read_text() == original.replace("canaryWeight: 10  # live", 'canaryWeight: "60"  # live')


def test_new_key_is_appended_and_unchanged_file_is_not_written(tmp_path):
    path = project_dir(tmp_path, stack_text()) / "Pulumi.dev.yaml"
    stack = StackFile(path)
    assert not stack.save()
    stack.set("analysisMaxP99Ms", 800)
    assert stack.save()
    assert path.read_text() == stack_text() + '  istio-canary:analysisMaxP99Ms: "800"\n'


def test_four_space_mappings(tmp_path):
    original = "config:\n    istio-canary:gaVersion: 6.8.0\n    istio-canary:canaryWeight: 0\n"
    path = project_dir(tmp_path, original) / "Pulumi.dev.yaml"
    stack = StackFile(path)
    stack.set("canaryWeight", 10)
    stack.save()
    assert path.read_text() == original.replace("canaryWeight: 0", 'canaryWeight: "10"')
