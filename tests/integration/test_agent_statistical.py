"""`canary agent` with `analysisJudge: statistical`, as a real process, time-compressed (2 s interval), against a
real Prometheus scraping a live exporter and a real bare git origin. The exporter's traffic follows the weight on
main, as the data plane follows a merged step after `pulumi up`.

What only the statistical judge does: a canary erring nine times as often as GA while both stay above the 99 %
guardrail (the threshold judge passes it) is rolled back, and the rollback commit says how sure the agent was.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from testkit.exporter import IstioExporter, Traffic
from testkit.livemetrics import live_istio
from tests.integration.conftest import Repo, git, stack_text
from tests.integration.test_agent import NAMESPACE, agent, origin_subjects, wait_for

TOTAL_RPS = 200.0
STATISTICAL_KEYS = """\
  istio-canary:analysisJudge: statistical
  istio-canary:analysisInterval: 2s
  istio-canary:analysisMinRequests: 20
  istio-canary:analysisErrorTolerancePct: "2"
  istio-canary:analysisThreshold: 2
  istio-canary:analysisIterations: {iterations}
  istio-canary:canaryPromotion: auto
  istio-canary:agentWatchImages: false
"""


def statistical_stack(weight: int, iterations: int = 2) -> str:
    return stack_text(namespace=NAMESPACE, weight=weight, window="10s") + STATISTICAL_KEYS.format(iterations=iterations)


@contextmanager
def data_plane(repo: Repo, exporter: IstioExporter) -> Iterator[None]:
    """Route the exporter's traffic by the weight on the origin's main, every quarter second, until the end."""
    done = threading.Event()

    def follow() -> None:
        current = None
        while not done.wait(0.25):
            text = git(repo.origin, "show", "main:Pulumi.dev.yaml")
            found = re.search(r'canaryWeight: "?(\d+)"?', text)
            weight = int(found.group(1)) if found else 0
            if weight != current:
                exporter.split(weight, TOTAL_RPS)
                current = weight

    thread = threading.Thread(target=follow, name="data-plane", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)


def test_a_canary_erring_nine_times_as_often_as_ga_is_rolled_back_with_the_odds(tmp_path, repo):
    # 0.9% errors are above the default tolerance (0.5%): nothing but the comparison can pass them
    text = statistical_stack(10, iterations=10).replace(
        'analysisErrorTolerancePct: "2"', 'analysisErrorTolerancePct: "0.5"'
    )
    repo.write_stack(text, "canary at 10%")
    ga, bad = Traffic(rps=180, error_share=0.001), Traffic(rps=20, error_share=0.009)
    log = tmp_path / "agent.log"
    with (
        live_istio(tmp_path / "prom", NAMESPACE, ga=ga, canary=bad) as (_exporter, prom),
        agent(repo, prom.url, tmp_path / "work", log),
    ):
        elapsed = wait_for(lambda: "roll back" in origin_subjects(repo)[-1], timeout=150, log=log)
    message = git(repo.origin, "log", "-1", "--format=%B", "main")
    assert origin_subjects(repo)[-1].startswith("canary: roll back podinfo-canary 6.9.0 from 10% to 0%")
    assert "Reason: canary agent: a failed analysis: the statistical judge's test decided" in message
    # How sure and why, in the commit: the counts, the ratio with its interval, the test against its boundary.
    assert "statistical judge" in message and "verdict: FAIL" in message
    assert re.search(r"canary [0-9.]+% \([0-9,]+ of [0-9,]+\) vs GA [0-9.]+% \([0-9,]+ of [0-9,]+\)", message)
    assert re.search(r"error rate [0-9.]+x GA's \(95% interval [0-9.]+x to [0-9.inf]+x?\)", message)
    assert re.search(r"exact one-sided p [0-9.e-]+ against [0-9.e-]+ \(look \d+ of \d+ planned\)", message)
    print(f"9x errors under the guardrail -> rollback: {elapsed:.1f}s")


def test_a_healthy_canary_walks_every_step_on_evidence(tmp_path, repo):
    repo.write_stack(statistical_stack(0), "new canary 6.9.0")
    healthy = Traffic(rps=TOTAL_RPS / 2, latency_ms=40)
    log = tmp_path / "agent.log"
    expected = ["to 10%", "to 60%", "to 100%", "(1/2)", "(2/2)"]

    def made() -> list[str]:
        return [s for s in origin_subjects(repo) if s.startswith(("canary: promote", "canary: finish"))]

    with (
        live_istio(tmp_path / "prom", NAMESPACE, ga=healthy, canary=healthy) as (exporter, prom),
        data_plane(repo, exporter),
        agent(repo, prom.url, tmp_path / "work", log),
    ):
        wait_for(lambda: len(made()) >= len(expected), timeout=240, log=log)
        time.sleep(2)
    subjects = made()
    assert [any(s.endswith(e) or e in s for s in subjects) for e in expected] == [True] * len(expected), subjects
    bodies = git(repo.origin, "log", "--format=%B%x00", "main").split("\0")
    promoted = [body for body in bodies if body.strip().startswith("canary: promote podinfo-canary 6.9.0 to 60%")]
    assert promoted and "statistical judge" in promoted[0] and "traffic_share" in promoted[0]
    assert "shown" in promoted[0]  # a pass is shown, never assumed
