"""Prints how often our tag policies answer as Flux's image-reflector-controller does, now and at commit 0247532.

Two measures, each for the current code (istio_canary/release/semverrange.py + istio_canary/release/tagpolicy.py) and for the code before the
Flux port (istio_canary/release/tagpolicy.py + istio_canary/release/rules.py of commit 0247532, loaded from git into a temporary package):
- Flux's own cases: the Flux-path cases of tests/unit/data/flux_policy_cases.json (Flux's policy and controller
  tests, fluxcd/pkg/version's, Masterminds/semver v3.5.0's constraint and version tables);
- the seeded corpus of tests/integration/test_flux_reference.py (seed 19, 4000 requests), judged by the Go
  reference (toolchain/fluxpolicy), per kind of request.
A refusal where Flux answers is a disagreement; a declared deliberate difference counts as agreement when the code
gives our documented answer (the old code is held to the same rule).

The old code has no semverrange; its adapter answers the same questions: a version is what its `version()` reads,
a range is its `parse_range` (pre-releases enabled range-wide when any comparator names one, as it did), a float is
its NUMBER pattern, and `latest(tags)` is `newest(tags, current="")`.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from decimal import Decimal
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from istio_canary.release import gosyntax, semver, semverrange, tagpolicy
from toolchain import flux_cases
from toolchain.flux_corpus import corpus, deliberate, flux, ours
from toolchain.fluxref import FluxReference, build

OLD = "0247532"
SEED, SIZE = 19, 4000


def load_old(workdir: Path) -> ModuleType:
    """istio_canary/release/rules.py and istio_canary/release/tagpolicy.py of commit OLD as the package `old_<commit>` (rules imported from it)."""
    package = workdir / f"old_{OLD}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("rules", "tagpolicy"):
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{OLD}:stacks/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        (package / f"{name}.py").write_text(
            text.replace("from istio_canary.release.rules import", f"from old_{OLD}.rules import")
        )
    sys.path.insert(0, str(workdir))
    return importlib.import_module(f"old_{OLD}.tagpolicy")


def old_impl(old: ModuleType) -> SimpleNamespace:
    """The names flux_corpus.ours asks for, answered by the old code."""

    class OldVersion:
        def __init__(self, v: Any) -> None:
            self.v = v
            self.major, self.minor, self.patch = v.major, v.minor, v.patch
            self.prerelease = v.prerelease or ""

        def compare(self, other: OldVersion) -> int:
            return int(self.v.compare(other.v))

    def parse_version(text: str) -> OldVersion | None:
        v = old.version(text)
        return OldVersion(v) if v is not None else None

    class OldConstraint:
        def __init__(self, ranges: Any, names_pre: bool) -> None:
            self.ranges, self.names_pre = ranges, names_pre

        @classmethod
        def parse(cls, text: str) -> OldConstraint:
            return cls(*old.parse_range(text))

        def check(self, version: OldVersion) -> bool:
            if version.prerelease and not self.names_pre:
                return False
            return any(all(old._passes(version.v, op, bound) for op, bound in b) for b in self.ranges)

    class OldPolicy:
        def __init__(self, policy: Any) -> None:
            self.policy = policy

        @classmethod
        def parse(cls, policy: str, tag_filter: str = "", extract: str = "", prereleases: bool = False) -> OldPolicy:
            return cls(old.TagPolicy.parse(policy, tag_filter, extract, prereleases))

        def latest(self, tags: list[str]) -> str | None:
            found: str | None = self.policy.newest(tags, "")
            return found

    class NeverRaised(ValueError):
        """The old code had no failing policy: it skipped what it could not read."""

    def parse_float(text: str) -> float | None:
        return float(Decimal(text)) if old.NUMBER.fullmatch(text) else None

    return SimpleNamespace(
        parse_version=parse_version,
        Constraint=OldConstraint,
        RangeError=old.PolicyError,
        TagPolicy=OldPolicy,
        NoTagError=NeverRaised,
        parse_float=parse_float,
    )


def current_impl() -> SimpleNamespace:
    return SimpleNamespace(
        parse_version=semver.parse_version,
        Constraint=semverrange.Constraint,
        RangeError=semverrange.RangeError,
        TagPolicy=tagpolicy.TagPolicy,
        NoTagError=tagpolicy.NoTagError,
        parse_float=gosyntax.parse_float,
    )


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}" if whole else "n/a"


def main() -> None:
    warnings.simplefilter("ignore", FutureWarning)  # the old code compiles Go filters with Python's re
    content = json.loads(flux_cases.OUTPUT.read_text())
    cases = flux_cases.flux_path(content)
    requests = corpus(SEED, SIZE)
    with tempfile.TemporaryDirectory(prefix="bench-flux-") as tmp:
        impls = {"current": current_impl(), OLD: old_impl(load_old(Path(tmp)))}
        with FluxReference(build()) as ref:
            start = time.perf_counter()
            judged = []
            for request in requests:
                theirs = flux(ref, request)
                special = deliberate(ref, request, theirs)
                judged.append((request, special[1] if special else theirs))
            reference_s = time.perf_counter() - start
        print(f"flux_reference_corpus_s {reference_s:.2f}")
        print(f"flux_cases_total {len(cases)}")
        print(f"flux_corpus_seed {SEED} size {SIZE}")
        for name, impl in impls.items():
            agree = sum(flux_cases.agrees(impl, case) for case in cases)
            by_op: Counter[str] = Counter()
            agree_op: Counter[str] = Counter()
            for request, want in judged:
                by_op[request["op"]] += 1
                try:
                    mine = ours(impl, request)
                except Exception as exc:  # noqa: BLE001 - a crash is a disagreement
                    mine = ("raised", repr(exc))
                agree_op[request["op"]] += mine == want
            print(f"flux_cases_agree_{name}_pct {pct(agree, len(cases))} ({agree}/{len(cases)})")
            total = sum(agree_op.values())
            print(f"flux_corpus_agree_{name}_pct {pct(total, len(judged))} ({total}/{len(judged)})")
            for op in sorted(by_op):
                print(f"flux_corpus_agree_{name}_{op}_pct {pct(agree_op[op], by_op[op])} ({agree_op[op]}/{by_op[op]})")


if __name__ == "__main__":
    main()
