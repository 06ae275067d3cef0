"""python -m toolchain.controlplane: the local control plane from the command line.

    python -m toolchain.controlplane up --dir DIR [--crds toolchain/istio_crds.yaml] [--timeout S]
    python -m toolchain.controlplane ready --kubeconfig FILE [--timeout S]

`up` starts etcd + kube-apiserver with DIR for certificates, etcd data, logs and the kubeconfig, applies the
CRDs, prints `kubeconfig: DIR/kubeconfig` and `export KUBECONFIG=DIR/kubeconfig`, then stays in the
foreground until SIGTERM/SIGINT (or until a server dies: exit 1) and stops both.
`ready` exits 0 when the kubeconfig's API server answers /readyz, else 1: what scripts/up-local.sh asks
before it reuses a running control plane (no kubectl needed).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .common import ISTIO_CRDS, REPO, ControlPlaneError
from .kubeapi import KubeClient
from .plane import LocalControlPlane


def _cmd_up(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    workdir = Path(args.dir).resolve()
    with LocalControlPlane(workdir, ready_timeout=args.timeout) as plane:
        if args.crds:
            for name in plane.apply_crds(args.crds):
                print(f"CRD established: {name}", file=sys.stderr)
        print(f"control plane up: {plane.server} (etcd {plane.etcd_url}); logs in {workdir / 'logs'}", file=sys.stderr)
        print(f"kubeconfig: {plane.kubeconfig_path}")
        print(f"export KUBECONFIG={plane.kubeconfig_path}", flush=True)
        (workdir / "server").write_text(plane.server + "\n")
        while not stop.wait(1.0):
            for name, proc in (("etcd", plane.etcd), ("kube-apiserver", plane.apiserver)):
                if proc is not None and proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}:\n{plane.log_tail(name)}", file=sys.stderr)
                    return 1
        print("stopping control plane", file=sys.stderr)
    return 0


def _cmd_ready(args: argparse.Namespace) -> int:
    path = Path(args.kubeconfig)
    if not path.is_file():
        return 1
    try:
        return 0 if KubeClient.from_kubeconfig(path).ready(args.timeout) else 1
    except (ControlPlaneError, OSError, ValueError, KeyError):
        return 1  # unreadable or foreign kubeconfig, stale certificates: not our running control plane


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.controlplane", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start etcd + kube-apiserver and stay in the foreground until SIGTERM/SIGINT")
    up.add_argument("--dir", required=True, help="working directory (PKI, etcd data, logs, kubeconfig)")
    up.add_argument("--crds", help=f"CRD file to apply once up (e.g. {ISTIO_CRDS.relative_to(REPO)})")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    ready = sub.add_parser("ready", help="exit 0 when the kubeconfig's API server answers /readyz")
    ready.add_argument("--kubeconfig", required=True)
    ready.add_argument("--timeout", type=float, default=0.0, help="seconds to keep asking (default: ask once)")
    args = parser.parse_args(argv)
    try:
        return _cmd_up(args) if args.command == "up" else _cmd_ready(args)
    except ControlPlaneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
