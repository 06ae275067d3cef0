"""The verdict history the agent decides on: the analysis evaluated now and at past instants one interval apart.

Prometheus keeps the data, so a restarted agent re-derives the same run of passes or failures instead of
counting in memory. It stops reading as soon as the run the decision needs is broken or long enough.
"""

from __future__ import annotations

from rollout import analysis
from rollout.agent.decide import UNAVAILABLE
from rollout.prometheus import Prometheus, PrometheusError
from rollout.stackfile import StackView


def verdict_at(view: StackView, prometheus: Prometheus, at: float) -> tuple[str, analysis.Analysis | None]:
    """The verdict at one instant, and the analysis behind it; an unreachable or garbage answer is UNAVAILABLE.
    A check query Prometheus cannot parse (BadCheckQuery) is a config error and is raised."""
    try:
        result = analysis.analyze(view, prometheus, at)
    except PrometheusError:
        return UNAVAILABLE, None
    return result.verdict.value, result


def history(
    view: StackView, prometheus: Prometheus, now: float, interval_s: float, depth: int
) -> tuple[tuple[str, ...], analysis.Analysis | None]:
    """Verdicts newest first (at most `depth`, while they repeat the newest one), and the newest analysis."""
    newest, latest = verdict_at(view, prometheus, now)
    verdicts = [newest]
    for k in range(1, depth):
        verdict, _ = verdict_at(view, prometheus, now - k * interval_s)
        verdicts.append(verdict)
        if verdict != newest:
            break
    return tuple(verdicts), latest
