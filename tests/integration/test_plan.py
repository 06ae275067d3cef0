"""`canary plan` on the previews the engine test captured from a real `pulumi preview --json`
(tests/golden/plan/): the reading of each kind of step, the exit code contract of --strict, and the Markdown as
a reviewer's tools see it: CommonMark with GFM tables (markdown-it-py), and every Mermaid chart parsed by
Mermaid's own parser (@mermaid-js/parser, tests/js)."""

from __future__ import annotations

import copy
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from istio_canary import plan, plan_markdown
from istio_canary.cli import EXIT_OK, EXIT_REFUSED
from istio_canary.exits import EXIT_UNEXPECTED
from istio_canary.release.settings import parse
from tests.integration.cli import canary
from tests.integration.conftest import ROOT, project_dir, stack_text

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
    from istio_canary import plan_markdown

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


# --- the golden files, reproduced without an engine ------------------------------------------------------------


def local_stack(directory: Path, case: str) -> Path:
    """`directory` as the engine test's project for `case`: a `local` stack file as its preview left it."""
    values = {"clusterMode": "existing", "gaVersion": "6.8.0", "canaryVersion": "6.9.0", "namespace": "plan"}
    values.update(AFTER[case])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    lines = "".join(f'  istio-canary:{key}: "{value}"\n' for key, value in values.items())
    (directory / "Pulumi.local.yaml").write_text(f"config:\n{lines}")
    return directory


@pytest.mark.parametrize("case", CASES)
def test_each_golden_file_is_what_canary_plan_writes_for_its_preview(capsys, monkeypatch, tmp_path, case):
    # The engine test (tests/engine/test_plan_golden.py) compares a fresh preview with the same files; this
    # one keeps them honest on every run without an engine.
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    project = local_stack(tmp_path / "project", case)
    result = canary(capsys, "plan", "-C", project, "--stack", "local", "--preview", GOLDEN / f"{case}.preview.json")
    assert result.code == EXIT_OK, result.err
    assert result.out == (GOLDEN / f"{case}.md").read_text()


# --- the stack's own objects, by URN and namespace ---------------------------------------------------------------

OWN_VS_URN = (
    "urn:pulumi:local::istio-canary::istio-canary:app:CanaryApp$kubernetes:networking.istio.io/v1:VirtualService"
    "::podinfo-virtualservice"
)
LOOKALIKES = {
    # A VirtualService of the same name in another namespace (another object of the program, e.g. a copy).
    "another namespace": ("other", OWN_VS_URN.replace("::podinfo-virtualservice", "::podinfo-shadow")),
    # Same namespace and name, declared outside the app component: not the object the stack's step moves.
    "another component": (
        "plan",
        "urn:pulumi:local::istio-canary::kubernetes:networking.istio.io/v1:VirtualService::podinfo-shadow",
    ),
    # Same component path, but of another project than the preview's stack.
    "another project": (
        "plan",
        OWN_VS_URN.replace("::istio-canary::istio-canary:app", "::other-app::istio-canary:app"),
    ),
}


def lookalike(own: dict, namespace: str, urn: str, weights: tuple[int, int]) -> dict:
    """A copy of the stack's own VirtualService step as another object: its namespace, URN and weights."""
    step = copy.deepcopy(own)
    step["urn"] = urn
    for state, weight in zip(("oldState", "newState"), weights, strict=True):
        step[state]["inputs"]["metadata"]["namespace"] = namespace
        for route in step[state]["inputs"]["spec"]["http"][-1]["route"]:
            route["weight"] = weight if route["destination"]["subset"] == "canary" else 100 - weight
    return step


def plan_project(tmp_path: Path, **values: object) -> Path:
    return project_dir(tmp_path / "project", stack_text(namespace="plan", **values))  # type: ignore[arg-type]


@pytest.mark.parametrize("where", sorted(LOOKALIKES))
@pytest.mark.parametrize("with_own", [True, False], ids=["beside-the-own-step", "instead-of-it"])
def test_a_same_name_object_elsewhere_is_an_unexpected_change(capsys, tmp_path, where, with_own):
    data = preview("weight-step")
    (own,) = [step for step in data["steps"] if step["urn"] == OWN_VS_URN]
    namespace, urn = LOOKALIKES[where]
    other = lookalike(own, namespace, urn, (0, 100))
    data["steps"] = [step for step in data["steps"] if with_own or step is not own] + [other]
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(data))
    result = canary(capsys, "plan", "-C", plan_project(tmp_path, weight=10), "--strict", "--preview", path)
    assert result.code == EXIT_UNEXPECTED, result.err
    (item,) = [line for line in result.out.splitlines() if line.startswith("> - ")]
    assert item.startswith("> - **update** `VirtualService` `podinfo`")
    assert (f"in namespace `{namespace}`" in item) == (namespace != "plan")
    assert (urn in item) == (namespace == "plan")  # a lookalike in the stack's own namespace: its URN says which
    # The traffic is read from the stack's own VirtualService only, never from the lookalike's 0 -> 100.
    headline = "Moves podinfo from 0 % to 10 % canary" if with_own else "Changes no traffic of podinfo."
    assert headline in result.out


