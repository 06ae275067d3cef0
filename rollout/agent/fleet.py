"""Which stacks one release agent serves: its own stack when that stack has an app (the one-stack layout), or,
for a platform stack (deployApp false), every app stack in the repository whose platformStack names it.

Contract: `served(repo, stack)` reads the stack files of the synced clone and returns stack names; an unreadable
app stack file is logged and skipped (the others are still served), never raised.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rollout.stackfile import StackFile
from stacks.settings import ConfigError

log = logging.getLogger("canary.agent")


def served(repo: Path, stack: str) -> list[str]:
    """The stacks an agent started for `stack` serves, read anew each pass: a merged app stack is served
    without redeploying the agent."""
    try:
        if StackFile.for_stack(repo, stack).view().layout.deploy_app:
            return [stack]
    except ConfigError as exc:
        log.error("stack %s cannot be read: %s", stack, exc)
        return [stack]  # iterate() reports it again, and counts nothing
    apps = []
    for name in StackFile.names(repo):
        try:
            platform = StackFile.for_stack(repo, name).view().layout.platform_stack
        except ConfigError as exc:
            log.error("stack %s cannot be read: %s", name, exc)
            continue
        if platform == stack or platform.endswith(f"/{stack}"):
            apps.append(name)
    return apps
