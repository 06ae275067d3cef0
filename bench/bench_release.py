"""Release tool timings: `canary analyze` over 30 minutes of Istio metrics in a real Prometheus (the analysis
window is 30m, so every query covers all of it), in-process and as a `python -m istio_canary` subprocess (start-up
included), and one full `canary promote` step (analysis + stack edit + git commit) in a real repository.
Prints numbers only; exits 1 with a failure line when any run did not exit as expected."""

from __future__ import annotations

import contextlib
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from istio_canary.cli import main  # after the sys.path set-up above
from testkit import servers
from testkit.stackfiles import stack_text

ANALYZE_RUNS = 20
CLI_RUNS = 5
PROMOTE_RUNS = 10
WINDOW = "30m"  # the whole generated data set
failures: list[str] = []


def check(name: str, code: int) -> None:
    """Record a run that did not exit 0 (every benchmarked run is a healthy canary and must pass)."""
    if code != 0:
        failures.append(f"{name} exited {code}")


def quiet(argv: list[str]) -> int:
    """Run `canary` in-process with its output swallowed."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(argv)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=60)


def make_repo(base: Path) -> Path:
    """A bare origin and a clone with Pulumi.yaml and a commented stack file."""
    origin, work = base / "origin.git", base / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True, timeout=30)
    subprocess.run(["git", "clone", "-q", str(origin), str(work)], check=True, capture_output=True, timeout=30)
    for key, value in (("user.name", "bench"), ("user.email", "bench@example.com"), ("commit.gpgsign", "false")):
        git(work, "config", key, value)
    git(work, "checkout", "-q", "-b", "main")
    shutil.copy(ROOT / "Pulumi.yaml", work / "Pulumi.yaml")
    return work


def set_weight(work: Path, weight: int) -> None:
    (work / "Pulumi.dev.yaml").write_text(stack_text(namespace="healthy", weight=weight, window=WINDOW))
    git(work, "add", "Pulumi.yaml", "Pulumi.dev.yaml")
    git(work, "commit", "-qm", f"weight {weight}")


def ms(samples: list[float], name: str) -> None:
    print(f"{name}_median_ms {statistics.median(samples) * 1000:.1f}")
    print(f"{name}_min_ms {min(samples) * 1000:.1f}")


def main_bench() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        start = time.perf_counter()
        with servers.prometheus(base / "prom", duration_s=30 * 60) as prom:
            print(f"prometheus_backfill_and_start_s {time.perf_counter() - start:.2f}")
            stack_dir = base / "stack"
            stack_dir.mkdir()
            shutil.copy(ROOT / "Pulumi.yaml", stack_dir / "Pulumi.yaml")  # canary -C reads the schema from there
            (stack_dir / "Pulumi.dev.yaml").write_text(stack_text(namespace="healthy", weight=10, window=WINDOW))
            argv = ["analyze", "-C", str(stack_dir), "--prometheus", prom.url, "--at", str(prom.end), "--json"]
            samples = []
            for _ in range(ANALYZE_RUNS):
                t0 = time.perf_counter()
                check("analyze", quiet(argv))
                samples.append(time.perf_counter() - t0)
            ms(samples, "analyze_30m_window")

            samples = []
            for _ in range(CLI_RUNS):
                t0 = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "istio_canary", *argv],
                    cwd=ROOT,
                    capture_output=True,
                    timeout=120,
                    check=False,
                )
                samples.append(time.perf_counter() - t0)
                check("analyze (subprocess)", done.returncode)
            ms(samples, "analyze_30m_window_cli_process")

            work = make_repo(base / "git")
            samples = []
            for _ in range(PROMOTE_RUNS):
                set_weight(work, 10)
                t0 = time.perf_counter()
                code = quiet(
                    ["promote", "-C", str(work), "--prometheus", prom.url, "--at", str(prom.end), "--no-notify"]
                )
                samples.append(time.perf_counter() - t0)
                check("promote", code)
            ms(samples, "promote_step")
    for failure in failures:
        print(f"FAILED: {failure}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main_bench()