def test_the_stacks_own_steps_pass_strict_from_any_golden_preview(capsys, tmp_path):
    data = preview("weight-step")
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(data))
    result = canary(capsys, "plan", "-C", plan_project(tmp_path, weight=10), "--strict", "--preview", path)
    assert result.code == EXIT_OK and "[!WARNING]" not in result.out


# --- malformed previews: exit 4 naming the problem, never 5 ------------------------------------------------------


def vs_step(data: dict) -> dict:
    return next(step for step in data["steps"] if step["urn"] == OWN_VS_URN)


def set_at(data: dict, path: tuple, value: object) -> None:
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


MALFORMED = {
    "a step that is not an object": (("steps", 1), "x", "steps[1] is a string, not an object"),
    "an op that is not a string": (("steps", 1, "op"), 3, "steps[1].op is a number, not a string"),
    "no op": (("steps", 1, "op"), None, "steps[1].op is missing"),
    "an op that is not a word": (("steps", 1, "op"), "**update**", "steps[1].op is not a Pulumi step op"),
    "no urn": (("steps", 1, "urn"), None, "steps[1].urn is missing"),
    "a urn that is not one": (("steps", 1, "urn"), "podinfo", "steps[1].urn is not a Pulumi URN"),
    "a state that is a list": (("steps", 1, "newState"), [], "steps[1].newState is a list, not an object"),
    "inputs that are a string": (("steps", 1, "newState", "inputs"), "{}", "steps[1].newState.inputs is a string"),
    "metadata that is a list": (
        ("steps", 1, "oldState", "inputs", "metadata"),
        ["podinfo"],
        "steps[1].oldState.inputs.metadata is a list, not an object",
    ),
    "a name that is a number": (
        ("steps", 1, "newState", "inputs", "metadata", "name"),
        7,
        ".metadata.name is a number",
    ),
    "a type that is an object": (("steps", 1, "newState", "type"), {}, "steps[1].newState.type is an object"),
    "routes that are an object": (
        ("steps", 1, "newState", "inputs", "spec", "http"),
        {"route": []},
        "steps[1].newState.inputs.spec.http is an object, not a list",
    ),
    "a weight in words": (
        ("steps", 1, "newState", "inputs", "spec", "http", 0, "route", 1, "weight"),
        "ten",
        "steps[1].newState.inputs.spec.http[0].route[1].weight is a string, not a whole number from 0 to 100",
    ),
    "a weight over 100": (
        ("steps", 1, "newState", "inputs", "spec", "http", 0, "route", 1, "weight"),
        150,
        "route[1].weight is 150, not a whole number from 0 to 100",
    ),
    "a negative weight": (("steps", 1, "oldState", "inputs", "spec", "http", 0, "route", 1, "weight"), -5, "is -5"),
    "a weight that is a boolean": (
        ("steps", 1, "oldState", "inputs", "spec", "http", 0, "route", 1, "weight"),
        True,
        "weight is a boolean",
    ),
    "a fractional weight": (("steps", 1, "newState", "inputs", "spec", "http", 0, "route", 1, "weight"), 10.5, "10.5"),
    "a route that is a string": (("steps", 1, "newState", "inputs", "spec", "http", 0, "route", 0), "ga", "route[0]"),
}


@pytest.mark.parametrize("problem", sorted(MALFORMED))
def test_a_malformed_preview_exits_4_naming_the_problem(capsys, tmp_path, problem):
    path_in, value, message = MALFORMED[problem]
    data = preview("weight-step")
    assert data["steps"][1] is vs_step(data)
    if value is None:
        del data["steps"][1][path_in[-1]]
    else:
        set_at(data, path_in, value)
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(data))
    result = canary(capsys, "plan", "-C", plan_project(tmp_path, weight=10), "--preview", path)
    assert result.code == EXIT_REFUSED, result.err
    assert result.err.startswith(f"error: --preview {path}: ") and message in result.err, result.err
    assert result.out == ""


