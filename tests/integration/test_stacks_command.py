"""`canary stacks` over a repository with the many-services layout (the repository's own platform and app stack
files), and each app stack as its own release: a step of one app stack commits only that stack's file."""

from __future__ import annotations

import json
import shutil

from istio_canary.cli import EXIT_OK, EXIT_REFUSED
from tests.integration.cli import canary
from tests.integration.conftest import ROOT, git

LAYOUT = ("Pulumi.platform.yaml", "Pulumi.podinfo.yaml", "Pulumi.echo.yaml")


def add_layout(repo) -> None:
    for name in LAYOUT:
        shutil.copy(ROOT / name, repo.work / name)
    git(repo.work, "add", *LAYOUT)
    git(repo.work, "commit", "-qm", "platform + two app stacks")


def test_lists_platform_and_app_stacks_with_their_releases(capsys, repo):
    add_layout(repo)
    result = canary(capsys, "stacks", "-C", repo.work, "--json")
    assert result.code == EXIT_OK, result.err
    listed = {entry["stack"]: entry for entry in json.loads(result.out)["stacks"]}
    assert set(listed) == {"dev", "platform", "podinfo", "echo"}
    assert listed["platform"] == {"stack": "platform", "role": "platform", "platform": None}
    assert listed["echo"]["role"] == "app on platform" and listed["echo"]["app"] == "echo"
    assert (listed["podinfo"]["namespace"], listed["podinfo"]["next"]) == ("podinfo", "10")
    assert listed["dev"]["role"] == "platform + app"


def test_an_invalid_stack_is_listed_with_its_error_and_exit_4(capsys, repo):
    add_layout(repo)
    broken = (repo.work / "Pulumi.echo.yaml").read_text().replace('appPort: "5678"', 'appPort: "15006"')
    (repo.work / "Pulumi.echo.yaml").write_text(broken)
    result = canary(capsys, "stacks", "-C", repo.work)
    assert result.code == EXIT_REFUSED
    assert "echo" in result.out and "INVALID" in result.out
    assert "podinfo   app on platform" in result.out  # the others are still listed


def test_a_step_of_one_app_stack_commits_only_its_file(capsys, repo):
    add_layout(repo)
    result = canary(capsys, "promote", "-C", repo.work, "--stack", "podinfo", "--no-notify")
    assert result.code == EXIT_OK, result.err
    changed = git(repo.work, "show", "--name-only", "--format=", "HEAD").split()
    assert changed == ["Pulumi.podinfo.yaml"]
    assert 'istio-canary:canaryWeight: "10"' in (repo.work / "Pulumi.podinfo.yaml").read_text()
    assert (repo.work / "Pulumi.echo.yaml").read_text() == (ROOT / "Pulumi.echo.yaml").read_text()
