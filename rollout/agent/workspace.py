"""The agent's clone of the repository: synced to the remote's main before every decision.

The Git token never appears in a URL, an argument list or a file: it reaches git as an `http.extraHeader`
through GIT_CONFIG_* environment variables of this process (so `git push` run by the canary commands gets
it too), and only for an https remote.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from rollout import gitops

BRANCH = "main"
IDENTITY = (("user.name", "canary-agent"), ("user.email", "canary-agent@users.noreply.github.com"))


def use_token(repo_url: str, token: str | None) -> None:
    """Make every git process this agent starts authenticate to an https remote with `token`."""
    if not token or not repo_url.startswith("https://"):
        return
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    os.environ.update(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            "GIT_TERMINAL_PROMPT": "0",  # a wrong token fails at once instead of waiting for a keyboard
        }
    )


def sync(repo_url: str, path: Path) -> Path:
    """Clone `repo_url` into `path` once, then each time: fetch, and reset main to the remote's main."""
    if not (path / ".git").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        gitops.run(path.parent, "clone", "--quiet", "--branch", BRANCH, repo_url, str(path))
        for key, value in IDENTITY:
            gitops.run(path, "config", key, value)
    gitops.run(path, "fetch", "--quiet", "origin", BRANCH)
    gitops.run(path, "checkout", "--quiet", "-B", BRANCH, f"origin/{BRANCH}")
    gitops.run(path, "reset", "--quiet", "--hard", f"origin/{BRANCH}")
    return path


def start_branch(path: Path, branch: str) -> None:
    """A proposal branch from the remote's main (replacing an older one of the same name)."""
    gitops.run(path, "checkout", "--quiet", "-B", branch, f"origin/{BRANCH}")


def push_branch(path: Path, branch: str) -> None:
    """Push the proposal branch, replacing the remote's: each proposal carries a fresh analysis."""
    gitops.run(path, "push", "--quiet", "--force", "origin", f"{branch}:refs/heads/{branch}")


def seconds_since_weight_changed(path: Path, stack_file: str, now: float, key: str) -> float:
    """Seconds since the last commit on HEAD that changed the `key` line of the stack file (Git's own clock)."""
    out = gitops.run(path, "log", "-1", "--format=%ct", "-G", key, "--", stack_file).strip()
    return now - float(out) if out else now
