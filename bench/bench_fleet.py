"""Benchmark: does one service's weight step cost more when more services share the platform?

    .venv/bin/python bench/bench_fleet.py [--sizes 1,5,20] [--rounds N]    (or BENCH_FLEET_SIZES=1,5)

One LocalControlPlane, one project copy (testkit/engine.py), one platform stack (clusterMode existing, no mesh,
no monitoring, deployApp false). The fleet grows to each size in turn (app stacks app-01, app-02, ... each a podinfo
in its own namespace, loadGenerator false, skipAwait true), and at each size the first app stack, app-01, takes
`--rounds` weight steps: `pulumi config set canaryWeight N`, then
  - `pulumi preview --json` (checked: one update, app-01's VirtualService, besides the re-read of the platform),
  - `pulumi up`,
both timed as wall time of the CLI. Alternating with them, the engine's floor on this machine: the same two
commands for a one-resource Python program (a `kubernetes:core/v1:ConfigMap` through an explicit Kubernetes provider
on the same kubeconfig, an annotation changed each round: an update in place), in its own project on the same
backend. Measured at every size, so a change of the machine's load shows in both.

The claim checked: the cost of one service's step does not grow with the fleet (within 10 % from the smallest to the
largest size). Prints numbers, the largest-vs-smallest ratios and the ratios to the floor, no thresholds enforced;
exits 1 only when a run fails (a command exits non-zero, or a step's preview is not the one update).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# After the sys.path line, so the script runs from anywhere.
from testkit.engine import LOCAL_PLATFORM_CONFIG, VENV, Project, Step, changes, cli_env, local_app_config, toolchain
from toolchain.controlplane import ISTIO_CRDS, ControlPlaneError, LocalControlPlane

DEFAULT_SIZES = "1,5,20"
SUBJECT = "app-01"  # the stack whose step is timed, present at every size
PLATFORM = "platform"
VS_TYPE = "kubernetes:networking.istio.io/v1:VirtualService"
PLATFORM_READ = Step("read", "pulumi:pulumi:StackReference", "platform-stack")
PLATFORM_CONFIG = LOCAL_PLATFORM_CONFIG
APP_CONFIG = {**local_app_config(PLATFORM), "loadGenerator": "false", "gaVersion": "6.8.0", "canaryVersion": "6.9.0"}
FLOOR_PROGRAM = '''"""The engine's floor: one ConfigMap through an explicit Kubernetes provider."""

import pulumi
import pulumi_kubernetes as k8s

