"""The agent's clone of the repository: synced to the remote's main before every decision.

The Git token never appears in a URL, an argument list or a file: it reaches git as an `http.extraHeader`
through GIT_CONFIG_* environment variables of this process (so `git push` run by the canary commands gets
it too), and only for an https remote.

A clone the agent cannot use is rebuilt in the same sync. The workdir outlives the container (an emptyDir),
so a git killed mid-command (the container restarted, a command over its timeout) leaves its lock file, a
half-written ref or index behind, and every later git command in the clone fails. sync() checks the clone
first; when it is unusable, and nothing can still be using it (no running git has its working directory
there, and the repository lock of the canary commands, istio_canary/lock.py, is free), the clone is moved aside
(the last broken one is kept for a post-mortem) and cloned again from the origin. The caller hears of it
through `on_repair` (a metric and a notice in the loop). An unreachable origin is not a repair: the clone
is left as it is and the error raised.

Proposal branches: the agent owns only branches under `canary/`, and rewrites one only while every commit
the rewrite would drop was written (authored and committed) by the agent itself; the push carries
--force-with-lease with the remote tip it checked, so a reviewer who pushes in between wins.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from istio_canary import gitops
from istio_canary.lock import LOCK_NAME, LockError, RepoLock

log = logging.getLogger("canary.agent")

BRANCH = "main"
IDENTITY = (("user.name", "canary-agent"), ("user.email", "canary-agent@users.noreply.github.com"))
OWN_BRANCHES = "canary/"  # the proposal branches the agent creates; nothing else is ever rewritten
BROKEN_SUFFIX = ".broken"  # `<workdir>.broken`: the last clone found unusable, kept for a post-mortem
PROBE_TIMEOUT_S = 30  # a look at the clone's own files; nothing here touches the network


class ForeignCommits(gitops.GitError):
    """The remote proposal branch holds commits the agent did not write; it is left as it is."""


@dataclass(frozen=True)
class Repair:
    """The clone was unusable and has been rebuilt from the origin in this sync."""

    path: Path
    reason: str  # e.g. "stale lock .git/index.lock (no git process uses the clone)"
    moved_to: Path  # where the broken clone now is (the previous one there is deleted)


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


def sync(repo_url: str, path: Path, on_repair: Callable[[Repair], None] | None = None) -> Path:
    """Clone `repo_url` into `path` once, then each time: fetch, and reset main to the remote's main.

    A clone that cannot be used is rebuilt first (see the module docstring) and `on_repair` is told; a clone
    that looks sound but will not sync while the origin answers is rebuilt too. GitError when the origin
    cannot be reached, or when the clone is unusable but something may still be using it.
    """
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        _clone(repo_url, path)
    else:
        problem = unusable(path)
        if problem is None:
            try:
                _update(path)
                return path
            except gitops.GitError:
                problem = unusable(path)
                if problem is None:
                    if not _origin_answers(repo_url, path.parent):
                        raise  # the origin's fault, not the clone's: keep it for the next pass
                    problem = "the clone does not sync although the origin answers"
        _rebuild(repo_url, path, problem, on_repair)
    _update(path)
    return path


def unusable(path: Path) -> str | None:
    """Why the clone at `path` cannot be used as it is, or None when it looks sound (a cheap local check).

    Raises GitError when it is unusable only because of a lock something may still hold.
    """
    dot_git = path / ".git"
    if not dot_git.is_dir():
        return "not a git clone (no .git)"
    if not (dot_git / "objects").is_dir():
        return "no .git/objects"
    locks = _locks(dot_git)
    if locks:
        holders = _running_git(path)
        if holders:
            raise gitops.GitError(
                f"{path} has {locks[0]} and is in use by a running git (pid {holders[0]}); not touching it"
            )
        return f"stale lock {locks[0]} (no git process uses the clone)"
    for args, why in (
        (("rev-parse", "--verify", "--quiet", "HEAD^{commit}"), "HEAD does not name a commit"),
        (("for-each-ref", "--format=%(refname)"), "a broken ref"),
        (("ls-files", "--stage"), "the index cannot be read"),
    ):
        done = _probe(path, *args)
        if done.returncode != 0 or "broken ref" in done.stderr or "ignoring ref with broken name" in done.stderr:
            detail = " ".join((done.stderr or "").split())[:200]
            return f"{why}: {detail}" if detail else why
    return None


def _locks(dot_git: Path) -> list[str]:
    """git's lock files in the clone (`index.lock`, `HEAD.lock`, `refs/.../x.lock`), not the canary one."""
    found = [p for p in dot_git.glob("*.lock") if p.name != LOCK_NAME]
    found += list((dot_git / "refs").rglob("*.lock"))
    return sorted(str(Path(".git") / p.relative_to(dot_git)) for p in found)


def _running_git(path: Path) -> list[int]:
    """Running git processes whose working directory is in `path` (git changes into the work tree first).

    The agent runs its git commands one at a time and waits for each, so at a sync none of its own runs; a
    git that still does (one killed by a timeout leaves its children; a person's `kubectl exec`) holds its
    locks for real. Without /proc (not Linux) nothing can be seen and nothing is assumed.
    """
    found = []
    target = path.resolve()
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if not (entry / "comm").read_text().startswith("git"):
                continue
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:  # gone meanwhile, or not ours to look at
            continue
        if cwd == target or target in cwd.parents:
            found.append(int(entry.name))
    return sorted(found)


