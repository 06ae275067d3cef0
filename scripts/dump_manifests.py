#!/usr/bin/env python3
"""Write the Kubernetes manifests of a mock run of the stack to a directory, one YAML file per object.

For scanners that read YAML (checkov, kubeconform...). No cloud, no cluster: Pulumi mocks only.

    .venv/bin/python scripts/dump_manifests.py build/manifests [--set canaryWeight=10 ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a file, the script's own folder is on sys.path, not the repo root the imports live under.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testkit.manifests import stack_manifests, write_manifests


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line: output directory and config overrides."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="where to write the YAML files (created if missing)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="stack config override without the project prefix, e.g. canaryWeight=10 (repeatable)",
    )
    args = parser.parse_args(argv)
    for item in args.overrides:
        if "=" not in item:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Dump the manifests; print each file written."""
    args = parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.overrides)
    for path in write_manifests(args.directory, stack_manifests(**overrides)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
