"""The verdict history the agent decides on: the analysis evaluated now and at past instants one interval apart.

Prometheus keeps the data, so a restarted agent re-derives the same run of passes or failures instead of
counting in memory. It stops reading as soon as the run the decision needs is broken or long enough.
"""

from __future__ import annotations

from rollout import analysis
from rollout.agent.decide import UNAVAILABLE
from rollout.prometheus import Prometheus, PrometheusError
from rollout.stackfile import StackView


def verdict_at(view: StackView, prometheus: Prometheus, at: float) -> str:
    """The verdict at one instant; an unreachable or garbage answer is UNAVAILABLE. A check query Prometheus
    cannot parse (BadCheckQuery) is a config error and is raised."""
    try:
        return analysis.analyze(view, prometheus, at).verdict.value
    except PrometheusError:
        return UNAVAILABLE


def history(view: StackView, prometheus: Prometheus, now: float, interval_s: float, depth: int) -> tuple[str, ...]:
    """Verdicts newest first: at most `depth`, and only while they repeat the newest one."""
    verdicts = [verdict_at(view, prometheus, now)]
    for k in range(1, depth):
        verdicts.append(verdict_at(view, prometheus, now - k * interval_s))
        if verdicts[-1] != verdicts[0]:
            break
    return tuple(verdicts)
