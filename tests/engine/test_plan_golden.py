"""`canary plan` on REAL `pulumi preview --json` output, captured here on the local control plane for each kind of
stack commit: a weight step, a new canary tag, finish 1/2 and 2/2, a git revert, a step that also changes
replicas, and a change that replaces the Deployments. The Markdown must equal tests/golden/plan/<case>.md; the
captured previews are kept beside it (tests/integration/test_plan.py parses both without an engine).

UPDATE_GOLDEN=1 rewrites the golden files from this run instead of comparing (then review the diff).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from testkit.engine import REPO, Kube, Project

GOLDEN = REPO / "tests" / "golden" / "plan"
NAMESPACE = "plan"


def plan(project: Project, preview: dict, case: str) -> str:
    path = project.root.parent / f"{case}.preview.json"
    path.write_text(json.dumps(preview, indent=1, sort_keys=True))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "istio_canary",
            "plan",
            "-C",
            str(project.root),
            "--stack",
            "local",
            "--preview",
            str(path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PROMETHEUS_URL": ""},
    )
    assert done.returncode in (0,), done.stderr
    return done.stdout


def check(project: Project, case: str, results: dict[str, str]) -> None:
    """Preview, run canary plan on it, keep the Markdown and the preview for the comparison at the end."""
    _, preview = project.preview()
    results[case] = plan(project, preview, case)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        (GOLDEN / f"{case}.md").write_text(results[case])
        # Only what the reading needs: the steps' op, urn, type and inputs (not timestamps or the engine's config).
        slim = {
            "steps": [
                {key: step[key] for key in ("op", "urn", "oldState", "newState") if key in step}
                for step in preview["steps"]
            ]
        }
        for step in slim["steps"]:
            for state in ("oldState", "newState"):
                if state in step:
                    step[state] = {key: step[state].get(key) for key in ("type", "inputs")}
        (GOLDEN / f"{case}.preview.json").write_text(json.dumps(slim, indent=1, sort_keys=True) + "\n")


def step(project: Project, message: str, **settings: str) -> None:
    for key, value in settings.items():
        project.config_set(key, value)
    project.git("commit", "-qam", message)


def test_plan_markdown_of_real_previews_matches_the_golden_files(
    own_project: Callable[[str], Project], kube: Kube
) -> None:
    project = own_project("plan-golden")
    step(project, "namespace", namespace=NAMESPACE, loadGenerator="false")
    results: dict[str, str] = {}
    try:
        project.up()
        step(project, "canary: 10%", canaryWeight="10")
        check(project, "weight-step", results)
        project.up()
        step(project, "new canary tag", canaryVersion="6.9.1")
        check(project, "tag-bump", results)
        project.git("reset", "-q", "--hard", "HEAD~1")
        step(project, "canary: 60%", canaryWeight="60")
        project.up()
        project.git("revert", "--no-edit", "HEAD")
        check(project, "revert", results)
        project.git("reset", "-q", "--hard", "HEAD~1")
        step(project, "canary: 100% and more replicas", canaryWeight="100", replicas="3")
        check(project, "step-with-replicas", results)
        project.git("reset", "-q", "--hard", "HEAD~1")
        step(project, "canary: 100%", canaryWeight="100")
        project.up()
        step(project, "finish 1/2", gaVersion="6.9.0")
        check(project, "finish-ga", results)
        project.up()
        step(project, "finish 2/2", canaryWeight="0")
        check(project, "finish-traffic", results)
        project.up()
        step(project, "another namespace", namespace="plan-moved")
        check(project, "replaces-deployments", results)
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview", check=False)
        project.pulumi("stack", "rm", "--yes", "--force", check=False)
    for case, text in results.items():
        assert text == (GOLDEN / f"{case}.md").read_text(), f"{case}: Markdown differs from the golden file"
