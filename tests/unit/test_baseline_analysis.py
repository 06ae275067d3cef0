"""The statistical analysis with analysisBaseline, on an in-memory metrics backend (testkit/memory_metrics.py):
at a weight step the canary is compared with <app>-baseline, not with GA, and the findings say so; the traffic
share is still the canary's of everything the route sent; a shape step, which sends the baseline nothing, is
still compared with GA."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from istio_canary import analysis
from istio_canary.metrics import istio_observer
from istio_canary.release.looks import judged_window
from istio_canary.release.settings import parse
from istio_canary.release.verdict import Verdict
from istio_canary.stackfile import StackView
from testkit.memory_metrics import MemoryBackend, MemoryProvider, Vector, serving

AT = 1_800_000_000.0
LIVE_S = 600  # the step has been live 10 analysisIntervals


def view(**config: Any) -> StackView:
    keys = {"canaryVersion": "6.1.0", "gaVersion": "6.0.0", "analysisJudge": "statistical", **config}
    settings = parse({key: str(value) for key, value in keys.items()}, check_environment=False)
    return StackView(settings.app, settings.release, settings.layout)


def serve(backend: MemoryBackend, workload: str, requests: float, errors: float) -> None:
    """`workload`'s counts over the judged window: every workload alike in latency (a histogram by `le`)."""
    window = f"{LIVE_S}s"

    def text(template: str) -> str:
        return istio_observer.render(template, "test", workload, window)

    backend.answers[text(istio_observer.requests_template())] = requests
    backend.answers[text(istio_observer.errors_template())] = errors
    cumulative = {"25": 0.2, "50": 0.6, "100": 0.9, "+Inf": 1.0}
    backend.answers[text(istio_observer.buckets_template())] = Vector.keyed(
        "le", {bound: share * requests for bound, share in cumulative.items()}
    )


@pytest.fixture
def backend() -> Iterator[MemoryBackend]:
    # A canary that errs as often as the fresh baseline (2 %), both far more than the long-running GA (0.05 %).
    memory = MemoryBackend()
    serve(memory, "podinfo-canary", 4000, 80)
    serve(memory, "podinfo-baseline", 4000, 80)
    serve(memory, "podinfo-ga", 32000, 16)
    yield memory


def analyze(backend: MemoryBackend, stack: StackView) -> analysis.Analysis:
    with serving(backend) as url:
        return analysis.analyze(stack, MemoryProvider(url), AT, step_age_s=LIVE_S)


def by_name(result: analysis.Analysis) -> dict[str, Any]:
    return {finding.name: finding for finding in result.findings}


def test_at_a_weight_step_the_canary_is_compared_with_the_baseline(backend: MemoryBackend) -> None:
    with_baseline = analyze(backend, view(canaryWeight=10, analysisBaseline="true"))
    against_ga = analyze(backend, view(canaryWeight=10))
    assert against_ga.verdict is Verdict.FAIL  # 2 % against GA's 0.05 %: the comparison GA gives
    assert with_baseline.verdict is not Verdict.FAIL
    errors = by_name(with_baseline)["errors"]
    assert dict(errors.numbers)["ga_requests"] == 4000  # the baseline's counts, not GA's 32000
    assert "vs baseline 2.00%" in errors.reason and "GA" not in errors.reason
    assert "baseline's rate" in errors.statistic and "GA" not in errors.statistic
    assert with_baseline.ga.workload == "podinfo-baseline"
    assert "vs baseline" in with_baseline.summary()
    assert "vs GA" in against_ga.summary()  # the words without a baseline are GA's, as before


def test_the_traffic_share_is_the_canarys_of_all_three(backend: MemoryBackend) -> None:
    result = analyze(backend, view(canaryWeight=10, analysisBaseline="true"))
    share = by_name(result)["traffic_share"]
    assert dict(share.numbers)["observed_share"] == pytest.approx(4000 / 40000)
    assert share.result == "pass"  # 10 % for a weight of 10 %, not 50 % of canary + baseline


def test_a_shape_step_is_compared_with_ga_which_served_it(backend: MemoryBackend) -> None:
    stack = view(canaryWeight=0, canaryShape="mirror", canaryPreSteps='["mirror"]', analysisBaseline="true")
    result = analyze(backend, stack)
    assert result.ga.workload == "podinfo-ga"
    assert dict(by_name(result)["errors"].numbers)["ga_requests"] == 32000
    assert not any("podinfo-baseline" in text for text, _ in backend.asked)


def test_at_100_percent_the_baseline_before_the_step_is_the_comparator(backend: MemoryBackend) -> None:
    serve(backend, "podinfo-baseline", 0, 0)
    stack = view(canaryWeight=100, analysisBaseline="true")
    result = analyze(backend, stack)
    judged = judged_window(stack.release, LIVE_S)
    assert judged is not None
    requests = istio_observer.render(istio_observer.requests_template(), "test", "podinfo-baseline", judged.duration)
    assert (requests, AT - judged.seconds) in backend.asked
    assert result.ga.workload == "podinfo-baseline"
