"""What the commands share: loading a stack under the repository lock, the Prometheus to ask, the output
channel (human lines, or one JSON object), the analysis gate, and recording a decision (commit, push, notify)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from istio_canary import analysis, gitops, httpclient, metrics, notify
from istio_canary.analysis import Analysis, Verdict
from istio_canary.exits import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_OK, EXIT_REFUSED
from istio_canary.lock import LockError, RepoLock
from istio_canary.metrics import MetricsProvider, MetricsUnavailable
from istio_canary.metrics.prometheus import TOKEN_ENV
from istio_canary.release.settings import PROJECT
from istio_canary.stackfile import StackFile, StackView

VERDICT_EXIT = {Verdict.PASS: EXIT_OK, Verdict.FAIL: EXIT_FAIL, Verdict.INCONCLUSIVE: EXIT_INCONCLUSIVE}


class Refused(Exception):
    """Stop with a message and an exit code; nothing has been committed."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


class Output:
    """Where a command writes: human lines on stdout, or with --json one JSON object on stdout and the human
    lines on stderr (so a script can parse stdout and a person still sees what happened)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = bool(getattr(args, "json", False))

    def say(self, text: str) -> None:
        print(text, file=sys.stderr if self.json else sys.stdout)

    def result(self, data: dict[str, Any]) -> None:
        if self.json:
            print(json.dumps(data, indent=2))


@dataclass
class Context:
    """The repository, the stack file, its validated release view, and the repository lock when writing.

    A context manager: leaving it releases the lock, so one process can run several commands (the tests do).
    """

    repo: Path
    stack_name: str
    stack: StackFile
    view: StackView
    invalid_weight: object = None  # rollback only: the unreadable weight that is being repaired
    for_rollback: bool = False  # validate as a rollback does: only the release keys, any weight
    lock: RepoLock | None = None
    commits: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # each commit's full message, for --json

    def recorded(self) -> dict[str, Any]:
        """The commits this run made, for --json: ids, and the last one's subject and message (a PR's title
        and body, so a workflow need not read them back from git)."""
        last = self.messages[-1] if self.messages else None
        return {
            "commits": list(self.commits),
            "subject": last.splitlines()[0] if last else None,
            "message": last,
        }

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lock:
            self.lock.close()


def repository(args: argparse.Namespace) -> Path:
    """The work tree holding -C (the directory itself when it is in none: reading needs no git)."""
    start = Path(args.repo).resolve()
    try:
        return gitops.toplevel(start)
    except gitops.GitError:
        return start


def load(args: argparse.Namespace, *, write: bool, for_rollback: bool = False) -> Context:
    """Find the repository; for a command that writes, take the lock before anything is read, so the
    clean-tree check and the file a step is computed from are the ones it commits over."""
    start = Path(args.repo).resolve()
    try:
        repo = gitops.toplevel(start)
    except gitops.GitError:
        if write:
            raise Refused(f"{start} is not inside a git work tree") from None
        repo = start
    lock = None
    if write:
        try:
            lock = RepoLock(gitops.git_dir(repo))
        except LockError as exc:
            raise Refused(str(exc)) from None
    try:
        if write:
            gitops.require_clean(repo)
        stack = StackFile.for_stack(repo, args.stack)
        invalid = None
        if for_rollback:
            view, invalid = stack.rollback_view()
        else:
            view = stack.view()
        if write:
            stack.check_writable()
    except BaseException:
        if lock:
            lock.close()
        raise
    return Context(repo, args.stack, stack, view, invalid, for_rollback, lock)


def prometheus(args: argparse.Namespace, view: StackView, *, required: bool) -> MetricsProvider | None:
    """The Prometheus to ask: --prometheus, else $PROMETHEUS_URL (both may carry user:password@ for Basic auth,
    with $PROMETHEUS_TOKEN for Bearer), else prometheusUrl from the stack file (never a credential)."""
    source, url = next(
        (
            (name, value)
            for name, value in (
                ("--prometheus", args.prometheus),
                ("$PROMETHEUS_URL", os.environ.get("PROMETHEUS_URL")),
            )
            if value
        ),
        (f"{PROJECT}:prometheusUrl", view.release.prometheus_url),
    )
    if not url:
        if required:
            raise Refused(f"no Prometheus URL: pass --prometheus, set $PROMETHEUS_URL or {PROJECT}:prometheusUrl")
        return None
    try:
        target = httpclient.parse_url(url)
    except httpclient.HttpError as exc:
        raise Refused(f"{source}: {exc}") from None
    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if (target.username is not None or token) and target.scheme != "https" and not httpclient.is_loopback(target.host):
        raise Refused(f"{source}: refusing to send credentials over plain http to {httpclient.redact(url)}; use https")
    return metrics.provider(metrics.PROMETHEUS, url, args.timeout, token)


def seconds(value: str) -> float:
    """A --timeout: a number of seconds above 0 (0 would make every request fail at once)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r}: must be a number of seconds above 0")
    return number


