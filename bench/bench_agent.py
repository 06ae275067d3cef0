"""Release agent timings: how long from a canary turning bad to the rollback commit on the origin, against the
expected threshold x interval, with compressed settings (2 s interval, 10 s window, a live exporter scraped every
second by a real Prometheus); the same for the defaults and the old cron path, computed from their settings; and
the agent's CPU time and peak memory over a compressed release (0 -> 10 -> 60 -> 100 -> finish).
Prints numbers only; exits 1 with a failure line when a run did not end as expected."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from istio_canary.release.names import duration_seconds  # after the sys.path set-up above
from istio_canary.release.settings import schema
from testkit import servers
from testkit.agentkit import bare_origin, git, start_agent, stop
from testkit.exporter import Traffic
from testkit.livemetrics import live_istio
from testkit.stackfiles import stack_text

RUNS = 3
# Passes per step of the compressed release: 3 keeps `make bench` short (~20 s); BENCH_AGENT_ITERATIONS=60 makes
# it a ~10-minute release (5 steps x 60 x 2 s) for the agent's steady-state CPU and memory.
RELEASE_ITERATIONS = int(os.environ.get("BENCH_AGENT_ITERATIONS", "3"))
INTERVAL_S = 2
THRESHOLD = 2
HEALTHY = Traffic(rps=20, latency_ms=40)
KEYS = """\
  istio-canary:analysisInterval: {interval}s
  istio-canary:analysisMinRequests: 20
  istio-canary:analysisThreshold: {threshold}
  istio-canary:analysisIterations: {iterations}
  istio-canary:canaryPromotion: auto
  istio-canary:agentWatchImages: false  # no registry here (image automation: test_agent_images.py)
"""
failures: list[str] = []


def subjects(bare: Path) -> list[str]:
    return git(bare, "log", "--format=%s", "main").splitlines()


def wait(predicate, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def cpu_and_peak(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and peak resident memory in KiB of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM")
    )
    return cpu, peak


def detection(tmp: Path) -> list[float]:
    times = []
    for run in range(RUNS):
        work = tmp / f"detect{run}"
        bare = bare_origin(
            work,
            stack_text(namespace="live", weight=10, window="10s")
            + KEYS.format(interval=INTERVAL_S, threshold=THRESHOLD, iterations=1000),
        )
        with live_istio(work / "prom", "live", ga=HEALTHY, canary=HEALTHY) as (exporter, prom):
            agent = start_agent(bare, prom.url, work / "clone", servers.free_port())
            try:
                time.sleep(3 * INTERVAL_S)
                exporter.set("canary", error_share=0.5)
                elapsed = wait(lambda bare=bare: "roll back" in subjects(bare)[0], timeout=60)
            finally:
                stop(agent)
        if elapsed is None:
            failures.append(f"detection run {run}: no rollback within 60 s")
        else:
            times.append(elapsed)
    return times


def release(tmp: Path) -> tuple[float, float, int]:
    """A whole compressed release; (seconds, agent CPU seconds, agent peak RSS KiB)."""
    work = tmp / "release"
    bare = bare_origin(
        work,
        stack_text(namespace="live", weight=0, window="10s")
        + KEYS.format(interval=INTERVAL_S, threshold=THRESHOLD, iterations=RELEASE_ITERATIONS),
    )
    with live_istio(work / "prom", "live", ga=HEALTHY, canary=HEALTHY) as (_exporter, prom):
        agent = start_agent(bare, prom.url, work / "clone", servers.free_port())
        try:
            limit = 300 + 12 * RELEASE_ITERATIONS * INTERVAL_S
            elapsed = wait(lambda: subjects(bare)[0].startswith("canary: finish podinfo 6.9.0 (2/2)"), timeout=limit)
            cpu, peak = cpu_and_peak(agent.pid)
        finally:
            stop(agent)
    if elapsed is None:
        failures.append("release: not finished in time")
        return 0.0, 0.0, 0
    return elapsed, cpu, peak


def main() -> int:
    defaults = {key: spec["default"] for key, spec in schema().items()}
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        times = detection(tmp)
        elapsed, cpu, peak = release(tmp)
    if times:
        print(f"agent_detect_to_rollback_compressed_median_s {statistics.median(times):.1f}")
        print(f"agent_detect_to_rollback_compressed_max_s {max(times):.1f}")
    print(f"agent_detect_expected_compressed_s {THRESHOLD * INTERVAL_S}")
    default_s = defaults["analysisThreshold"] * duration_seconds(defaults["analysisInterval"])
    print(f"agent_detect_expected_default_s {default_s} (+ up to one interval and one scrape)")
    # The scheduled workflow it replaces: a 30-minute cron, plus GitHub's usual schedule delay (often minutes).
    print("cron_path_worst_case_s 1800 (+ schedule delay; and it could not reach an in-cluster Prometheus at all)")
    print(f"agent_release_iterations_per_step {RELEASE_ITERATIONS}")
    print(f"agent_release_compressed_s {elapsed:.1f}")
    print(f"agent_release_cpu_s {cpu:.2f}")
    print(f"agent_release_cpu_share_pct {100 * cpu / elapsed if elapsed else 0:.1f}")
    print(f"agent_release_peak_rss_mib {peak / 1024:.0f}")
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
