"""Our semver ranges and tag policies against Flux's own libraries, over a seeded random corpus.

The reference is toolchain/fluxpolicy (Go: Masterminds/semver v3.5.0 and fluxcd/pkg/version v0.16.0, as Flux's
image-reflector-controller pins them), built once into the toolchain cache and asked over one pipe per session.
The corpus (toolchain/flux_corpus.py) holds versions, ranges, checks, comparisons, Go floats and whole ImagePolicy
questions (policy, filter, extract, tag list); every answer must be Flux's, except where a request falls under one
of our documented deliberate differences (toolchain/flux_cases.DELIBERATE), where it must be our refusal.

Without Go the reference cannot be built: the session fails in CI (CI=true) and is skipped elsewhere, saying so.
FLUX_CORPUS_SEED / FLUX_CORPUS_SIZE draw another corpus (the default is the one CI runs).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from istio_canary.release import gosyntax, semver, semverrange, tagpolicy
from toolchain import flux_cases
from toolchain.flux_corpus import Answer, corpus, deliberate, flux, ours
from toolchain.fluxref import FluxReference, FluxReferenceError, build, go_binary

SEED = int(os.environ.get("FLUX_CORPUS_SEED", "19"))
SIZE = int(os.environ.get("FLUX_CORPUS_SIZE", "4000"))
SHOWN = 20

IMPL = SimpleNamespace(
    parse_version=semver.parse_version,
    Constraint=semverrange.Constraint,
    RangeError=semverrange.RangeError,
    TagPolicy=tagpolicy.TagPolicy,
    NoTagError=tagpolicy.NoTagError,
    parse_float=gosyntax.parse_float,
)


def open_reference() -> FluxReference:
    """The reference process; without Go it fails the test in CI (CI=true) and skips it elsewhere, saying why."""
    if go_binary() is None:
        message = "go not found on PATH: the Flux reference (toolchain/fluxpolicy) needs Go >= 1.26"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        binary = build()
    except FluxReferenceError as exc:
        pytest.fail(str(exc))
    return FluxReference(binary, timeout=10.0)


@pytest.fixture(scope="session")
def reference() -> Iterator[FluxReference]:
    with open_reference() as ref:
        yield ref


def _short(value: Any, width: int) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _table(rows: list[tuple[dict[str, Any], Answer, Answer, str]]) -> str:
    """One line a disagreement: the request (op, then its fields), Flux's answer, ours, the deliberate reason."""
    lines = [f"{'request':<120} | {'Flux':<40} | {'ours':<40} | deliberate"]
    for request, theirs, mine, reason in rows[:SHOWN]:
        fields = _short({k: v for k, v in request.items() if k != "op"}, 110)
        lines.append(f"{request['op']:<9} {fields:<110} | {_short(theirs, 40):<40} | {_short(mine, 40):<40} | {reason}")
    return "\n".join(lines)


def test_corpus_agrees_with_flux(reference: FluxReference) -> None:
    """Every request of the seeded corpus: our answer is Flux's, or our documented refusal."""
    requests = corpus(SEED, SIZE)
    wrong: list[tuple[dict[str, Any], Answer, Answer, str]] = []
    reasons: Counter[str] = Counter()
    answers: Counter[tuple[str, str]] = Counter()
    for request in requests:
        theirs = flux(reference, request)
        answers[(request["op"], str(theirs[0]))] += 1
        try:
            mine = ours(IMPL, request)
        except Exception as exc:  # noqa: BLE001 - a crash is one more disagreement, shown in the table
            mine = ("raised", f"{type(exc).__name__}: {exc}")
        special = deliberate(reference, request, theirs)
        want = theirs
        if special is not None:
            reasons[special[0]] += 1
            want = special[1]
        if mine != want:
            wrong.append((request, theirs, mine, special[0] if special else ""))
    by_op = Counter(request["op"] for request, *_ in wrong)
    assert not wrong, (
        f"{len(wrong)} of {len(requests)} requests (seed {SEED}) disagree with Flux ({dict(by_op)}); "
        f"the first {min(SHOWN, len(wrong))}:\n{_table(wrong)}"
    )
    # The corpus reaches every kind of answer, and each deliberate difference is exercised (not vacuous).
    for op, kind in [
        ("latest", "tag"),
        ("latest", "empty"),
        ("latest", "fail"),
        ("latest", "invalid"),
        ("check", "ok"),
        ("check", "range-refused"),
        ("check", "version-refused"),
        ("version", "ok"),
        ("version", "refused"),
        ("parsefloat", "ok"),
        ("parsefloat", "refused"),
    ]:
        assert answers[(op, kind)] >= 20, (op, kind, answers)
    assert set(reasons) == set(flux_cases.DELIBERATE), reasons


def test_the_cases_file_is_what_the_libraries_say(reference: FluxReference) -> None:
    """tests/unit/data/flux_policy_cases.json is exactly what toolchain/flux_cases.py writes today: each case's
    expected answer re-checked with the Go libraries (a transcription or library change shows here)."""
    assert flux_cases.render(flux_cases.cases()) == flux_cases.OUTPUT.read_text()


def test_without_go_ci_fails_and_a_desk_skips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Go on PATH: CI=true fails loudly (never a skip counted as a pass); without CI it is a visible skip."""
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no go
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="go not found"):
        open_reference()
    with pytest.raises(FluxReferenceError, match="go not found"):
        build(tmp_path / "cache")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="go not found"):
        open_reference()


def test_a_bad_request_gets_an_error_line_and_the_process_goes_on(reference: FluxReference) -> None:
    assert reference.ask({"op": "nonsense"}) == {"ok": False, "error": 'bad request: unknown op "nonsense"'}
    assert reference.ask({"op": "version", "text": "v2025.07.03"})["minor"] == 7
