"""What the agent tells people and counts: Slack notices, posted one after another from a thread of their own;
the drift and "no verdict" notices of a decision; work skipped this pass (canary_agent_skipped_total{stack,work,
reason}), logged and noticed once until the same work succeeds again; and a clone found unusable and rebuilt by a
sync."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path

from istio_canary import notify
from istio_canary.agent import workspace
from istio_canary.agent.metrics import Metrics
from istio_canary.agent.options import Memory, Options
from istio_canary.release import decide
from istio_canary.stackfile import StackView

log = logging.getLogger("canary.agent")
MAX_QUEUED_NOTICES = 100
# What skipped work is counted as (canary_agent_skipped_total{work}).
JUDGE, ROLLBACK_WORK, PROPOSAL, IMAGES, NOTICE = "judge", "rollback", "proposal", "images", "notice"


class Notices:
    """Slack notices, posted one after another from a thread of their own: a slow or dead webhook delays no
    rollback and no pass. A full queue drops the notice (counted)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.queue: queue.Queue[tuple[Path, str, str]] = queue.Queue(MAX_QUEUED_NOTICES)
        threading.Thread(target=self._post, name="canary-notices", daemon=True).start()

    def send(self, repo: Path, stack: str, text: str) -> None:
        try:
            self.queue.put_nowait((repo, stack, text))
        except queue.Full:
            self.metrics.skipped.labels(stack, NOTICE, "queue-full").inc()

    def _post(self) -> None:
        while True:
            repo, stack, text = self.queue.get()
            try:
                if os.environ.get(notify.ENV_VAR, "").strip() and not notify.send(text, repo, stack, None):
                    self.metrics.skipped.labels(stack, NOTICE, "failed").inc()
            except Exception as exc:  # noqa: BLE001 - a notice never ends its thread
                log.error("notice for %s failed: %s: %s", stack, type(exc).__name__, exc)
            finally:
                self.queue.task_done()

    def drain(self, timeout: float) -> None:
        """Wait (at most `timeout`) until every queued notice has been tried."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)


def _notices(
    memory: Memory, notices: Notices, repo: Path, stack: str, view: StackView, decision: decide.Decision
) -> None:
    """Drift and "no verdict" notices, once each until the condition clears; queued, never waited for."""
    if decision.drift and "drift" not in memory.noticed:
        memory.noticed.add("drift")
        notices.send(repo, stack, f":warning: {view.app.name} ({stack}): {decision.why}")
    elif not decision.drift:
        memory.noticed.discard("drift")
    if decision.action != decide.NOTICE:
        memory.noticed.discard("silence")
    elif "silence" not in memory.noticed:
        memory.noticed.add("silence")
        notices.send(
            repo, stack, f":hourglass: {view.app.name} ({stack}): {decision.why}; not promoting, not rolling back"
        )


def _skipped(
    metrics: Metrics,
    memory: Memory,
    notices: Notices,
    repo: Path,
    stack: str,
    work: str,
    reason: str,
    detail: str,
    *,
    notice: bool = True,
) -> None:
    """Count work skipped this pass, log why, and (with `notice`) send one notice until the same work succeeds
    again."""
    metrics.skipped.labels(stack, work, reason).inc()
    detail = detail.splitlines()[0][:300] if detail else reason
    log.warning("stack %s: %s skipped (%s): %s", stack, work, reason, detail)
    if notice and f"skipped:{work}" not in memory.noticed:
        memory.noticed.add(f"skipped:{work}")
        notices.send(repo, stack, f":warning: canary agent ({stack}): {work} skipped ({reason}): {detail}")


def _recovered(memory: Memory, work: str) -> None:
    memory.noticed.discard(f"skipped:{work}")


def _sync(options: Options, metrics: Metrics, notices: Notices, path: Path, stack: str) -> Path:
    """workspace.sync, with a clone found unusable and rebuilt counted and noticed."""

    def repaired(repair: workspace.Repair) -> None:
        metrics.repairs.labels(stack).inc()
        log.warning("clone %s was unusable (%s): rebuilt from the origin", repair.path, repair.reason)
        notices.send(path, stack, f":wrench: canary agent ({stack}): its clone was unusable ({repair.reason}); rebuilt")

    return workspace.sync(options.repo_url, path, on_repair=repaired)
