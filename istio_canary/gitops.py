"""Git plumbing for release steps: clean-tree check, one-file commits, push, and what a push that lost the race
to another pusher needs (the remote's new tip, a file's bytes at a commit, a commit made on another parent)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path

from istio_canary.httpclient import scrub

GIT_TIMEOUT_S = 120  # a push over a slow link is the longest thing git does here


class GitError(RuntimeError):
    """A git command failed or the tree is not in a state where a release step may be committed."""


def _git(repo: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
            input=stdin,
            env={**os.environ, **env} if env else None,
        )
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise GitError(scrub(f"git {' '.join(args)} took longer than {GIT_TIMEOUT_S}s")) from None
    if done.returncode != 0:
        # git may name a remote with its credentials (https://user:TOKEN@host/...): never pass those on.
        raise GitError(scrub(f"git {' '.join(args)} failed: {(done.stderr or done.stdout).strip()}"))
    return done.stdout


def run(repo: Path, *args: str) -> str:
    """Any git command in `repo`; GitError (credentials scrubbed) when it fails."""
    return _git(repo, *args)


def seconds_since_change(repo: Path, path: str, now: float, pattern: str) -> float:
    """Seconds from the last commit on HEAD that changed a line of `path` matching `pattern` (Git's own clock)
    to `now`; `now` itself when no commit did."""
    out = _git(repo, "log", "-1", "--format=%ct", "-G", pattern, "--", path).strip()
    return now - float(out) if out else now


def toplevel(path: Path) -> Path:
    """The root of the work tree containing `path`."""
    return Path(_git(path, "rev-parse", "--show-toplevel").strip())


def git_dir(repo: Path) -> Path:
    """The repository's git directory (`.git`, or a worktree's own)."""
    path = Path(_git(repo, "rev-parse", "--git-dir").strip())
    return path if path.is_absolute() else repo / path


def require_clean(repo: Path) -> None:
    """Refuse when tracked files are modified or anything is staged.

    Untracked files are tolerated: the tool commits only the stack file, so they cannot leak into the commit.
    """
    status = _git(repo, "status", "--porcelain", "--untracked-files=no").splitlines()
    if status:
        # Porcelain lines are `XY path` with a blank X or Y; strip them so every line has the same indent.
        listed = "".join(f"\n    {line[:2].strip():<2} {line[3:]}" for line in status[:10])
        raise GitError(f"working tree has uncommitted changes; commit or stash them first:{listed}")


def _relative(repo: Path, path: Path) -> str:
    return str(path.resolve().relative_to(repo.resolve()))


def commit(repo: Path, path: Path, message: str) -> str:
    """Commit exactly one file with `message`; return the new commit id.

    When `git commit` fails (no identity, a hook said no) the file is unstaged again, so the index is as
    before; restoring the file's content is the caller's business (it knows the previous text).
    """
    relative = _relative(repo, path)
    _git(repo, "add", "--", relative)
    try:
        _git(repo, "commit", "--quiet", "-m", message, "--", relative)
    except GitError:
        with contextlib.suppress(GitError):  # the first error is the one to report
            _git(repo, "reset", "--quiet", "--", relative)
        raise
    return head(repo)


def rolled_back(repo: Path, path: Path, workload: str, version: str, version_key: str) -> str | None:
    """The subject of a `canary: roll back <workload> <version> ...` commit of `path` made since the line
    `version_key` (e.g. `istio-canary:canaryVersion:`) last changed; None when there is none.

    Walks the file's history newest first and stops at the commit that set the version, so a rollback of
    the same version number in an earlier release does not count.
    """
    log = _git(repo, "log", "--no-color", "--format=%x00%s", "-p", "-U0", "--", _relative(repo, path))
    prefix = f"canary: roll back {workload} {version} "
    for entry in log.split("\0")[1:]:
        subject, _, diff = entry.partition("\n")
        if subject.startswith(prefix):
            return subject
        if any(line.startswith("+") and version_key in line for line in diff.splitlines()):
            return None
    return None


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


def rejected_as_behind(error: GitError) -> bool:
    """Was this push refused only because the remote branch moved on (someone pushed first)? Not a hook's or a
    protection rule's refusal (`[remote rejected]`), which no retry changes."""
    text = str(error)
    return "[rejected]" in text and ("(fetch first)" in text or "(non-fast-forward)" in text)


def fetch_tip(repo: Path, remote: str, branch: str) -> str:
    """Fetch `branch` from `remote` (a name or a URL) and return the commit it points to there now."""
    _git(repo, "fetch", "--quiet", "--no-tags", remote, f"refs/heads/{branch}")
    return _git(repo, "rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}").strip()


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    """Is `ancestor` in the history of `descendant` (or the same commit)?"""
    try:
        _git(repo, "merge-base", "--is-ancestor", ancestor, descendant)
    except GitError:
        return False
    return True


def blob(repo: Path, rev: str, relative: str) -> bytes | None:
    """The exact bytes of `relative` at commit `rev`; None when the commit has no such file."""
    done = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "blob", f"{rev}:{relative}"],
        capture_output=True,
        timeout=GIT_TIMEOUT_S,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


def changed_paths(repo: Path, commit_id: str) -> list[str]:
    """The paths `commit_id` changes against its first parent."""
    out = _git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", f"{commit_id}^", commit_id)
    return out.splitlines()


def message_and_author(repo: Path, commit_id: str) -> tuple[str, str, str]:
    """A commit's full message (byte for byte as stored), author name and author email."""
    message = _git(repo, "cat-file", "commit", commit_id).partition("\n\n")[2]  # after the header lines
    name, email = _git(repo, "log", "-1", "--format=%an%x00%ae", commit_id).rstrip("\n").split("\0")
    return message, name, email


def commit_on(repo: Path, parent: str, relative: str, content: bytes, message: str, author: tuple[str, str]) -> str:
    """A commit on `parent` that changes only `relative` to `content`, with `message` and `author` (the committer
    is this repository's identity, the date now). Neither the work tree, the index nor any branch moves."""
    listed = _git(repo, "ls-tree", parent, "--", relative).split()
    mode = listed[0] if listed else "100644"
    with tempfile.TemporaryDirectory(prefix="canary-index-") as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(repo, "read-tree", parent, env=index)
        content_file = Path(scratch) / "content"
        content_file.write_bytes(content)
        blob_id = _git(repo, "hash-object", "-w", "--no-filters", "--", str(content_file)).strip()
        _git(repo, "update-index", "--cacheinfo", f"{mode},{blob_id},{relative}", env=index)
        tree = _git(repo, "write-tree", env=index).strip()
    who = {"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1]}
    return _git(repo, "commit-tree", tree, "-p", parent, "-F", "-", stdin=message, env=who).strip()