def at(args: argparse.Namespace) -> float:
    """--at as unix seconds (now by default)."""
    try:
        return analysis.parse_time(args.at)
    except ValueError as exc:
        raise Refused(str(exc)) from None


def evidence(result: Analysis | None, source: MetricsProvider | None, unavailable: str = "") -> str:
    """The commit body's account of the analysis a decision was taken on."""
    if unavailable:
        return f"Analysis unavailable: {unavailable}"
    if result is None:
        return "No analysis recorded."
    where = f" from {source.shown}" if source else ""
    return f"Analysis{where}:\n\n{analysis.table(result)}"


@dataclass
class Gate:
    """What the analysis before a traffic step said: a result, or why there is none."""

    result: Analysis | None = None
    source: MetricsProvider | None = None
    unavailable: str = ""  # the metrics error when --force went ahead without an analysis

    def evidence(self) -> str:
        return evidence(self.result, self.source, self.unavailable)

    def to_json(self) -> dict[str, Any] | None:
        if self.result:
            return self.result.to_json()
        return {"error": self.unavailable} if self.unavailable else None


def gate(args: argparse.Namespace, ctx: Context, out: Output) -> Gate:
    """Run the analysis that must pass before traffic moves; --force records it but does not obey it."""
    source = prometheus(args, ctx.view, required=not args.force)
    if source is None:
        return Gate()
    try:
        result = analysis.analyze(ctx.view, source, at(args))
    except MetricsUnavailable as exc:
        if not args.force:
            raise
        print(f"warning: --force: no analysis ({exc})", file=sys.stderr)
        return Gate(source=source, unavailable=str(exc))
    out.say(analysis.table(result))
    if result.verdict is not Verdict.PASS and not args.force:
        raise Refused(
            f"analysis is {result.verdict.value}; not promoting (use --force to override)", VERDICT_EXIT[result.verdict]
        )
    return Gate(result=result, source=source)


def commit(ctx: Context, out: Output, subject: str, body: str) -> str:
    """Write the stack file and commit it alone; on a failed commit undo our own edit (never a newer one)."""
    if not ctx.stack.save(rollback=ctx.for_rollback):
        raise Refused(f"{ctx.stack.path.name} would not change; nothing to commit")
    try:
        message = f"{subject}\n\n{body}".rstrip() + "\n"
        commit_id = gitops.commit(ctx.repo, ctx.stack.path, message)
    except gitops.GitError as exc:
        # A modified, staged stack file would make every later run "dirty"; a file someone changed since is theirs.
        what = "is restored" if ctx.stack.undo_save() else "was changed by someone else meanwhile and is left as it is"
        raise Refused(f"{exc}\n{ctx.stack.path.name} {what}; nothing was committed for this step") from None
    ctx.commits.append(commit_id)
    ctx.messages.append(message)
    out.say(f"committed {commit_id[:12]}: {subject}")
    return commit_id


def publish(ctx: Context, args: argparse.Namespace, out: Output, notice: str | None) -> None:
    """The tail of every decision: push this run's commits one by one (CI runs `pulumi up` per step), then
    tell Slack (unless `notice` is None). A failed push names the local commit; a failed notice is a warning."""
    if args.push:
        push(ctx, args, out)
    if notice is not None and not args.no_notify:
        notify.send(notice, ctx.repo, ctx.stack_name, ctx.stack.raw(notify.SECRET_KEY))


PUSH_TRIES = 4  # pushes of one run, first included, before "someone pushes faster than this command"


