"""A capacity-safe rollback: when GA is autoscaled (appMaxReplicas) it runs for its share of the traffic, and a
rollback sends it the whole at once. The rollback commit raises GA's autoscaler minimum (gaRollbackReplicas) to the
pods GA and the canary ran; the program renders it as the GA HorizontalPodAutoscaler's minReplicas (the canary's
stays), capped at appMaxReplicas; unset or 0, every manifest is what it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from istio_canary.actions.rollback import ga_floor
from istio_canary.release.settings import ConfigError, parse
from istio_canary.stackfile import StackFile
from testkit.manifests import stack_manifests

ROOT = Path(__file__).resolve().parents[2]
AUTOSCALED = {"appMaxReplicas": "6", "replicas": "2"}


def hpa_minimums(manifests: list[dict]) -> dict[str, int]:
    return {
        m["metadata"]["name"]: m["spec"]["minReplicas"] for m in manifests if m["kind"] == "HorizontalPodAutoscaler"
    }


def canonical(manifests: list[dict]) -> str:
    return yaml.safe_dump(sorted(manifests, key=lambda m: (m["kind"], m["metadata"]["name"])), sort_keys=True)


@pytest.mark.parametrize(("floor", "ga"), [("5", 5), ("6", 6), ("9", 6), ("1", 2), ("0", 2)])
def test_ga_autoscaler_minimum_is_the_floor_within_replicas_and_max(floor, ga):
    assert hpa_minimums(stack_manifests(**AUTOSCALED, gaRollbackReplicas=floor)) == {
        "podinfo-ga": ga,
        "podinfo-canary": 2,  # the canary scales for its own share, as before
    }


def test_the_floor_changes_only_ga_autoscalers_minimum():
    before = stack_manifests(**AUTOSCALED)
    after = stack_manifests(**AUTOSCALED, gaRollbackReplicas="5")
    changed = [b for b, a in zip(sorted(before, key=str), sorted(after, key=str), strict=True) if a != b]
    assert len(before) == len(after)
    assert [(m["kind"], m["metadata"]["name"]) for m in changed] == [("HorizontalPodAutoscaler", "podinfo-ga")]


@pytest.mark.parametrize("overrides", [{}, AUTOSCALED], ids=["fixed", "autoscaled"])
def test_unset_or_zero_renders_every_manifest_as_before(overrides):
    assert canonical(stack_manifests(**overrides, gaRollbackReplicas="0")) == canonical(stack_manifests(**overrides))


def test_without_an_autoscaler_the_floor_renders_nothing():
    manifests = stack_manifests(gaRollbackReplicas="5")
    assert hpa_minimums(manifests) == {}
    assert canonical(manifests) == canonical(stack_manifests())


@pytest.mark.parametrize("value", ["-1", "101", "five", "1.5"])
def test_a_bad_floor_is_refused_naming_the_key(value):
    with pytest.raises(ConfigError, match="gaRollbackReplicas"):
        parse({"gaRollbackReplicas": value}, {"project": "acme-prod", "region": "europe-west1"})


# --- what `canary rollback` writes ------------------------------------------------------------------------------


def stack_file(tmp_path: Path, keys: dict[str, object], project_file: Path = ROOT / "Pulumi.yaml") -> StackFile:
    shutil.copy(project_file, tmp_path / "Pulumi.yaml")
    lines = ["config:"] + [f"  istio-canary:{key}: {value}" for key, value in keys.items()]
    (tmp_path / "Pulumi.dev.yaml").write_text("\n".join(lines) + "\n")
    return StackFile.for_stack(tmp_path, "dev")


@pytest.mark.parametrize(
    ("keys", "serving", "floor"),
    [
        ({"appMaxReplicas": 6, "replicas": 2, "canaryWeight": 60}, None, 4),  # from the config: both minimums
        ({"appMaxReplicas": 6, "replicas": 2, "canaryWeight": 60}, 5, 5),  # read from the cluster
        ({"appMaxReplicas": 6, "replicas": 2, "canaryWeight": 60}, 40, 6),  # never above the autoscaler's max
        ({"appMaxReplicas": 6, "replicas": 2, "canaryWeight": 60}, 2, None),  # replicas already hold them
        ({"appMaxReplicas": 6, "replicas": 2, "gaRollbackReplicas": 5}, 4, None),  # a higher floor stays
        ({"appMaxReplicas": 6, "replicas": 2, "gaRollbackReplicas": 3}, 4, 4),  # a lower one is raised
        ({"replicas": 2, "canaryWeight": 60}, 5, None),  # no autoscaler: replicas are fixed
        ({"appMaxReplicas": '"6"', "replicas": '"2"', "canaryWeight": '"60"'}, None, 4),  # as `pulumi config set`
    ],
)
def test_the_rollback_floor(tmp_path, keys, serving, floor):
    found, note = ga_floor(stack_file(tmp_path, keys), serving)
    assert found == floor
    assert ("gaRollbackReplicas" in note) == (floor is not None)


def test_a_repository_whose_project_file_lacks_the_key_gets_no_floor(tmp_path):
    """Its program would refuse a key its Pulumi.yaml does not declare: the rollback's `up` must not fail."""
    old = tmp_path / "old-Pulumi.yaml"
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    del project["config"]["gaRollbackReplicas"]
    old.write_text(yaml.safe_dump(project))
    repo = tmp_path / "repo"
    repo.mkdir()
    assert ga_floor(stack_file(repo, {"appMaxReplicas": 6, "replicas": 2, "canaryWeight": 60}, old), 5) == (None, "")


