"""`canary agent`: the release agent. Every analysisInterval it judges the canary (the analysis of `canary
analyze`), rolls back after analysisThreshold failures in a row, and proposes the next step after
analysisIterations passes once the step is live, each as a commit with its evidence; while no release has
traffic it proposes new image tags (`canary watch-images`). The cluster is only read."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
from pathlib import Path

from istio_canary.exits import EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED

HELP = "run the release agent: analyse every interval, roll back, propose steps"
EXITS = (EXIT_OK, EXIT_REFUSED, EXIT_INTERNAL)
USES = ()
TOKEN_ENV = "CANARY_GIT_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo-url", required=True, help="the repository to clone (https URL, or a path for tests)")
    parser.add_argument("--workdir", default="/work", help="where the clone lives")
    parser.add_argument("--listen", default="0.0.0.0:9102", help="host:port of /healthz and /metrics")
    parser.add_argument("--prometheus", help="Prometheus base URL (default: env PROMETHEUS_URL, then prometheusUrl)")
    parser.add_argument("--github-api-url", default="https://api.github.com", help="the Git host's REST API")
    parser.add_argument("--dashboard-url", default="", help="a link for pull request bodies")
    parser.add_argument(
        "--registry-url", help="image registry base URL instead of the image's host (http only for 127.0.0.1)"
    )
    parser.add_argument(
        "--kubeconfig",
        help="read the live state and hold the Lease with this kubeconfig (default: in-cluster when running in a "
        "pod, else none: Git is taken as live and there is no Lease)",
    )
    parser.add_argument("--lease-namespace", help="namespace of the Lease (default: the app's namespace)")
    parser.add_argument("--iterations", type=int, help="stop after this many iterations (default: run forever)")


def _kube(kubeconfig: str | None):
    from kubernetes import client, config

    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
        return client.ApiClient()
    return None


def run(args: argparse.Namespace) -> int:
    from istio_canary.actions.errors import Refused
    from istio_canary.agent import loop
    from istio_canary.agent.metrics import Metrics, fresh, serve
    from istio_canary.agent.options import Options
    from istio_canary.stackfile import StackFile

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    # `kill -USR1 <pid>` writes every thread's stack to the log: where a pass or a follow-up waits, without a debugger.
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise Refused(f"--listen {args.listen!r}: expected host:port")
    token = os.environ.get(TOKEN_ENV) or None
    if args.repo_url.startswith("https://") and not token:
        raise Refused(f"${TOKEN_ENV} is not set: the agent could neither push a rollback nor open a pull request")
    kube = _kube(args.kubeconfig)
    workdir = Path(args.workdir)
    options = Options(
        stack=args.stack,
        repo_url=args.repo_url,
        workdir=workdir,
        token=token,
        api_url=args.github_api_url,
        prometheus_url=args.prometheus,
        kube=kube,
        identity=loop.identity(),
        lease_namespace=args.lease_namespace,
        dashboard_url=args.dashboard_url,
        registry_url=args.registry_url,
    )
    if kube is not None and not options.lease_namespace:
        loop.workspace.sync(args.repo_url, workdir)
        options.lease_namespace = StackFile.for_stack(workdir, args.stack).view().app.namespace
    metrics = Metrics()
    # Healthy while a pass ended within a few of the longest interval it serves (istio_canary/agent/metrics.py).
    server = serve(metrics, host, int(port), fresh(metrics, args.stack))
    logging.getLogger("canary.agent").info("agent for stack %s serving on %s", args.stack, args.listen)
    try:
        return loop.run(options, metrics, args.iterations)
    finally:
        server.shutdown()
