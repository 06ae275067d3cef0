"""Which stacks one release agent serves: its own stack when that stack has an app (the one-stack layout), or,
for a platform stack (deployApp false), every app stack in the repository whose platformStack names it.

Contract: `survey(repo, stack)` reads the stack files of the synced clone and returns the stacks served and the
app stack files skipped; `served(repo, stack)` just the former. Neither raises.
Each app stack file is read on its own: one that cannot be read or is hostile (not a regular file, over the size
limit, an alias bomb, deep nesting: istio_canary/safeload.py), or whose reading fails in any other way, is logged
naming the file and skipped, and every other app stack is still served. Anyone who can merge an app stack file
must not be able to stop the rollbacks of the other apps on the platform.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from istio_canary import safeload
from istio_canary.release.layout import STACK_NAME
from istio_canary.stackfile import StackFile

log = logging.getLogger("canary.agent")


@dataclass(frozen=True)
class Fleet:
    """One pass's reading: the stacks to serve, in order, and the stack files skipped (name -> why)."""

    served: list[str]
    skipped: dict[str, str] = field(default_factory=dict)


def served(repo: Path, stack: str) -> list[str]:
    """The stacks an agent started for `stack` serves, read anew each pass: a merged app stack is served
    without redeploying the agent."""
    return survey(repo, stack).served


def survey(repo: Path, stack: str) -> Fleet:
    """What `served` returns, and which app stack files were skipped and why (each is logged too)."""
    try:
        if StackFile.for_stack(repo, stack).view().layout.deploy_app:
            return Fleet([stack])
    except Exception as exc:  # noqa: BLE001 - any failure to read its own stack is iterate()'s to report
        log.error("stack %s cannot be read: %s", stack, _why(exc))
        return Fleet([stack])  # iterate() reports it again, and counts nothing
    apps, skipped = [], {}
    for name in StackFile.names(repo):
        if name == stack:
            continue
        try:
            platform = _platform_of(repo / f"Pulumi.{name}.yaml", name)
        except Exception as exc:  # noqa: BLE001 - one app stack's file never stops the pass for the others
            skipped[name] = _why(exc)
            log.error("stack %s skipped this pass (Pulumi.%s.yaml): %s", name, name, skipped[name])
            continue
        if platform == stack or platform.endswith(f"/{stack}"):
            apps.append(name)
    return Fleet(apps, skipped)


def _platform_of(path: Path, name: str) -> str:
    """The platformStack of the stack `name` in `path` (empty when it has none); raises when it cannot be read."""
    if not STACK_NAME.fullmatch(name):
        raise ValueError(f"{path.name}: not a stack name Pulumi accepts")
    # Checked before StackFile reads the whole file: a link to /dev/zero or a huge file costs nothing.
    status = os.stat(path)
    if not stat.S_ISREG(status.st_mode):
        raise safeload.LimitError(f"{path.name}: not a regular file")
    if status.st_size > safeload.MAX_STACK_BYTES:
        raise safeload.LimitError(f"{path.name}: larger than {safeload.MAX_STACK_BYTES} bytes; refusing to read it")
    return StackFile(path).view().layout.platform_stack


def _why(exc: BaseException) -> str:
    """One line about `exc`: its message (which names the file) and, for an unexpected type, that type."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return first if isinstance(exc, ValueError) else f"{type(exc).__name__}: {first}"