config = pulumi.Config()
provider = k8s.Provider("k8s", kubeconfig=config.require("kubeconfig"))
annotations = {
    # As the app's objects (skipAwait): no kubelet and no garbage collector on the bench's API server.
    "pulumi.com/skipAwait": "true",
    "pulumi.com/deletionPropagationPolicy": "background",
    # The change each round: an annotation updates in place (a change of a ConfigMap's data replaces it).
    "bench/value": config.require("value"),
}
k8s.core.v1.ConfigMap(
    "floor",
    metadata={"name": "bench-floor", "namespace": "default", "annotations": annotations},
    data={"key": "value"},
    opts=pulumi.ResourceOptions(provider=provider),
)
'''


class Failed(Exception):
    """A run that did not do what the benchmark measures."""


def set_all(project: Project, stack: str, values: dict[str, str]) -> None:
    """`pulumi config set-all --plaintext k=v ...` (one call per stack keeps the set-up short)."""
    pairs = [arg for key, value in values.items() for arg in ("--plaintext", f"{key}={value}")]
    project.pulumi("config", "set-all", *pairs, stack=stack)


def app_stack(index: int) -> str:
    return f"app-{index:02d}"


def add_app(project: Project, index: int) -> float:
    """Create app stack `index` (namespace = stack name) and `up` it; returns the up's seconds."""
    stack = app_stack(index)
    project.init_stack(stack)
    set_all(project, stack, {**APP_CONFIG, "namespace": stack})
    return project.up(stack=stack).seconds


def step(
    project: Project, stack: str, weight: int, expected: list[Step], key: str = "canaryWeight"
) -> tuple[float, float]:
    """One step of `stack` (`pulumi config set <key> <weight>`): (preview seconds, up seconds); Failed unless the
    preview's changes are `expected`."""
    project.config_set(key, str(weight), stack=stack)
    run, preview = project.preview(stack=stack)
    found = changes(preview)
    if Counter(found) != Counter(expected):
        raise Failed(f"{stack}: the step to {weight} previews {found}, expected {expected}")
    return run.seconds, project.up(stack=stack).seconds


def floor_project(bins: dict[str, Path], home: Path, kubeconfig: str) -> Project:
    """The one-resource program (FLOOR_PROGRAM) as stack `floor`, its ConfigMap created."""
    root = home / "floor"
    root.mkdir()
    (root / "Pulumi.yaml").write_text(
        f"name: bench-floor\nruntime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: {VENV}\n"
    )
    (root / "__main__.py").write_text(FLOOR_PROGRAM)
    project = Project(root, cli_env(bins, home, kubeconfig))
    project.init_stack("floor")
    set_all(project, "floor", {"kubeconfig": kubeconfig, "value": "0"})
    project.up(stack="floor")
    return project


def median(values: list[float]) -> float:
    return statistics.median(values)


def measure(sizes: list[int], rounds: int) -> dict:
    """Run the benchmark; the numbers as a dict.

    At each size the subject's steps alternate with the floor's, so both see the same load on the machine."""
    bins = toolchain()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, LocalControlPlane(Path(tmp) / "cp") as plane:
        home = Path(tmp)
        plane.apply_crds(ISTIO_CRDS)
        kubeconfig = str(plane.kubeconfig_path)
        # KUBECONFIG points nowhere: the app stacks reach the API server only through the platform's outputs.
        project = Project.copy(home / "project", cli_env(bins, home, str(home / "no-kubeconfig")))
        project.init_stack(PLATFORM)
        set_all(project, PLATFORM, {**PLATFORM_CONFIG, "kubeconfig": kubeconfig})
        project.up(stack=PLATFORM)
        floor = floor_project(bins, home, kubeconfig)

        subject_step = [PLATFORM_READ, Step("update", VS_TYPE, "podinfo")]
        floor_step = [Step("update", "kubernetes:core/v1:ConfigMap", "bench-floor")]
        rows, creates, value, made = [], [], 0, 0
        for size in sizes:
            start = time.monotonic()
            while made < size:
                made += 1
                creates.append(add_app(project, made))
            grow = time.monotonic() - start
            subject, base = [], []
            for _ in range(rounds):
                value = value % 100 + 1
                subject.append(step(project, SUBJECT, value, subject_step))
                base.append(step(floor, "floor", value, floor_step, key="value"))
            row = {
                "stacks": size,
                "preview_s": median([t[0] for t in subject]),
                "up_s": median([t[1] for t in subject]),
                "floor_preview_s": median([t[0] for t in base]),
                "floor_up_s": median([t[1] for t in base]),
                "preview_all_s": [round(t[0], 3) for t in subject],
                "up_all_s": [round(t[1], 3) for t in subject],
                "grow_s": grow,
            }
            rows.append(row)
            print(
                f"  {size:>3} app stacks: preview {row['preview_s']:.2f}s, up {row['up_s']:.2f}s; floor preview "
                f"{row['floor_preview_s']:.2f}s, up {row['floor_up_s']:.2f}s (fleet grown in {grow:.0f}s)",
                flush=True,
            )
        floor.pulumi("destroy", "--yes", "--skip-preview", stack="floor", timeout=120)
    return {"rows": rows, "app_create_up_s_median": median(creates)}


def sizes_from(text: str) -> list[int]:
    sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"fleet sizes must be whole numbers from 1: {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints a table and a JSON summary. 1 when a run failed, 2 without the toolchain."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=os.environ.get("BENCH_FLEET_SIZES", DEFAULT_SIZES), help="e.g. 1,5,20")
    parser.add_argument("--rounds", type=int, default=7, help="weight steps timed per size (default 7)")
    args = parser.parse_args(argv)
    sizes = sizes_from(args.sizes)
    started = time.monotonic()
    print(f"bench_fleet: fleet sizes {sizes}, {args.rounds} weight steps of {SUBJECT} per size", flush=True)
    try:
        result = measure(sizes, args.rounds)
    except ControlPlaneError as err:
        print(f"bench_fleet: {err}", file=sys.stderr)
        return 2
    except (Failed, AssertionError) as err:  # AssertionError: a CLI call exited non-zero (Project.run)
        print(f"bench_fleet: FAILED: {err}", file=sys.stderr)
        return 1

    rows = result["rows"]
    print(
        f"{'stacks':>6} {'preview s':>10} {'up s':>8} {'floor preview s':>16} {'floor up s':>11} "
        f"{'preview/floor':>14} {'up/floor':>9}"
    )
    for row in rows:
        row["preview_to_floor"] = row["preview_s"] / row["floor_preview_s"]
        row["up_to_floor"] = row["up_s"] / row["floor_up_s"]
        print(
            f"{row['stacks']:>6} {row['preview_s']:>10.2f} {row['up_s']:>8.2f} {row['floor_preview_s']:>16.2f} "
            f"{row['floor_up_s']:>11.2f} {row['preview_to_floor']:>14.2f} {row['up_to_floor']:>9.2f}"
        )
    print(
        "floor: a one-resource Python program (one ConfigMap, explicit Kubernetes provider), same machine and backend"
    )
    first, last = rows[0], rows[-1]
    label = f"{last['stacks']}-vs-{first['stacks']}"
    ratios = {
        "preview": last["preview_s"] / first["preview_s"],
        "up": last["up_s"] / first["up_s"],
        # Each size against its own floor: what is left once the machine's drift (same for both) is divided out.
        "preview_over_floor": last["preview_to_floor"] / first["preview_to_floor"],
        "up_over_floor": last["up_to_floor"] / first["up_to_floor"],
    }
    within = max(ratios["preview"], ratios["up"]) <= 1.10
    print(
        f"{label}: preview x{ratios['preview']:.3f}, up x{ratios['up']:.3f}; against each size's floor: preview "
        f"x{ratios['preview_over_floor']:.3f}, up x{ratios['up_over_floor']:.3f} -> "
        f"{'within' if within else 'NOT within'} 10 % (one service's step "
        f"{'does not grow' if within else 'grows'} with the fleet)"
    )
    summary = {
        "sizes": [row["stacks"] for row in rows],
        "preview_s_median": [round(row["preview_s"], 3) for row in rows],
        "up_s_median": [round(row["up_s"], 3) for row in rows],
        "floor_preview_s_median": [round(row["floor_preview_s"], 3) for row in rows],
        "floor_up_s_median": [round(row["floor_up_s"], 3) for row in rows],
        "preview_s_all": [row["preview_all_s"] for row in rows],
        "up_s_all": [row["up_all_s"] for row in rows],
        **{f"{name}_ratio_{label}": round(value, 3) for name, value in ratios.items()},
        "preview_to_floor": [round(row["preview_to_floor"], 2) for row in rows],
        "up_to_floor": [round(row["up_to_floor"], 2) for row in rows],
        "app_stack_create_up_s_median": round(result["app_create_up_s_median"], 3),
        "total_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
