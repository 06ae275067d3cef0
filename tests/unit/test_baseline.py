"""analysisBaseline: a fresh <app>-baseline running gaVersion at the canary's share. The split that gives it that
share, the refusal without the statistical judge, the objects the program declares for it (under Pulumi mocks) and
`canary status`; without the key nothing of it exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.canary_app import FRESH_FOR, SUBSET_LABEL
from components.dashboard import canary_dashboard
from istio_canary.cli import main
from istio_canary.exits import EXIT_OK
from istio_canary.release.names import traffic_split
from istio_canary.release.settings import ConfigError, parse
from testkit.stackfiles import stack_text

STATISTICAL = {"analysisJudge": "statistical", "analysisBaseline": "true"}


@pytest.mark.parametrize(
    ("weight", "ga", "baseline"),
    [(0, 100, 0), (1, 98, 1), (10, 80, 10), (50, 0, 50), (60, 0, 40), (99, 0, 1), (100, 0, 0)],
)
def test_the_baseline_gets_the_canarys_share_while_ga_has_it_to_give(weight: int, ga: int, baseline: int) -> None:
    split = traffic_split(weight, baseline=True)
    assert split == {"ga": ga, "baseline": baseline, "canary": weight}
    assert list(split) == ["ga", "baseline", "canary"]  # GA first, as the routers expect


def test_without_a_baseline_the_split_is_unchanged() -> None:
    for weight in range(101):
        assert traffic_split(weight, baseline=False) == traffic_split(weight) == {"ga": 100 - weight, "canary": weight}
    with pytest.raises(ValueError, match="not a percentage"):
        traffic_split(101, baseline=True)


def test_a_baseline_is_read_from_the_stack_and_off_by_default() -> None:
    versions = {"canaryVersion": "6.1.0", "gaVersion": "6.0.0"}
    assert parse(versions, check_environment=False).release.baseline is False
    assert parse({**versions, **STATISTICAL}, check_environment=False).release.baseline is True


@pytest.mark.parametrize("judge", [None, "threshold"])
def test_a_baseline_without_the_statistical_judge_is_refused_naming_both_keys(judge: str | None) -> None:
    config = {"canaryVersion": "6.1.0", "gaVersion": "6.0.0", "analysisBaseline": "true"}
    if judge:
        config["analysisJudge"] = judge
    with pytest.raises(ConfigError, match="istio-canary:analysisBaseline: true needs istio-canary:analysisJudge"):
        parse(config, check_environment=False)


def test_a_baseline_that_is_not_a_boolean_is_refused() -> None:
    config = {"canaryVersion": "6.1.0", "gaVersion": "6.0.0", "analysisJudge": "statistical"}
    with pytest.raises(ConfigError, match=r"istio-canary:analysisBaseline: .*is not allowed; expected true or false"):
        parse({**config, "analysisBaseline": "yes"}, check_environment=False)


def _routes(run) -> dict[str, float]:
    (http,) = run.one("VirtualService", "podinfo").inputs["spec"]["http"]
    return {route["destination"]["subset"]: route["weight"] for route in http["route"]}


@pytest.mark.parametrize(("weight", "ga", "baseline"), [(0, 100, 0), (10, 80, 10), (60, 0, 40), (100, 0, 0)])
def test_the_program_routes_the_baseline_its_share(program, weight: int, ga: int, baseline: int) -> None:
    run = program(canaryWeight=weight, **STATISTICAL)
    assert _routes(run) == {"ga": ga, "baseline": baseline, "canary": weight}
    assert run.outputs["built"].app.split == {"ga": ga, "baseline": baseline, "canary": weight}


def test_the_baseline_runs_ga_in_the_canarys_shape_and_its_subset_selects_it(program) -> None:
    run = program(gaVersion="6.8.0", canaryVersion="6.9.1", replicas=3, **STATISTICAL)
    baseline = run.one("Deployment", "podinfo-baseline").inputs["spec"]
    canary = run.one("Deployment", "podinfo-canary").inputs["spec"]
    (container,) = baseline["template"]["spec"]["containers"]
    (canary_container,) = canary["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/stefanprodan/podinfo:6.8.0"
    assert {k: v for k, v in container.items() if k != "image"} == {
        k: v for k, v in canary_container.items() if k != "image"
    }
    assert baseline["replicas"] == canary["replicas"] == 3
    labels = baseline["template"]["metadata"]["labels"]
    assert labels == {"app": "podinfo", SUBSET_LABEL: "baseline", "version": "6.8.0"}
    assert baseline["selector"]["matchLabels"] == {"app": "podinfo", SUBSET_LABEL: "baseline"}
    subsets = run.one("DestinationRule", "podinfo").inputs["spec"]["subsets"]
    assert {"name": "baseline", "labels": {SUBSET_LABEL: "baseline"}} in subsets
    assert [subset["name"] for subset in subsets] == ["ga", "baseline", "canary"]


def test_a_new_canary_version_restarts_the_baseline_and_only_that_changes_in_it(program) -> None:
    before = program(canaryVersion="6.9.1", **STATISTICAL).one("Deployment", "podinfo-baseline").inputs["spec"]
    after = program(canaryVersion="6.9.2", **STATISTICAL).one("Deployment", "podinfo-baseline").inputs["spec"]
    assert before["template"]["metadata"]["annotations"] == {FRESH_FOR: "6.9.1"}
    assert after["template"]["metadata"]["annotations"] == {FRESH_FOR: "6.9.2"}
    del before["template"]["metadata"]["annotations"], after["template"]["metadata"]["annotations"]
    assert before == after  # same image (gaVersion), selector and pods: a rolling restart, nothing else


def test_an_autoscaled_baseline_scales_like_the_canary(program) -> None:
    run = program(appMaxReplicas=6, **STATISTICAL)
    baseline = run.one("HorizontalPodAutoscaler", "podinfo-baseline").inputs["spec"]
    canary = run.one("HorizontalPodAutoscaler", "podinfo-canary").inputs["spec"]
    assert baseline["scaleTargetRef"]["name"] == "podinfo-baseline"
    assert {k: v for k, v in baseline.items() if k != "scaleTargetRef"} == {
        k: v for k, v in canary.items() if k != "scaleTargetRef"
    }


def test_without_the_key_there_is_no_baseline_anywhere(program) -> None:
    run = program(analysisJudge="statistical")
    assert not [r for r in run.resources if "baseline" in r.name]
    subsets = run.one("DestinationRule", "podinfo").inputs["spec"]["subsets"]
    assert [subset["name"] for subset in subsets] == ["ga", "canary"]
    assert set(_routes(run)) == {"ga", "canary"}


def test_the_request_rate_panel_shows_the_baseline_only_when_there_is_one() -> None:
    plain = canary_dashboard("shop", "web", ())["panels"][0]["targets"][0]["expr"]
    with_baseline = canary_dashboard("shop", "web", (), baseline=True)["panels"][0]["targets"][0]["expr"]
    assert 'destination_workload=~"web-(ga|canary)"' in plain
    assert 'destination_workload=~"web-(ga|baseline|canary)"' in with_baseline
    assert with_baseline.replace("|baseline", "") == plain


def test_status_shows_the_baselines_share_and_ga_what_is_left(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "Pulumi.yaml").write_text((root / "Pulumi.yaml").read_text())
    keys = "".join(f"  istio-canary:{key}: {value}\n" for key, value in STATISTICAL.items())
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_text(weight=60) + keys)
    assert main(["status", "-C", str(tmp_path), "--json"]) == EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    assert shown["ga"]["weight"] == 0
    assert shown["baseline"] == {"workload": "podinfo-baseline", "version": "6.8.0", "weight": 40}
    assert shown["canary"]["weight"] == 60
    assert main(["status", "-C", str(tmp_path)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["baseline", "podinfo-baseline", "6.8.0", "40%"] for line in lines)
