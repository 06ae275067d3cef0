"""`canary plan` on the previews the engine test captured from a real `pulumi preview --json`
(tests/golden/plan/): the reading of each kind of step, the exit code contract of --strict, and the Markdown as
a reviewer's tools see it: CommonMark with GFM tables (markdown-it-py), and every Mermaid chart parsed by
Mermaid's own parser (@mermaid-js/parser, tests/js)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from rollout import plan
from rollout.cli import EXIT_OK, EXIT_REFUSED
from rollout.exits import EXIT_UNEXPECTED
from stacks.settings import parse
from tests.integration.cli import canary
from tests.integration.conftest import ROOT, stack_text

GOLDEN = ROOT / "tests" / "golden" / "plan"
CASES = sorted(path.name.removesuffix(".md") for path in GOLDEN.glob("*.md"))
# The stack as each preview left it (the engine test's story: ga 6.8.0, canary 6.9.0, then the step).
AFTER = {
    "weight-step": {"canaryWeight": "10"},
    "tag-bump": {"canaryWeight": "10", "canaryVersion": "6.9.1"},
    "revert": {"canaryWeight": "10"},
    "step-with-replicas": {"canaryWeight": "100", "replicas": "3"},
    "finish-ga": {"canaryWeight": "100", "gaVersion": "6.9.0"},
    "finish-traffic": {"canaryWeight": "0", "gaVersion": "6.9.0"},
    "replaces-deployments": {"canaryWeight": "0", "gaVersion": "6.9.0", "namespace": "plan-moved"},
}
EXPECTED = {
    "weight-step": (plan.MOVE, 0, 10, []),
    "tag-bump": (plan.NEW_VERSION, 10, 10, []),
    "revert": (plan.MOVE, 60, 10, []),
    "step-with-replicas": (plan.MOVE, 60, 100, ["update Deployment podinfo-canary", "update Deployment podinfo-ga"]),
    "finish-ga": (plan.FINISH_GA, 100, 100, []),
    "finish-traffic": (plan.FINISH_TRAFFIC, 100, 0, []),
}


def app(case: str):
    base = {"gaVersion": "6.8.0", "canaryVersion": "6.9.0", "namespace": "plan"}
    return parse({**base, **AFTER[case]}, {"project": "acme-prod", "region": "europe-west1"}).app


def preview(case: str) -> dict:
    return json.loads((GOLDEN / f"{case}.preview.json").read_text())


def test_every_captured_case_is_here():
    assert set(CASES) == set(AFTER)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_the_reading_of_each_kind_of_step(case):
    kind, before, after, unexpected = EXPECTED[case]
    reading = plan.read(preview(case), app(case))
    assert (reading.kind, reading.before.canary_weight, reading.after.canary_weight) == (kind, before, after)
    assert [change.words() for change in reading.unexpected] == unexpected


def test_replacements_are_listed_first():
    reading = plan.read(preview("replaces-deployments"), app("replaces-deployments"))
    ops = [change.op for change in reading.unexpected]
    assert ops[:7] == ["replace"] * 7 and ops[7:] == ["delete", "create"]
    assert {change.name for change in reading.unexpected if change.op == "replace"} >= {"podinfo-ga", "podinfo-canary"}


@pytest.mark.parametrize("case", CASES)
def test_the_markdown_is_commonmark_with_a_table_and_mermaid_fences(case):
    text = (GOLDEN / f"{case}.md").read_text()
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    kinds = [token.type for token in tokens]
    assert "table_open" in kinds and "heading_open" in kinds
    fences = [token for token in tokens if token.type == "fence"]
    assert [fence.info for fence in fences if fence.info == "mermaid"] == ["mermaid", "mermaid"]
    rows = [token for token in tokens if token.type == "tr_open"]
    assert len(rows) >= 3  # header + GA + canary
    if AFTER[case] and EXPECTED.get(case, (None, None, None, ["x"]))[3]:
        assert any(token.type == "blockquote_open" for token in tokens)  # the warning


def test_every_mermaid_chart_parses_with_mermaids_parser():
    blocks = []
    for case in CASES:
        tokens = MarkdownIt("commonmark").parse((GOLDEN / f"{case}.md").read_text())
        blocks += [token.content for token in tokens if token.type == "fence" and token.info == "mermaid"]
    script = ROOT / "tests" / "js" / "mermaid_check.mjs"
    done = subprocess.run(
        ["node", str(script)], input=json.dumps(blocks), capture_output=True, text=True, timeout=60, check=False
    )
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(results) == len(blocks) and all(result["ok"] and result["type"] == "pie" for result in results)
    # What Mermaid read back is the split: the slices of every chart add up to 100.
    assert all(sum(value for _label, value in result["sections"]) == 100 for result in results)


def test_a_broken_chart_is_caught_by_the_parser():
    script = ROOT / "tests" / "js" / "mermaid_check.mjs"
    broken = json.dumps(['pie title X\n    "GA" 90\n'])
    done = subprocess.run(["node", str(script)], input=broken, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and '"ok":false' in done.stdout


def write_preview(tmp_path: Path, case: str) -> Path:
    path = tmp_path / f"{case}.json"
    path.write_text((GOLDEN / f"{case}.preview.json").read_text())
    return path


def test_strict_fails_the_job_on_an_unexpected_change_and_passes_a_clean_step(capsys, repo, tmp_path):
    repo.write_stack(stack_text(namespace="plan", weight=100))
    clean = canary(capsys, "plan", "-C", repo.work, "--strict", "--preview", write_preview(tmp_path, "revert"))
    assert clean.code == EXIT_OK, clean.err
    replaced = write_preview(tmp_path, "replaces-deployments")
    result = canary(capsys, "plan", "-C", repo.work, "--strict", "--preview", replaced)
    assert result.code == EXIT_UNEXPECTED
    assert "> [!WARNING]" in result.out and "**replace** `Deployment` `podinfo-ga`" in result.out
    assert canary(capsys, "plan", "-C", repo.work, "--preview", replaced).code == EXIT_OK  # a warning, not a red check


def test_json_output_and_a_preview_that_is_not_one(capsys, repo, tmp_path):
    repo.write_stack(stack_text(namespace="plan", weight=10))
    result = canary(capsys, "plan", "-C", repo.work, "--json", "--preview", write_preview(tmp_path, "weight-step"))
    data = json.loads(result.out)
    assert data["headline"] == "Moves podinfo from 0 % to 10 % canary (6.9.0); GA 6.8.0 keeps 90 %."
    assert data["kind"] == "move" and data["markdown"].startswith("<!-- canary-plan -->")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("Previewing update (dev):")
    result = canary(capsys, "plan", "-C", repo.work, "--preview", garbage)
    assert result.code == EXIT_REFUSED and "not JSON" in result.err


def test_a_shape_step_in_words():
    shaped = parse(
        {"canaryPreSteps": '["mirror:20", "header"]', "canaryMatch": "header:x-canary=always", "canaryShape": "header"},
        {"project": "acme-prod", "region": "europe-west1"},
    ).app
    from rollout import plan_markdown

    before = plan.Traffic("mirror", 0, "6.8.0", "6.9.0")
    reading = plan.Plan(plan.MOVE, before, replace(before, shape="header"), ())
    assert plan_markdown.headline(reading, shaped) == (
        "Moves podinfo from a 20 % mirror to the canary 6.9.0 (users get GA's answers) to only requests with "
        "header:x-canary=always on the canary 6.9.0."
    )
    assert "| shape | mirror | header |" in plan_markdown.markdown(reading, shaped, "dev")


def test_the_dashboard_link_shows_the_analysis_window(capsys, repo, prom, tmp_path):
    repo.write_stack(stack_text(namespace="healthy", weight=10))
    preview_file = write_preview(tmp_path, "weight-step")
    result = canary(
        capsys,
        "plan",
        "-C",
        repo.work,
        "--preview",
        preview_file,
        "--prometheus",
        prom.url,
        "--at",
        prom.end,
        "--dashboard-url",
        "https://grafana.example.com/d/canary-podinfo",
    )
    assert result.code == EXIT_OK, result.err
    assert "Latest analysis: **PASS**" in result.out and "verdict: PASS" in result.out
    end_ms = int(float(prom.end) * 1000)
    link = f"https://grafana.example.com/d/canary-podinfo?from={end_ms - 300_000}&to={end_ms}"
    assert f"[Dashboard]({link})" in result.out
