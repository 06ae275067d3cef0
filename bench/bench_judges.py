"""Both judges over thousands of whole simulated releases (testkit/judgesim.py): for each of issue 21's scenarios
and traffic levels (the canary's requests/s at the first step), how many releases were rolled back, blocked or
finished, how fast, on how few requests a step moved, and whether the issue's targets hold:
- an A/A canary is rolled back or blocked in <= 1 % of releases at every level;
- 2x GA's errors at 10 rps are rolled back within 10 minutes in >= 95 % of releases.

    python bench/bench_judges.py [--releases N] [--seed S] [--jobs J] [--judge J] [--markdown] [--require J]

Every release draws its own stream from (seed, scenario, level, index), the same for both judges, so the judges
meet the same traffic until their decisions part. Cells are split into chunks over J processes; --judge runs one
judge only (the other's columns read n/a). Exits 1 only when a run breaks, or when --require names a judge that
misses a target.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testkit import judgesim as js  # after the sys.path set-up above

LEVELS = (1, 10, 100)
JUDGES = ("threshold", "statistical")
RELEASES = 2000
SEED = 21
CHUNK = 250  # releases per work unit: fine enough to keep two processes busy to the end
AA_LIMIT = 0.01  # rolled back or blocked
DETECTION = ("2x errors", 10, 600, 0.95)  # scenario, level, within seconds, share rolled back


@dataclass(frozen=True)
class Unit:
    """One chunk of one cell: releases first..first+count-1 of a scenario at a level under a judge."""

    scenario: js.Scenario
    judge: str
    first: int
    count: int
    seed: int


_JUDGES: dict[str, tuple[js.Judge, js.ReleaseSettings]] = {}  # per process: settings are parsed once


def run_unit(unit: Unit) -> tuple[tuple[str, float, str], list[js.Release], float]:
    """The unit's releases, and the CPU seconds they took."""
    if unit.judge not in _JUDGES:
        release = js.release_settings(unit.judge)
        _JUDGES[unit.judge] = (js.make_judge(unit.judge, release), release)
    judge, release = _JUDGES[unit.judge]
    began = time.process_time()
    outcomes = [
        js.walk(unit.scenario, judge, release, js.release_rng(unit.seed, unit.scenario, index))
        for index in range(unit.first, unit.first + unit.count)
    ]
    return (unit.scenario.name, unit.scenario.canary_rps, unit.judge), outcomes, time.process_time() - began


def target(cell: js.Cell) -> tuple[str, bool | None]:
    """The issue's target for this cell in words, and whether the cell meets it (None: no target)."""
    name, level, within, share = DETECTION
    if cell.scenario == name and cell.canary_rps == level:
        return f"rolled back in <= {within // 60} min: >= {share:.0%}", cell.rolled_back_in_10m >= share
    if not next(s for s in js.scenarios() if s.name == cell.scenario).bad:
        return f"rolled back or blocked: <= {AA_LIMIT:.0%}", cell.rolled_back + cell.blocked <= AA_LIMIT
    return "", None


def percent(share: float) -> str:
    return f"{100 * share:.1f} %"


def minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.0f}"


def columns(cell: js.Cell | None) -> list[str]:
    """One judge's figures for a row: outcome shares, rolled back within 10 min, time to rollback p50/p95 and to
    finish p50 in minutes, the fewest canary requests behind a pass that moved a step, target met."""
    if cell is None:
        return ["n/a"] * 6
    met = target(cell)[1]
    return [
        f"{percent(cell.rolled_back)} / {percent(cell.blocked)} / {percent(cell.finished)}",
        percent(cell.rolled_back_in_10m),
        f"{minutes(cell.rollback_p50_s)} / {minutes(cell.rollback_p95_s)}",
        minutes(cell.finish_p50_s),
        "-" if cell.fewest_pass_requests is None else str(cell.fewest_pass_requests),
        "" if met is None else ("yes" if met else "**no**"),
    ]


HEADS: tuple[str, ...] = (
    *("rolled back / blocked / finished", "rolled back <= 10 min", "min to rollback p50 / p95", "min to finish p50"),
    *("fewest requests behind a pass", "target met"),
)


def markdown(cells: dict[tuple[str, float, str], js.Cell], judges: Sequence[str]) -> str:
    head = ["scenario", "canary rps", "target"] + [f"{judge}: {h}" for judge in judges for h in HEADS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scenario in js.scenarios():
        for level in LEVELS:
            row = [cells.get((scenario.name, float(level), judge)) for judge in judges]
            known = next((cell for cell in row if cell is not None), None)
            words = target(known)[0] if known else ""
            cols = [scenario.name, str(level), words] + [c for cell in row for c in columns(cell)]
            lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def text(cells: dict[tuple[str, float, str], js.Cell], judges: Sequence[str]) -> str:
    rows: list[tuple[str, ...]] = [("scenario", "rps", "judge", *HEADS, "target")]
    for scenario in js.scenarios():
        for level in LEVELS:
            for judge in judges:
                cell = cells.get((scenario.name, float(level), judge))
                words = target(cell)[0] if cell else ""
                rows.append((scenario.name, str(level), judge, *columns(cell), words))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=RELEASES, help="releases per cell (default %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="the runs' seed (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes (default %(default)s)")
    parser.add_argument("--markdown", action="store_true", help="one Markdown table, the judges side by side")
    parser.add_argument("--judge", choices=JUDGES, action="append", help="only this judge (repeatable)")
    parser.add_argument("--require", choices=JUDGES, action="append", default=[], help="exit 1 if it misses a target")
    args = parser.parse_args(argv)
    if args.releases < 1 or args.jobs < 1:
        parser.error("--releases and --jobs must be at least 1")
    judges = [judge for judge in JUDGES if judge in args.judge] if args.judge else list(JUDGES)
    if set(args.require) - set(judges):
        parser.error("--require names a judge that --judge leaves out")
    # Heavy cells (low traffic: long or blocked releases) first, so the last chunks to finish are short ones.
    units = [
        Unit(scenario.at(level), judge, first, min(CHUNK, args.releases - first), args.seed)
        for level in LEVELS
        for scenario in js.scenarios()
        for judge in judges
        for first in range(0, args.releases, CHUNK)
    ]
    began = time.monotonic()
    outcomes: dict[tuple[str, float, str], list[js.Release]] = defaultdict(list)
    cpu = 0.0
    with multiprocessing.Pool(args.jobs) as pool:
        for key, releases, seconds in pool.imap_unordered(run_unit, units):
            outcomes[key].extend(releases)
            cpu += seconds
    wall = time.monotonic() - began
    scenarios = {(s.name, float(level)): s.at(level) for s in js.scenarios() for level in LEVELS}
    cells = {key: js.summarize(scenarios[key[:2]], key[2], found) for key, found in outcomes.items()}
    print(markdown(cells, JUDGES) if args.markdown else text(cells, judges))
    total = sum(len(found) for found in outcomes.values())
    print(
        f"\n{total} releases ({args.releases} per cell, seed {args.seed}) in {wall:.0f} s on {args.jobs} "
        f"process(es): {cpu:.0f} s of CPU, {total / cpu:.0f} releases per CPU second"
    )
    misses = [key for key, cell in cells.items() if key[2] in args.require and target(cell)[1] is False]
    for scenario, level, judge in misses:
        print(f"FAIL: the {judge} judge misses the target for {scenario} at {level:g} rps", file=sys.stderr)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
