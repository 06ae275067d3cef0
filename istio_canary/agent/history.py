"""The verdict history the agent decides on: the analysis evaluated now and at past instants one interval apart,
each over its own slice of traffic.

Prometheus keeps the data, so a restarted agent re-derives the same run of passes or failures instead of
counting in memory. It stops reading as soon as the run the decision needs is broken or long enough.

The rule that makes the window, the spacing and the threshold agree: instant k (k intervals back) judges the
window `min(analysisWindow, analysisInterval)` ending there, so no request is judged by two instants. A bad
stretch no longer than one interval then fails at most two analyses (never a rollback with analysisThreshold
>= 3), and a canary failing from time T fails every analysis whose window starts after T: it is rolled back by
the first pass after T + analysisThreshold x analysisInterval, i.e. within that plus one interval (and a scrape:
Prometheus sees samples up to one scrape late). A longer analysisWindow still serves `canary analyze`, the
gate of `canary promote` and the evidence in commits; the agent's analyses never overlap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from istio_canary import analysis
from istio_canary.metrics import MetricsProvider, MetricsUnavailable
from istio_canary.release import looks
from istio_canary.release.decide import BAD, ERROR, FAIL, INCONCLUSIVE, PASS, UNAVAILABLE
from istio_canary.release.model import ReleaseSettings
from istio_canary.stackfile import StackView

# The runs decide.py reads: passes toward a step, bad verdicts toward a rollback, silence toward a notice.
RUNS = ((PASS,), BAD, (INCONCLUSIVE, UNAVAILABLE))


@dataclass(frozen=True)
class History:
    """Verdicts newest first, one interval apart; `notes[i]` says why verdict i is an ERROR or UNAVAILABLE
    ("" otherwise); `window` is what each analysis judged."""

    verdicts: tuple[str, ...]
    notes: tuple[str, ...]
    window: str
    latest: analysis.Analysis | None = None  # the newest look, when it could be judged (its evidence is exported)

    @property
    def errors(self) -> tuple[str, ...]:
        """Why each ERROR of the newest run of bad verdicts errored, newest first (the rollback names them)."""
        run = 0
        while run < len(self.verdicts) and self.verdicts[run] in BAD:
            run += 1
        return tuple(
            note for verdict, note in zip(self.verdicts[:run], self.notes[:run], strict=True) if verdict == ERROR
        )


def window(release: ReleaseSettings) -> str:
    """The window each of the agent's analyses judges (istio_canary/release/looks.py `slice_window`)."""
    return looks.slice_window(release)


def verdict_at(
    view: StackView, source: MetricsProvider, at: float, judged: str, step_age_s: float | None = None
) -> tuple[str, str]:
    """The verdict of the analysis over the window `judged` ending at `at` (the statistical judge: the step's
    `step_age_s` so far), and why when it is ERROR (a check the backend cannot run, a garbage answer,
    impossible numbers) or UNAVAILABLE (no answer, or the backend saying it cannot serve now)."""
    verdict, note, _ = _look(view, source, at, judged, step_age_s)
    return verdict, note


def _look(
    view: StackView, source: MetricsProvider, at: float, judged: str, step_age_s: float | None
) -> tuple[str, str, analysis.Analysis | None]:
    try:
        result = analysis.analyze(view, source, at, judged, step_age_s)
    except analysis.BadCheckQuery as exc:
        return ERROR, str(exc), None
    except MetricsUnavailable as exc:
        return (ERROR if exc.answered else UNAVAILABLE), str(exc), None
    return result.verdict.value, "", result


def history(
    view: StackView,
    source: MetricsProvider,
    now: float,
    interval_s: float,
    depths: Mapping[str, int],
    seconds_live: float | None = None,
) -> History:
    """Verdicts newest first, only while they continue the newest one's run (RUNS), and at most as many as the
    decision can use for that run: `depths[newest verdict]` (1 for a verdict not named). `seconds_live`: how
    long the step has been live now (the statistical judge's window at each instant; None: Git's age)."""
    judged = window(view.release)

    def age(k: int) -> float | None:
        return None if seconds_live is None else seconds_live - k * interval_s

    verdict, note, latest = _look(view, source, now, judged, age(0))
    first = verdict, note
    run = next((kinds for kinds in RUNS if first[0] in kinds), (first[0],))
    found = [first]
    for k in range(1, depths.get(first[0], 1)):
        found.append(verdict_at(view, source, now - k * interval_s, judged, age(k)))
        if found[-1][0] not in run:
            break
    return History(tuple(v for v, _ in found), tuple(n for _, n in found), judged, latest)


def depths(release: ReleaseSettings, live_instants: int) -> dict[str, int]:
    """How far back each run is worth reading: passes only as far as the step was live (and iterations at
    most), bad verdicts as far as the larger limit, silence as far as before (threshold or iterations)."""
    bad = max(release.threshold, release.error_limit)
    quiet = max(release.threshold, release.iterations)
    return {
        PASS: max(1, min(release.iterations, live_instants)),
        FAIL: bad,
        ERROR: bad,
        INCONCLUSIVE: quiet,
        UNAVAILABLE: quiet,
    }
