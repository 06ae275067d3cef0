"""What one look of the agent (or one `canary analyze`) judges: the window of traffic, and which look of the step
it is.

The threshold judge judges one slice of traffic per look, `min(analysisWindow, analysisInterval)`, so no request
counts in two verdicts (istio_canary/agent/history.py). The statistical judge judges everything the step has
served since it went live: its sequential tests are built to be looked at again and again as the counts grow,
and look k spends its own share of the error budget (istio_canary/release/sequential.py `look_level`), which is
why the look's number travels with the window.
"""

from __future__ import annotations

from dataclasses import dataclass

from istio_canary.release.model import STATISTICAL_JUDGE, ReleaseSettings
from istio_canary.release.names import duration_seconds

# Prometheus answers increase() over hours cheaply; past this a step that has not decided is judged on its
# newest six hours (a step that long is waiting for a person anyway).
MAX_STATISTICAL_WINDOW_S = 6 * 3600


@dataclass(frozen=True)
class Window:
    """The traffic one look judges: the `seconds` ending at the look's instant; `look` is 1, 2, ... within the
    step (0 for the threshold judge, whose looks are independent)."""

    seconds: int
    look: int

    @property
    def duration(self) -> str:
        """As a Prometheus range, e.g. `420s`."""
        return f"{self.seconds}s"


def slice_window(release: ReleaseSettings) -> str:
    """The window of one look of the agent, as a Prometheus range in the stack's own unit: analysisWindow, cut to
    one analysisInterval, so no request counts in two verdicts (istio_canary/agent/history.py). The statistical
    judge judges the whole step so far: one interval is the least it judges, and what decides which past
    instants judged traffic of this step."""
    if release.judge == STATISTICAL_JUDGE:
        return release.interval
    if release.window_s <= release.interval_s:
        return release.window
    return release.interval


def judged_window(release: ReleaseSettings, seconds_live: float) -> Window | None:
    """The window a look judges when the step has been live `seconds_live`; None when the statistical judge has
    less than one interval of the step to judge (inconclusive: too early)."""
    if release.judge != STATISTICAL_JUDGE:
        return Window(duration_seconds(slice_window(release)), 0)
    if seconds_live < release.interval_s:
        return None
    return Window(int(min(seconds_live, MAX_STATISTICAL_WINDOW_S)), int(seconds_live // release.interval_s))