def test_a_deployment_with_a_malformed_container_exits_4(capsys, tmp_path):
    data = preview("tag-bump")
    deployment = data["steps"][1]
    deployment["oldState"]["inputs"]["spec"]["template"]["spec"]["containers"] = {"image": "x:1"}
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(data))
    result = canary(capsys, "plan", "-C", plan_project(tmp_path, weight=10, canary="6.9.1"), "--preview", path)
    assert result.code == EXIT_REFUSED and "steps[1].oldState.inputs.spec.template.spec.containers is an object" in (
        result.err
    )
    deployment["oldState"]["inputs"]["spec"]["template"]["spec"]["containers"] = [{"image": ["x"]}]
    path.write_text(json.dumps(data))
    result = canary(capsys, "plan", "-C", plan_project(tmp_path, weight=10, canary="6.9.1"), "--preview", path)
    assert result.code == EXIT_REFUSED and "containers[0].image is a list, not a string" in result.err


# Values that are wrong for some field somewhere; mutated into the real previews at random places.
WRONG: list[object] = [
    None, True, False, 0, -1, 7, 101, 10.5, 1e300, "", "x", "10", "`@team <b>#1", [], [None], [[[]]], {}, {"x": 1},
]  # fmt: skip
# Where a mutation matters most: the fields the reading looks at.
READ_KEYS = {
    "steps", "op", "urn", "oldState", "newState", "type", "inputs", "metadata", "name", "namespace", "spec", "http",
    "route", "destination", "subset", "weight", "match", "mirror", "template", "containers", "image",
}  # fmt: skip


def node_paths(node: object, prefix: tuple = ()) -> list[tuple]:
    found = []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        found.append((*prefix, key))
        found += node_paths(child, (*prefix, key))
    return found


PREVIEWS = {case: preview(case) for case in CASES}
PATHS = {case: node_paths(data) for case, data in PREVIEWS.items()}
READ_PATHS = {
    case: [path for path in paths if isinstance(path[-1], int) or path[-1] in READ_KEYS]
    for case, paths in PATHS.items()
}


@st.composite
def mutated_previews(draw: st.DrawFn) -> tuple[str, dict]:
    case = draw(st.sampled_from(CASES))
    data = copy.deepcopy(PREVIEWS[case])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.one_of(st.sampled_from(PATHS[case]), st.sampled_from(READ_PATHS[case])))
        try:
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()):
                parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(WRONG)))
            else:
                del parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation of this example removed or replaced the way there
    return case, data


@settings(max_examples=300, deadline=None)
@given(mutated=mutated_previews())
def test_the_reading_of_any_mutated_preview_is_a_plan_or_a_refusal(mutated):
    case, data = mutated
    try:
        reading = plan.read(data, app(case))
    except plan.MalformedPreview as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    text = plan_markdown.markdown(reading, app(case), "dev")
    assert text.startswith(plan_markdown.MARKER)
    for traffic in (reading.before, reading.after):
        assert 0 <= traffic.canary_weight <= 100


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plan-projects")
    return {case: local_stack(root / case, case) for case in CASES}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated=mutated_previews())
def test_canary_plan_on_any_mutated_preview_exits_0_4_or_7(capsys, projects, tmp_path, mutated):
    case, data = mutated
    path = tmp_path / "mutated.json"
    path.write_text(json.dumps(data))
    result = canary(capsys, "plan", "-C", projects[case], "--stack", "local", "--strict", "--preview", path)
    assert result.code in (EXIT_OK, EXIT_REFUSED, EXIT_UNEXPECTED), result.err
    if result.code == EXIT_REFUSED:
        assert result.err.startswith(f"error: --preview {path}: ") and result.out == ""


# --- a new canary tag while the canary serves traffic ------------------------------------------------------------


def test_a_tag_bump_under_traffic_says_who_moves_at_once_and_warns(capsys, tmp_path):
    path = write_preview(tmp_path, "tag-bump")
    result = canary(capsys, "plan", "-C", plan_project(tmp_path, weight=10, canary="6.9.1"), "--preview", path)
    assert result.code == EXIT_OK
    assert "no user is sent to it yet" not in result.out
    assert "**Starts a release of podinfo 6.9.1 while the canary serves traffic: 10 % of users move from 6.9.0 to " \
        "6.9.1 at once.**" in result.out  # fmt: skip
    warning = result.out.split("> [!WARNING]\n", 1)[1].split("\n\n", 1)[0]
    assert "skips the gradual steps" in warning and "10 %" in warning
    assert "[!WARNING]" not in result.out.split("> [!WARNING]\n", 1)[1]  # one warning: no unexpected change
    # --strict stays green: the canary Deployment is the one change a new tag should make.
    assert canary(capsys, "plan", "-C", tmp_path / "project", "--strict", "--preview", path).code == EXIT_OK


