"""What the release agent's tests and benchmark share: a bare origin holding a stack, the agent as a real
process, the app's Kubernetes objects as `pulumi up` would leave them, and stopping a process for sure."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from testkit.servers import stop

__all__ = ["bare_origin", "deployment", "git", "start_agent", "stop", "virtual_service"]

REPO = Path(__file__).resolve().parent.parent
# A test agent must never reach a developer's Slack, Prometheus or cluster.
ISOLATED = ("SLACK_WEBHOOK_URL", "PROMETHEUS_URL", "KUBECONFIG", "CANARY_GIT_TOKEN")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def bare_origin(directory: Path, stack: str, message: str = "stack config") -> Path:
    """`directory/origin.git`, whose main holds Pulumi.yaml and `Pulumi.dev.yaml` = `stack`."""
    bare, seed = directory / "origin.git", directory / "seed"
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True, timeout=30)
    subprocess.run(["git", "clone", "-q", str(bare), str(seed)], check=True, timeout=30, capture_output=True)
    for key, value in (("user.name", "Canary Test"), ("user.email", "canary@example.com"), ("commit.gpgsign", "false")):
        git(seed, "config", key, value)
    git(seed, "checkout", "-q", "-b", "main")
    shutil.copy(REPO / "Pulumi.yaml", seed / "Pulumi.yaml")
    (seed / "Pulumi.dev.yaml").write_text(stack)
    git(seed, "add", ".")
    git(seed, "commit", "-qm", message)
    git(seed, "push", "-q", "origin", "HEAD:main")
    shutil.rmtree(seed)
    return bare


def start_agent(
    origin: Path,
    prometheus_url: str,
    workdir: Path,
    port: int,
    log: Path | None = None,
    *extra: str,
    keep_env: tuple[str, ...] = (),
) -> subprocess.Popen:
    """`canary agent --stack dev` on `origin` as its own process (stop it with stop())."""
    argv = [sys.executable, "-m", "istio_canary", "agent", "--stack", "dev", "--repo-url", str(origin)]
    argv += ["--workdir", str(workdir), "--listen", f"127.0.0.1:{port}", "--prometheus", prometheus_url, *extra]
    env = {k: v for k, v in os.environ.items() if k not in set(ISOLATED) - set(keep_env)}
    if log is None:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    with log.open("a") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=REPO)


def virtual_service(weight: int, app: str = "podinfo") -> dict[str, Any]:
    """The app's VirtualService at `weight` % canary, as the CanaryApp component declares it."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": app},
        "spec": {
            "hosts": [app],
            "http": [
                {
                    "route": [
                        {"destination": {"host": app, "subset": "ga"}, "weight": 100 - weight},
                        {"destination": {"host": app, "subset": "canary"}, "weight": weight},
                    ]
                }
            ],
        },
    }


def deployment(name: str, image: str, replicas: int = 1) -> dict[str, Any]:
    """A minimal Deployment running `image`."""
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "podinfo", "image": image}]},
            },
        },
    }
