"""The agent's exported series for one decision: the live shape is the one series at 1 (the dashboard's panel)."""

from __future__ import annotations

from dataclasses import replace

from istio_canary.agent.judge import _record_metrics
from istio_canary.agent.metrics import Metrics
from istio_canary.release.decide import decide
from istio_canary.release.names import AGENT_SHAPE
from tests.unit.test_agent_decide import SHAPED


def shapes_exported(metrics: Metrics) -> dict[str, float]:
    return {
        sample.labels["shape"]: sample.value
        for family in metrics.registry.collect()
        if family.name == AGENT_SHAPE
        for sample in family.samples
    }


def test_the_live_shape_is_the_one_series_at_one():
    metrics = Metrics()
    _record_metrics(metrics, "dev", SHAPED, decide(SHAPED))
    assert shapes_exported(metrics) == {"weights": 0, "mirror": 1, "header": 0}
    weights = replace(SHAPED, shape="", live=replace(SHAPED.live, shape=""))
    _record_metrics(metrics, "dev", weights, decide(weights))
    assert shapes_exported(metrics) == {"weights": 1, "mirror": 0, "header": 0}