def test_a_tag_bump_at_0_percent_keeps_its_headline(capsys, tmp_path):
    path = write_preview(tmp_path, "tag-bump")
    result = canary(capsys, "plan", "-C", plan_project(tmp_path, weight=0, canary="6.9.1"), "--preview", path)
    assert result.code == EXIT_OK
    assert (
        "**Starts a release of podinfo 6.9.1 (was 6.9.0): the canary Deployment changes, no user is sent to it "
        "yet.**\n\n| version |" in result.out
    )
    assert "[!WARNING]" not in result.out


def test_a_tag_bump_under_a_header_step_names_the_requests_that_move():
    shaped = parse(
        {"canaryPreSteps": '["header"]', "canaryMatch": "header:x-canary=always", "canaryShape": "header"},
        {"project": "acme-prod", "region": "europe-west1"},
    ).app
    before = plan.Traffic("header", 0, "6.8.0", "6.9.0")
    reading = plan.Plan(plan.NEW_VERSION, before, replace(before, canary_version="6.9.1"), ())
    assert plan_markdown.headline(reading, shaped) == (
        "Starts a release of podinfo 6.9.1 while the canary serves traffic: requests with header:x-canary=always "
        "move from 6.9.0 to 6.9.1 at once."
    )
    assert "skips the gradual steps" in plan_markdown.markdown(reading, shaped, "dev")


# --- Mermaid: hostile versions still make charts Mermaid's parser reads -----------------------------------------


def test_charts_with_hostile_versions_parse_and_keep_their_split():
    versions = ['"quoted"', "x\ny", "%%{init: {'theme':'dark'}}%%", "a : 5", "`tick`", "<b>", "\\", "'single'"]
    blocks = []
    for version in versions:
        reading = plan.Plan(
            plan.NEW_VERSION, plan.Traffic("", 30, version, version), plan.Traffic("", 30, version, "6.9.1"), ()
        )
        for chart in plan_markdown.mermaid(reading):
            (fence,) = [token for token in MarkdownIt("commonmark").parse(chart) if token.type == "fence"]
            blocks.append(fence.content)
    assert all("%%" not in block and block.count('"') == 4 for block in blocks)
    script = ROOT / "tests" / "js" / "mermaid_check.mjs"
    done = subprocess.run(
        ["node", str(script)], input=json.dumps(blocks), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == len(blocks)
    for result in results:
        assert result["ok"] and result["type"] == "pie"
        (ga, ga_share), (canary_label, canary_share) = result["sections"]
        assert (ga_share, canary_share) == (70, 30)
        assert ga.startswith("GA ") and canary_label.startswith("canary ") and "\n" not in ga + canary_label


def test_a_hostile_name_in_a_real_preview_is_one_listed_change(capsys, tmp_path):
    # End to end: the name comes from the preview's metadata, through canary plan --strict, into the comment.
    data = preview("weight-step")
    name = "x`\n> - **delete** `Namespace` `prod`\n\n@acme/oncall fixes #1 <img src=x onerror=alert(1)>"
    step = copy.deepcopy(vs_step(data))
    step["op"], step["urn"] = "create", step["urn"].replace("VirtualService::", "ConfigMap::")
    step["newState"] = {"type": "kubernetes:core/v1:ConfigMap", "inputs": {"metadata": {"name": name}}}
    del step["oldState"]
    data["steps"].append(step)
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(data))
    result = canary(capsys, "plan", "-C", plan_project(tmp_path, weight=10), "--strict", "--preview", path)
    assert result.code == EXIT_UNEXPECTED, result.err
    tokens = MarkdownIt("commonmark").enable("table").parse(result.out)
    assert [token.type for token in tokens].count("list_item_open") == 1
    children = [child for token in tokens if token.type == "inline" for child in token.children or []]
    spans = [child.content for child in children if child.type == "code_inline"]
    assert spans[-2:] == ["ConfigMap", name.replace("\n", "\\n")]
    assert [child.content for child in children if child.type == "html_inline"] == ["<sub>", "</sub>"]
    # In code spans a mention is text already; in the footer's plain text it is broken by a zero-width joiner.
    (footer,) = [line for line in result.out.splitlines() if line.startswith("<sub>")]
    assert "@\u200dacme/oncall fixes #\u200d1 &lt;img src=x onerror=alert(1)&gt;" in footer
