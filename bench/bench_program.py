"""Prints how long the whole program takes to evaluate under Pulumi mocks, and the unit suite's wall time."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testkit.mocks import config, run_program

RUNS = 20


def main() -> None:
    run_program(config())  # warm imports and provider SDK modules
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        run_program(config(canaryWeight=60))
        samples.append(time.perf_counter() - start)
    print(f"program_eval_under_mocks_median_ms {statistics.median(samples) * 1000:.1f}")
    print(f"program_eval_under_mocks_min_ms {min(samples) * 1000:.1f}")
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    print(f"unit_suite_wall_s {time.perf_counter() - start:.1f}")
    print(f"unit_suite_exit_code {result.returncode}")


if __name__ == "__main__":
    main()
