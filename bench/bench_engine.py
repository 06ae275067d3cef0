"""Benchmark: what a weight step costs through the Pulumi engine, next to the API server's own dry run.

    .venv/bin/python bench/bench_engine.py [--rounds N]

Starts a LocalControlPlane, creates the `local` stack (as the engine tests do), then for each round sets a new
canaryWeight and measures
  - `pulumi preview` wall time,
  - a server-side dry-run apply of the same VirtualService (PATCH ?dryRun=All, application/apply-patch+yaml)
    against the same API server, the cheapest possible "what would change" for one object,
  - `pulumi up` wall time for the change,
  - `pulumi preview` again with nothing to change (the engine's fixed cost).
Prints numbers only (a table and one JSON line); no thresholds, no asserts. Needs `make toolchain`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# After the sys.path line, so the script runs from anywhere.
from testkit.engine import NAMESPACE, Kube, Project, cli_env, toolchain
from toolchain.controlplane import ISTIO_CRDS, ControlPlaneError, LocalControlPlane

VS_PATH = f"/apis/networking.istio.io/v1/namespaces/{NAMESPACE}/virtualservices/podinfo"
DRY_RUNS_PER_ROUND = 5


def vs_manifest(kube: Kube, weight: int) -> str:
    """The VirtualService as the program renders it for `weight`, built from the live object's spec."""
    live = kube.get(VS_PATH)
    assert live is not None, "VirtualService podinfo missing"
    spec = live["spec"]
    for route in spec["http"][0]["route"]:
        route["weight"] = weight if route["destination"]["subset"] == "canary" else 100 - weight
    return yaml.safe_dump(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "podinfo", "namespace": NAMESPACE},
            "spec": spec,
        }
    )


def dry_run_apply(kube: Kube, manifest: str) -> float:
    """Seconds for one server-side dry-run apply of the manifest (force: the fields belong to Pulumi's manager)."""
    start = time.perf_counter()
    status, body = kube.plane.request(
        "PATCH",
        f"{VS_PATH}?dryRun=All&fieldManager=bench&force=true",
        manifest,
        content_type="application/apply-patch+yaml",
    )
    elapsed = time.perf_counter() - start
    assert status == 200, f"dry-run apply: {status} {body}"
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints a table and a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="weight changes to time (default 3)")
    args = parser.parse_args(argv)
    try:
        bins = toolchain()
    except ControlPlaneError as err:
        print(f"bench_engine: {err}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp, LocalControlPlane(Path(tmp) / "cp") as plane:
        plane.apply_crds(ISTIO_CRDS)
        kube = Kube(plane)
        kubeconfig = str(plane.kubeconfig_path)
        project = Project.create(Path(tmp) / "project", cli_env(bins, Path(tmp), kubeconfig), kubeconfig)
        first_up = project.up().seconds
        rows = []
        for i in range(args.rounds):
            weight = 10 * (i + 1)
            project.config_set("canaryWeight", str(weight))
            preview = project.pulumi("preview").seconds
            manifest = vs_manifest(kube, weight)
            dry = statistics.median(dry_run_apply(kube, manifest) for _ in range(DRY_RUNS_PER_ROUND))
            up = project.up().seconds
            # The same command with nothing to change: the engine's fixed cost (CLI, program, provider).
            idle = project.pulumi("preview").seconds
            rows.append(
                {"weight": weight, "preview_s": preview, "dry_run_apply_s": dry, "up_s": up, "idle_preview_s": idle}
            )

    print(f"first up (creates the stack): {first_up:.2f}s")
    print(f"{'weight':>6} {'preview s':>10} {'dry-run s':>10} {'ratio':>8} {'up s':>8} {'no-op preview s':>16}")
    for row in rows:
        ratio = row["preview_s"] / row["dry_run_apply_s"]
        print(
            f"{row['weight']:>6} {row['preview_s']:>10.2f} {row['dry_run_apply_s']:>10.4f} {ratio:>8.0f} "
            f"{row['up_s']:>8.2f} {row['idle_preview_s']:>16.2f}"
        )
    summary = {
        "first_up_s": round(first_up, 3),
        "preview_s_median": round(statistics.median(r["preview_s"] for r in rows), 3),
        "dry_run_apply_s_median": round(statistics.median(r["dry_run_apply_s"] for r in rows), 5),
        "up_s_median": round(statistics.median(r["up_s"] for r in rows), 3),
        "noop_preview_s_median": round(statistics.median(r["idle_preview_s"] for r in rows), 3),
    }
    summary["preview_to_dry_run_ratio"] = round(summary["preview_s_median"] / summary["dry_run_apply_s_median"], 1)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