def push(ctx: Context, args: argparse.Namespace, out: Output) -> None:
    """Push ctx.commits one by one, never forced. A push rejected because someone pushed first is retried
    within this run: fetch, re-make the remaining commits as the same one-value edits on the new tip
    (istio_canary/reapply.py), push again; PUSH_TRIES pushes at most. A conflicting change on the new tip, or any
    other refusal, is Refused naming the local commit. ctx.commits/messages end as what was pushed."""
    remote = httpclient.scrub(args.remote)  # --remote may be a URL with a token in it
    branch = gitops.current_branch(ctx.repo)
    made = list(ctx.commits)
    # (commit to push, its message, the local commit it was made as): re-made commits are on no branch
    pending = [(c, m, c) for c, m in zip(ctx.commits, ctx.messages, strict=True)]
    pushed: list[tuple[str, str, str]] = []
    tip, tries = "", 0
    while pending:
        commit_id, _, local = pending[0]
        try:
            gitops.push(ctx.repo, args.remote, commit_id)
        except gitops.GitError as exc:
            tries += 1
            if not gitops.rejected_as_behind(exc):
                raise Refused(f"the push to {remote} failed: {exc}\n{_local(ctx, local, remote)}") from None
            if tries >= PUSH_TRIES:
                raise Refused(
                    f"the push to {remote} was rejected {tries} times: someone pushes to {branch} faster than this "
                    f"command; nothing was forced.\n{_local(ctx, local, remote)}"
                ) from None
            tip = _remake(ctx, args, out, pending, branch)
            continue
        out.say(f"pushed {commit_id[:12]} to {remote}")
        pushed.append(pending.pop(0))
    ctx.commits[:] = [commit_id for commit_id, _, _ in pushed]
    ctx.messages[:] = [message for _, message, _ in pushed]
    if tip:
        _follow(ctx, out, made, pushed[-1][0] if pushed else tip, branch, remote)


def _remake(
    ctx: Context, args: argparse.Namespace, out: Output, pending: list[tuple[str, str, str]], branch: str
) -> str:
    """Replace `pending` with the same edits re-made on the remote's new tip; that tip."""
    from istio_canary import reapply

    remote = httpclient.scrub(args.remote)
    local = pending[0][2]
    out.say(f"the push to {remote} was rejected: someone pushed first; re-applied on {branch} as it is now")
    try:
        tip = gitops.fetch_tip(ctx.repo, args.remote, branch)
        remade = reapply.onto(ctx.repo, tip, [c for c, _, _ in pending], ctx.stack.path, rollback=ctx.for_rollback)
    except gitops.GitError as exc:
        raise Refused(
            f"the push to {remote} was rejected and fetching {branch} failed: {exc}\n{_local(ctx, local, remote)}"
        ) from None
    except reapply.Conflict as exc:
        raise Refused(
            f"the push to {remote} was rejected (someone pushed first), and {exc}: not re-applied, nothing was "
            f"pushed for it. Look at {branch} and run the command again.\n{_local(ctx, local, remote)}"
        ) from None
    locals_ = {item.old: original for item, (_, _, original) in zip(remade, pending, strict=True)}
    pending.clear()
    for item in remade:
        subject = item.message.splitlines()[0] if item.message else item.old[:12]
        if item.new is None:
            out.say(f"{subject}: already on {remote}'s {branch} (someone made the same change first); not pushed")
        else:
            pending.append((item.new, item.message, locals_[item.old]))
    return tip


def _follow(ctx: Context, out: Output, made: list[str], final: str, branch: str, remote: str) -> None:
    """After re-made commits landed: move the local branch to them when it held only this run's commits on top
    of what the remote had (as `git pull --rebase` would); otherwise say how to follow."""
    base = gitops.run(ctx.repo, "rev-parse", f"{made[0]}^").strip()
    if gitops.head(ctx.repo) == made[-1] and gitops.is_ancestor(ctx.repo, base, final):
        try:
            gitops.run(ctx.repo, "reset", "--quiet", "--keep", final)
            return
        except gitops.GitError:
            pass
    out.say(
        f"note: {remote}'s {branch} has the re-applied commit(s) up to {final[:12]}; your local {branch} still has "
        f"{made[-1][:12]}: `git pull --rebase` to follow"
    )


def _local(ctx: Context, commit_id: str, remote: str) -> str:
    return (
        f"The local commit {commit_id[:12]} exists (HEAD is {gitops.head(ctx.repo)[:12]}): push it "
        f"yourself (git push {remote} HEAD) or drop it (git reset --hard {commit_id[:12]}~1)."
    )
