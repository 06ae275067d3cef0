"""Recording a decision: the stack file written and committed alone."""

from __future__ import annotations

from istio_canary import gitops
from istio_canary.actions.context import Context
from istio_canary.actions.errors import Refused
from istio_canary.actions.progress import Progress


def commit(ctx: Context, progress: Progress, subject: str, body: str) -> str:
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
    progress.say(f"committed {commit_id[:12]}: {subject}")
    return commit_id
