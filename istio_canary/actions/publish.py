"""The tail of every decision: push the run's commits one by one (re-made on the remote's new tip when someone
pushed first), then tell Slack."""

from __future__ import annotations

from dataclasses import dataclass

from istio_canary import gitops, httpclient, notify, reapply
from istio_canary.actions.context import Context
from istio_canary.actions.errors import Refused
from istio_canary.actions.progress import Progress

PUSH_TRIES = 4  # pushes of one run, first included, before "someone pushes faster than this command"


@dataclass(frozen=True)
class PublishOptions:
    """--push, --remote and --no-notify."""

    push: bool = False
    remote: str = "origin"  # a name or a URL (which may hold a token: it is never shown)
    notify: bool = True


def publish(ctx: Context, options: PublishOptions, progress: Progress, notice: str | None) -> None:
    """The tail of every decision: push this run's commits one by one (CI runs `pulumi up` per step), then
    tell Slack (unless `notice` is None). A failed push names the local commit; a failed notice is a warning."""
    if options.push:
        push(ctx, options.remote, progress)
    if notice is not None and options.notify:
        notify.send(notice, ctx.repo, ctx.stack_name, ctx.stack.raw(notify.SECRET_KEY))


def push(ctx: Context, to: str, progress: Progress) -> None:
    """Push ctx.commits one by one to the remote `to`, never forced. A push rejected because someone pushed first
    is retried within this run: fetch, re-make the remaining commits as the same one-value edits on the new tip
    (istio_canary/reapply.py), push again; PUSH_TRIES pushes at most. A conflicting change on the new tip, or any
    other refusal, is Refused naming the local commit. ctx.commits/messages end as what was pushed."""
    remote = httpclient.scrub(to)  # --remote may be a URL with a token in it
    branch = gitops.current_branch(ctx.repo)
    made = list(ctx.commits)
    # (commit to push, its message, the local commit it was made as): re-made commits are on no branch
    pending = [(c, m, c) for c, m in zip(ctx.commits, ctx.messages, strict=True)]
    pushed: list[tuple[str, str, str]] = []
    tip, tries = "", 0
    while pending:
        commit_id, _, local = pending[0]
        try:
            gitops.push(ctx.repo, to, commit_id)
        except gitops.GitError as exc:
            tries += 1
            if not gitops.rejected_as_behind(exc):
                raise Refused(f"the push to {remote} failed: {exc}\n{_local(ctx, local, remote)}") from None
            if tries >= PUSH_TRIES:
                raise Refused(
                    f"the push to {remote} was rejected {tries} times: someone pushes to {branch} faster than this "
                    f"command; nothing was forced.\n{_local(ctx, local, remote)}"
                ) from None
            tip = _remake(ctx, to, progress, pending, branch)
            continue
        progress.say(f"pushed {commit_id[:12]} to {remote}")
        pushed.append(pending.pop(0))
    ctx.commits[:] = [commit_id for commit_id, _, _ in pushed]
    ctx.messages[:] = [message for _, message, _ in pushed]
    if tip:
        _follow(ctx, progress, made, pushed[-1][0] if pushed else tip, branch, remote)


def _remake(ctx: Context, to: str, progress: Progress, pending: list[tuple[str, str, str]], branch: str) -> str:
    """Replace `pending` with the same edits re-made on the remote's new tip; that tip."""
    remote = httpclient.scrub(to)
    local = pending[0][2]
    progress.say(f"the push to {remote} was rejected: someone pushed first; re-applied on {branch} as it is now")
    try:
        tip = gitops.fetch_tip(ctx.repo, to, branch)
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
            progress.say(f"{subject}: already on {remote}'s {branch} (someone made the same change first); not pushed")
        else:
            pending.append((item.new, item.message, locals_[item.old]))
    return tip


def _follow(ctx: Context, progress: Progress, made: list[str], final: str, branch: str, remote: str) -> None:
    """After re-made commits landed: move the local branch to them when it held only this run's commits on top
    of what the remote had (as `git pull --rebase` would); otherwise say how to follow."""
    base = gitops.run(ctx.repo, "rev-parse", f"{made[0]}^").strip()
    if gitops.head(ctx.repo) == made[-1] and gitops.is_ancestor(ctx.repo, base, final):
        try:
            gitops.run(ctx.repo, "reset", "--quiet", "--keep", final)
            return
        except gitops.GitError:
            pass
    progress.say(
        f"note: {remote}'s {branch} has the re-applied commit(s) up to {final[:12]}; your local {branch} still has "
        f"{made[-1][:12]}: `git pull --rebase` to follow"
    )


def _local(ctx: Context, commit_id: str, remote: str) -> str:
    return (
        f"The local commit {commit_id[:12]} exists (HEAD is {gitops.head(ctx.repo)[:12]}): push it "
        f"yourself (git push {remote} HEAD) or drop it (git reset --hard {commit_id[:12]}~1)."
    )