def _probe(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 1, "", f"git {args[0]} took longer than {PROBE_TIMEOUT_S}s")


def _origin_answers(repo_url: str, where: Path) -> bool:
    """Does the origin list its main (run outside the clone, which may be what is broken)?"""
    try:
        out = gitops.run(where, "ls-remote", "--heads", repo_url, f"refs/heads/{BRANCH}")
    except gitops.GitError:
        return False
    return bool(out.strip())


def _clone(repo_url: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    gitops.run(path.parent, "clone", "--quiet", "--branch", BRANCH, repo_url, str(path))
    for key, value in IDENTITY:
        gitops.run(path, "config", key, value)


def _update(path: Path) -> None:
    gitops.run(path, "fetch", "--quiet", "origin", BRANCH)
    gitops.run(path, "checkout", "--quiet", "-B", BRANCH, f"origin/{BRANCH}")
    gitops.run(path, "reset", "--quiet", "--hard", f"origin/{BRANCH}")


def _rebuild(repo_url: str, path: Path, reason: str, on_repair: Callable[[Repair], None] | None) -> None:
    """Move the unusable clone aside (replacing the previous broken one) and clone again."""
    moved_to = path.with_name(path.name + BROKEN_SUFFIX)
    lock = None
    if (path / ".git").is_dir():
        try:  # the canary commands' own lock: while one holds it, the clone is not ours to move
            lock = RepoLock(path / ".git")
        except LockError as exc:
            raise gitops.GitError(f"{path} is unusable ({reason}) but {exc}") from None
    try:
        if moved_to.exists():
            shutil.rmtree(moved_to)
        path.rename(moved_to)
    finally:
        if lock is not None:
            lock.close()
    started = time.monotonic()
    _clone(repo_url, path)
    # The caller's on_repair says it loudly (a warning, a metric, a notice); this is the detail for a post-mortem.
    log.info("clone %s (%s) moved to %s and cloned again in %.1fs", path, reason, moved_to, time.monotonic() - started)
    if on_repair is not None:
        on_repair(Repair(path, reason, moved_to))


def start_branch(path: Path, branch: str) -> None:
    """A proposal branch from the remote's main (replacing an older one of the same name)."""
    gitops.run(path, "checkout", "--quiet", "-B", branch, f"origin/{BRANCH}")


def push_branch(path: Path, branch: str) -> None:
    """Push the proposal branch, replacing the remote's (each proposal carries a fresh analysis) only while
    every commit that would be dropped is the agent's own; ForeignCommits (a GitError) leaves it alone."""
    if not branch.startswith(OWN_BRANCHES):
        raise gitops.GitError(f"{branch}: the agent only pushes its own branches ({OWN_BRANCHES}...)")
    ref = f"refs/heads/{branch}"
    tip = _remote_tip(path, ref)  # "": the branch must still not exist when the push arrives
    if tip:
        gitops.run(path, "fetch", "--quiet", "--no-tags", "origin", f"+{ref}:refs/remotes/origin/{branch}")
        _check_own(path, branch, tip)
    try:
        gitops.run(path, "push", "--quiet", f"--force-with-lease={ref}:{tip}", "origin", f"{branch}:{ref}")
    except gitops.GitError:
        if _remote_tip(path, ref) != tip:  # the lease held: someone pushed between the check and the push
            raise ForeignCommits(
                f"{branch} on the remote moved while the agent pushed (someone else pushed to it); "
                "leaving the branch as it is"
            ) from None
        raise


def _remote_tip(path: Path, ref: str) -> str:
    """The commit `ref` points to on the origin, "" when it has no such ref (ls-remote matches ref tails too)."""
    for line in gitops.run(path, "ls-remote", "origin", ref).splitlines():
        sha, _, name = line.partition("\t")
        if name == ref:
            return sha
    return ""


def _check_own(path: Path, branch: str, tip: str) -> None:
    """Raise ForeignCommits unless every commit on the remote `tip` that `branch` lacks is the agent's."""
    name = gitops.run(path, "config", "user.name").strip()
    email = gitops.run(path, "config", "user.email").strip()
    dropped = gitops.run(path, "log", "--format=%H%x00%an%x00%ae%x00%cn%x00%ce", tip, f"^{branch}", "--")
    foreign = []
    for line in dropped.splitlines():
        sha, author, author_email, committer, committer_email = line.split("\0")
        if (author, author_email, committer, committer_email) != (name, email, name, email):
            if (author, author_email) != (name, email):
                foreign.append(f"{sha[:12]} by {author} <{author_email}>")
            else:
                foreign.append(f"{sha[:12]} committed by {committer} <{committer_email}>")
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ForeignCommits(
            f"{branch} on the remote has {len(foreign)} commit(s) the agent did not write ({shown}); "
            "leaving the branch as it is"
        )
