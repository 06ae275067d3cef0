"""The agent exports the statistical judge's numbers of the newest look, and drops a number a later look lacks."""

from __future__ import annotations

from prometheus_client import generate_latest

from istio_canary.agent.metrics import Metrics


def exported(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_evidence_series_follow_the_newest_look() -> None:
    metrics = Metrics()
    metrics.set_evidence("shop", [("errors", "llr", 2.5), ("traffic_share", "observed_share", 0.11)])
    text = exported(metrics)
    assert 'canary_agent_evidence{check="errors",quantity="llr",stack="shop"} 2.5' in text
    assert 'quantity="observed_share",stack="shop"} 0.11' in text
    metrics.set_evidence("shop", [("errors", "llr", -3.25)])
    text = exported(metrics)
    assert 'canary_agent_evidence{check="errors",quantity="llr",stack="shop"} -3.25' in text
    assert "observed_share" not in text  # a stale number is never shown as current
    metrics.set_evidence("shop", [])
    assert 'stack="shop"' not in "".join(line for line in exported(metrics).splitlines() if "evidence{" in line)
