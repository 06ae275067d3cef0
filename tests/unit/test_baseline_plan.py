"""`canary plan` with analysisBaseline, on the captured previews of tests/golden/plan: a weight step names the
baseline's share beside GA's and the canary's; finish 1/2 expects the baseline's Deployment to move with GA's (it
runs gaVersion), and a new canary version expects it to restart; without a baseline the same baseline change is one to stop and check."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from istio_canary import plan as plans
from istio_canary import plan_markdown
from istio_canary.release.settings import parse

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plan"
BASE = {"gaVersion": "6.8.0", "canaryVersion": "6.9.0", "namespace": "plan"}
GCP = {"project": "acme-prod", "region": "europe-west1"}


def preview(case: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{case}.preview.json").read_text())


def app(**after: str):
    return parse({**BASE, **after}, GCP).app


def with_baseline_update(captured: dict[str, Any], like: str) -> dict[str, Any]:
    """A captured preview as a stack with a baseline previews it: the baseline's Deployment updated like `like`'s
    (ga, canary)."""
    (step,) = [step for step in captured["steps"] if step["urn"].endswith(f"Deployment::podinfo-{like}")]
    baseline = json.loads(json.dumps(step).replace(f"podinfo-{like}", "podinfo-baseline"))
    changed = copy.deepcopy(captured)
    changed["steps"].append(baseline)
    return changed


def test_finish_ga_expects_the_baseline_to_move_with_ga() -> None:
    finished = app(canaryWeight="100", gaVersion="6.9.0")
    changed = with_baseline_update(preview("finish-ga"), "ga")
    reading = plans.read(changed, finished, baseline=True)
    assert reading.kind == plans.FINISH_GA
    assert reading.unexpected == ()
    without = plans.read(changed, finished)
    assert [change.words() for change in without.unexpected] == ["update Deployment podinfo-baseline"]


def test_a_new_canary_version_expects_the_baseline_to_restart_beside_it() -> None:
    bumped = app(canaryWeight="10", canaryVersion="6.9.1")
    changed = with_baseline_update(preview("tag-bump"), "canary")
    reading = plans.read(changed, bumped, baseline=True)
    assert (reading.kind, reading.unexpected) == (plans.NEW_VERSION, ())
    assert [change.words() for change in plans.read(changed, bumped).unexpected] == [
        "update Deployment podinfo-baseline"
    ]


def test_a_weight_step_names_the_baselines_share() -> None:
    stepped = app(canaryWeight="10")
    reading = plans.read(preview("weight-step"), stepped, baseline=True)
    assert (reading.kind, reading.unexpected) == (plans.MOVE, ())
    assert reading.split(reading.after) == {"ga": 80, "baseline": 10, "canary": 10}
    headline = plan_markdown.headline(reading, stepped)
    assert headline == (
        "Moves podinfo from 0 % to 10 % canary (6.9.0); the baseline (6.8.0) gets 10 %; GA 6.8.0 keeps 80 %."
    )
    text = plan_markdown.markdown(reading, stepped, "local")
    assert "| GA 6.8.0 | 100 % | 80 % |" in text
    assert "| baseline 6.8.0 | 0 % | 10 % |" in text
    assert "| canary 6.9.0 | 0 % | 10 % |" in text
    assert '"baseline 6.8.0" : 10' in text  # the after-merge pie


def test_without_a_baseline_the_plan_says_nothing_of_one() -> None:
    stepped = app(canaryWeight="10")
    reading = plans.read(preview("weight-step"), stepped)
    assert reading.split(reading.after) == {"ga": 90, "canary": 10}
    assert (
        plan_markdown.headline(reading, stepped)
        == "Moves podinfo from 0 % to 10 % canary (6.9.0); GA 6.8.0 keeps 90 %."
    )
    assert "baseline" not in plan_markdown.markdown(reading, stepped, "local")
