"""Image automation timings: choosing the newest tag among 10,000 with each policy kind (in-process, the pure
part), and `canary watch-images --dry-run` against a real private registry (docker-registry behind a token
realm; credentials from the environment) holding 300 tags: list, token flow, digest, in-process and as a
`python -m rollout` subprocess (start-up included). Prints numbers only; exits 1 when a run did not pick the
expected tag."""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rollout.cli import main  # after the sys.path set-up above
from stacks.tagpolicy import TagPolicy
from testkit import registries
from testkit.stackfiles import stack_text

POLICY_RUNS = 20
WATCH_RUNS = 10
CLI_RUNS = 5
USER, PASSWORD = "bench", "bench-password"
failures: list[str] = []


def policies() -> None:
    tags = [f"6.{i // 100}.{i % 100}" for i in range(9000)] + [f"7.0.0-rc.{i}" for i in range(500)]
    tags += [f"main-{i:07x}-{1700000000 + i}" for i in range(500)]
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("semver:6.x", {}, "6.89.99"),
        ("semver:>=6.15.0 <7", {"prereleases": True}, "6.89.99"),
        ("semver:*", {"prereleases": True}, "7.0.0-rc.499"),
        (
            "numerical:asc",
            {"tag_filter": r"^main-[a-f0-9]+-(?P<ts>[0-9]+)$", "extract": "$ts"},
            "main-00001f3-1700000499",
        ),
        ("alphabetical:asc", {"tag_filter": "^main-"}, "main-00001f3-1700000499"),
    ]
    print(f"newest of {len(tags)} tags, median of {POLICY_RUNS} (in-process):")
    for text, options, expected in cases:
        policy = TagPolicy.parse(text, **options)
        times = []
        for _ in range(POLICY_RUNS):
            start = time.perf_counter()
            picked = policy.newest(tags, "0.0.0")
            times.append(time.perf_counter() - start)
        if picked != expected:
            failures.append(f"{text} picked {picked}, expected {expected}")
        print(f"  {text:<24} {statistics.median(times) * 1000:7.1f} ms")


def watch(registry: registries.Registry, work: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "Pulumi.yaml").write_bytes((ROOT / "Pulumi.yaml").read_bytes())
    stack = stack_text(canary="6.0.0") + "  istio-canary:image: ghcr.io/acme/podinfo\n"
    (work / "Pulumi.dev.yaml").write_text(stack)
    argv = ["watch-images", "-C", str(work), "--registry-url", registry.url, "--dry-run", "--no-notify"]
    times = []
    for _ in range(WATCH_RUNS):
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(argv)
        times.append(time.perf_counter() - start)
        if code != 0:
            failures.append(f"watch-images exited {code}")
    print(f"watch-images --dry-run, 300 tags, token realm: median {statistics.median(times) * 1000:.0f} ms in-process")
    times = []
    for _ in range(CLI_RUNS):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "rollout", *argv], cwd=ROOT, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            failures.append(f"python -m rollout watch-images exited {done.returncode}: {done.stderr[-300:]!r}")
    print(f"  as a subprocess (start-up included): median {statistics.median(times) * 1000:.0f} ms")


def run() -> int:
    policies()
    with (
        tempfile.TemporaryDirectory() as temp,
        registries.token_registry(Path(temp) / "registry", {USER: PASSWORD}) as registry,
    ):
        registries.push(registry, "acme/podinfo", [f"6.{m}.{p}" for m in range(30) for p in range(10)], USER, PASSWORD)
        os.environ["CANARY_REGISTRY_USERNAME"], os.environ["CANARY_REGISTRY_PASSWORD"] = USER, PASSWORD
        os.environ["DOCKER_CONFIG"] = str(Path(temp) / "no-docker-config")
        watch(registry, Path(temp) / "repo")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run())