def test_an_unreadable_capacity_key_is_said_and_never_stops_the_rollback(tmp_path):
    found, note = ga_floor(stack_file(tmp_path, {"appMaxReplicas": "lots", "canaryWeight": 60}), 5)
    assert found is None and "left as it is" in note and "appMaxReplicas" in note


# --- what `canary plan` says about it ---------------------------------------------------------------------------

PREFIX = "urn:pulumi:local::istio-canary"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def _vs(weight: int) -> dict:
    route = [
        {"destination": {"host": "podinfo", "subset": "ga"}, "weight": 100 - weight},
        {"destination": {"host": "podinfo", "subset": "canary"}, "weight": weight},
    ]
    return {
        "type": "kubernetes:networking.istio.io/v1:VirtualService",
        "inputs": {"metadata": {"name": "podinfo", "namespace": "plan"}, "spec": {"http": [{"route": route}]}},
    }


def _hpa(minimum: int, namespace: str = "plan") -> dict:
    return {
        "type": HPA,
        "inputs": {"metadata": {"name": "podinfo-ga", "namespace": namespace}, "spec": {"minReplicas": minimum}},
    }


def preview(before: int, after: int, floor: tuple[int, int] | None, hpa_urn: str = "") -> dict:
    steps = [
        {
            "op": "same",
            "urn": f"{PREFIX}::pulumi:pulumi:Stack::istio-canary-local",
            "newState": {"type": "pulumi:pulumi:Stack", "inputs": {}},
        },
        {
            "op": "update",
            "urn": f"{PREFIX}::istio-canary:app:CanaryApp$kubernetes:networking.istio.io/v1:VirtualService::podinfo-virtualservice",
            "oldState": _vs(before),
            "newState": _vs(after),
        },
    ]
    if floor is not None:
        urn = hpa_urn or f"{PREFIX}::istio-canary:app:CanaryApp${HPA}::podinfo-ga-autoscaler"
        steps.append({"op": "update", "urn": urn, "oldState": _hpa(floor[0]), "newState": _hpa(floor[1])})
    return {"steps": steps}


def plan_app(weight: int):
    base = {"gaVersion": "6.8.0", "canaryVersion": "6.9.0", "namespace": "plan", "canaryWeight": str(weight)}
    return parse({**base, **AUTOSCALED}, {"project": "acme-prod", "region": "europe-west1"}).app


@pytest.mark.parametrize(
    ("before", "after", "floor"),
    [(60, 0, (2, 4)), (0, 10, (4, 2))],
    ids=["the rollback raises it", "the next release's first step returns it"],
)
def test_the_plan_expects_gas_floor_with_a_rollback_and_the_next_start(before, after, floor):
    from istio_canary import plan

    reading = plan.read(preview(before, after, floor), plan_app(after))
    assert reading.kind in (plan.ROLLBACK, plan.MOVE) and reading.unexpected == ()


def test_the_plan_still_flags_gas_floor_on_a_later_step_or_another_object():
    from istio_canary import plan

    later = plan.read(preview(10, 60, (2, 4)), plan_app(60))
    assert [change.name for change in later.unexpected] == ["podinfo-ga"]
    elsewhere = f"{PREFIX}::istio-canary:app:Other${HPA}::podinfo-ga-autoscaler"
    lookalike = plan.read(preview(60, 0, (2, 4), hpa_urn=elsewhere), plan_app(0))
    assert [change.name for change in lookalike.unexpected] == ["podinfo-ga"]


BASELINE_KEYS = {"analysisJudge": "statistical", "analysisBaseline": "true"}


@pytest.mark.parametrize(
    ("keys", "serving", "floor"),
    [
        ({"appMaxReplicas": 8, "replicas": 2, "canaryWeight": 40, **BASELINE_KEYS}, None, 6),  # three minimums
        ({"appMaxReplicas": 5, "replicas": 2, "canaryWeight": 40, **BASELINE_KEYS}, None, 5),  # capped at the max
        ({"appMaxReplicas": 8, "replicas": 2, "canaryWeight": 40, **BASELINE_KEYS}, 7, 7),  # read from the cluster
    ],
)
def test_with_a_baseline_the_floor_counts_its_pods_too(tmp_path, keys, serving, floor):
    """The baseline served min(w, 100 - w) of the traffic: after the rollback GA takes that share as well."""
    found, note = ga_floor(stack_file(tmp_path, keys), serving)
    assert found == floor
    assert "GA, the baseline and the canary" in note
