"""Image automation timings: choosing the newest tag among 10,000 with each policy kind (in-process, the pure
part), and `canary watch-images --dry-run` against a real private registry (docker-registry behind a token
realm; credentials from the environment) holding 300 tags: list, token flow, digest, in-process and as a
`python -m istio_canary` subprocess (start-up included). Then the peak RSS of `canary watch-images` (a process of its
own, as the agent's pod runs it) against hostile registries (testkit/hostile.py): one endless page, a hundred
big pages, a thousand slow pages; next to the agent pod's memory limit. Prints numbers only; exits 1 when a run
did not pick the expected tag or a hostile run ended other than by its byte budget or its deadline."""

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

from components.release_agent import RESOURCES
from istio_canary.cli import main  # after the sys.path set-up above
from istio_canary.exits import EXIT_UNAVAILABLE
from istio_canary.release.tagpolicy import TagPolicy
from testkit import hostile, registries
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
        ("semver:>=6.15.0 <7", {"prereleases": True}, "7.0.0-rc.499"),  # Flux: 7.0.0-rc.N is below 7
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
        done = subprocess.run([sys.executable, "-m", "istio_canary", *argv], cwd=ROOT, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            failures.append(f"python -m istio_canary watch-images exited {done.returncode}: {done.stderr[-300:]!r}")
    print(f"  as a subprocess (start-up included): median {statistics.median(times) * 1000:.0f} ms")


def _mib(quantity: str) -> float:
    """A Kubernetes memory quantity in Mi or Gi as MiB."""
    return float(quantity[:-2]) * (1024 if quantity.endswith("Gi") else 1)


# `python -m istio_canary` that tells its peak RSS on the way out: VmHWM is the high-water mark of the process's own
# memory since its exec. (ru_maxrss from wait4 would not do: Linux carries the forking parent's RSS over exec.)
_REPORTING_PEAK = """
import atexit, runpy, sys
def peak():
    with open("/proc/self/status") as status:
        sys.stderr.write("peak-rss-kib " + next(l for l in status if l.startswith("VmHWM:")).split()[1] + "\\n")
atexit.register(peak)
sys.argv = ["canary", *sys.argv[1:]]
runpy.run_module("istio_canary", run_name="__main__")
"""


def _peak(argv: list[str], cwd: Path) -> tuple[int, float, float, str]:
    """Run `python -m istio_canary <argv>` as its own process: (exit code, peak RSS in MiB, seconds, its last message)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _REPORTING_PEAK, *argv], cwd=cwd, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    lines = done.stderr.strip().splitlines()
    peak = next((int(line.split()[1]) for line in lines if line.startswith("peak-rss-kib ")), 0)
    said = [line for line in lines if not line.startswith("peak-rss-kib ")]
    return done.returncode, peak / 1024, elapsed, (said[-1] if said else "")


def _tags_page(page: int, pages: int, body: bytes) -> hostile.Reply:
    headers = {"Content-Type": "application/json"}
    if page + 1 < pages:
        headers["Link"] = f'</v2/acme/podinfo/tags/list?page={page + 1}>; rel="next"'
    return hostile.Reply(headers=headers, body=body)


def hostile_registries(work: Path) -> None:
    """Peak RSS of watch-images against registries that try to exhaust it, next to the agent pod's limit."""
    limit = _mib(RESOURCES["limits"]["memory"])
    big_page = hostile.tags_page(["ab"] * (4 * 1024 * 1024 // 5))  # 4 MiB of the smallest tags: the most objects
    normal = hostile.tags_page([f"6.{m}.{p}" for m in range(30) for p in range(10)])

    def pages(count: int, body: bytes, delay: float = 0.0) -> hostile.Handler:
        def handle(path: str) -> hostile.Reply:
            if "/manifests/" in path:
                return hostile.Reply(headers={"Docker-Content-Digest": "sha256:" + "0" * 64})
            page = int(path.rsplit("page=", 1)[1]) if "page=" in path else 0
            reply = _tags_page(page, count, body)
            return hostile.Reply(headers=reply.headers, body=reply.body, delay=delay)

        return handle

    endless = hostile.always(hostile.Reply(stream=hostile.endless_tags(hostile.HUGE_BYTES)))
    cases: list[tuple[str, hostile.Handler, str, float, int]] = [
        ("a normal registry: 300 tags, one page", pages(1, normal), hostile.KEEP_ALIVE, 60, 0),
        ("one endless page of 2-character tags (1 GiB offered)", endless, hostile.CLOSE, 60, EXIT_UNAVAILABLE),
        ("100 pages of 4 MiB of 2-character tags each", pages(100, big_page), hostile.HTTP10, 60, EXIT_UNAVAILABLE),
        ("1000 pages of 300 tags, 0.1 s each, --timeout 5", pages(1000, normal, 0.1), hostile.CLOSE, 5, 3),
    ]
    print(f"peak RSS of `canary watch-images --dry-run` (own process) vs the agent pod's limit of {limit:.0f} MiB:")
    code, baseline, _, _ = _peak(["--help"], ROOT)
    print(f"  {'python -m istio_canary --help (the floor: interpreter and imports)':<58} {baseline:6.0f} MiB")
    for label, handler, variant, timeout, expected in cases:
        with hostile.serve(handler, variant) as served:
            argv = ["watch-images", "-C", str(work), "--registry-url", served.url, "--dry-run", "--no-notify"]
            code, peak, seconds, last = _peak([*argv, "--timeout", str(timeout)], ROOT)
            fetched = len(served.paths)
        if code != expected:
            failures.append(f"watch-images against {label!r} exited {code}, expected {expected}: {last}")
        print(
            f"  {label:<58} {peak:6.0f} MiB ({peak / limit:4.0%} of the limit), exit {code}, {seconds:5.1f} s, "
            f"{fetched} requests"
        )
        if code != 0:
            print(f"    {last[:160]}")


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
        hostile_registries(Path(temp) / "repo")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run())
