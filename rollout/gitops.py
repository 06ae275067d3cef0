"""Git plumbing for release steps: clean-tree check, one-file commits, push."""

from __future__ import annotations

import subprocess
from pathlib import Path

GIT_TIMEOUT_S = 120  # a push over a slow link is the longest thing git does here


class GitError(RuntimeError):
    """A git command failed or the tree is not in a state where a release step may be committed."""


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {' '.join(args)} took longer than {GIT_TIMEOUT_S}s") from None
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def toplevel(path: Path) -> Path:
    """The root of the work tree containing `path`."""
    return Path(_git(path, "rev-parse", "--show-toplevel").strip())


def require_clean(repo: Path) -> None:
    """Refuse when tracked files are modified or anything is staged.

    Untracked files are tolerated: the tool commits only the stack file, so they cannot leak into the commit.
    """
    status = _git(repo, "status", "--porcelain", "--untracked-files=no").splitlines()
    if status:
        listed = "\n  ".join(status[:10])
        raise GitError(f"working tree has uncommitted changes; commit or stash them first:\n  {listed}")


def commit(repo: Path, path: Path, message: str) -> str:
    """Commit exactly one file with `message`; return the new commit id."""
    relative = str(path.resolve().relative_to(repo.resolve()))
    _git(repo, "add", "--", relative)
    _git(repo, "commit", "--quiet", "-m", message, "--", relative)
    return head(repo)


def head(repo: Path) -> str:
    """The commit id of HEAD."""
    return _git(repo, "rev-parse", "HEAD").strip()


def current_branch(repo: Path) -> str:
    """The checked-out branch; a detached HEAD cannot be pushed by name."""
    branch = _git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
    if branch == "HEAD":
        raise GitError("HEAD is detached; check out the branch to push to")
    return branch


def push(repo: Path, remote: str, commit_id: str | None = None) -> None:
    """Push `commit_id` (default HEAD) to the current branch on `remote`.

    Pushing one commit at a time lets CI run `pulumi up` once per release step.
    """
    branch = current_branch(repo)
    _git(repo, "push", "--quiet", remote, f"{commit_id or 'HEAD'}:refs/heads/{branch}")
