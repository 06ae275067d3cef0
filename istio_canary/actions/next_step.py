"""A stack's next step, and the rollback that blocks it: the planner's reading of the stack file and its history."""

from __future__ import annotations

from istio_canary import gitops
from istio_canary.actions.context import Context
from istio_canary.release import steps
from istio_canary.release.settings import PROJECT


def rolled_back(ctx: Context, *, required: bool) -> str | None:
    """The rollback commit subject when the current canaryVersion was rolled back at weight 0, else None."""
    app = ctx.view.app
    if app.canary_weight != 0 or app.canary_version == app.ga_version:
        return None
    try:
        return gitops.rolled_back(
            ctx.repo, ctx.stack.path, ctx.view.canary_workload, app.canary_version, f"{PROJECT}:canaryVersion:"
        )
    except gitops.GitError:
        if required:
            raise
        return None  # `status` outside a git repository: no history to read


def next_step(ctx: Context, *, required: bool) -> tuple[steps.Step, str | None]:
    """The planner's next step for this stack, and the rollback subject that blocks it (if any)."""
    app = ctx.view.app
    subject = rolled_back(ctx, required=required)
    step = steps.next_step(
        app.canary_weight,
        ctx.view.release.steps,
        app.ga_version,
        app.canary_version,
        rolled_back=bool(subject),
        shapes=ctx.view.release.shapes,
        shape=app.canary_shape,
    )
    return step, subject
