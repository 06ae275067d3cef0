"""Flux's own expected answers, as data, against our port: every case of tests/unit/data/flux_policy_cases.json.

The file holds the tables of Flux's image-reflector-controller policy tests, fluxcd/pkg/version's ParseVersion
tests and Masterminds/semver v3.5.0's constraint/version tests (inputs and expected answers, each with its source
and test name; toolchain/flux_cases.py writes it and checks each answer with the Go libraries). A case marked
`deliberate` is one of our documented differences; there the test asserts our answer (`ours`), a refusal.

The cases marked `"flux_path": false` (Masterminds' IncludePrerelease table) are what a stack's `prereleases`
option means: Flux never sets it, we do when the stack opts in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from istio_canary.release.semver import Version, parse_version
from istio_canary.release.semverrange import Constraint, RangeError
from istio_canary.release.tagpolicy import NoTagError, TagPolicy

DATA = Path(__file__).resolve().parent / "data" / "flux_policy_cases.json"
CONTENT = json.loads(DATA.read_text())
CASES: list[dict[str, Any]] = CONTENT["cases"]


def _name(case: dict[str, Any]) -> str:
    return f"{case['id']}-{case['test']}"


def _version(text: str) -> Version:
    parsed = parse_version(text)
    assert parsed is not None, f"parse_version({text!r}) is None; Flux reads it"
    return parsed


def _answer(policy: str, tags: list[str], tag_filter: str = "", extract: str = "", prereleases: bool = False) -> dict:
    """What our TagPolicy says, in the data's form: {"tag": ...} or {"error": "invalid" | "empty" | "fail"}."""
    try:
        parsed = TagPolicy.parse(policy, tag_filter, extract, prereleases)
    except NoTagError:
        raise
    except ValueError:
        return {"error": "invalid"}
    try:
        tag = parsed.latest(tags)
    except NoTagError:
        return {"error": "fail"}
    return {"error": "empty"} if tag is None else {"tag": tag}


def test_the_data_is_what_the_transcription_writes() -> None:
    """The sources and ops the file claims; the transcription keeps every Flux table (counts per test)."""
    assert set(CONTENT["sources"]) == {"flux", "semver", "version"}
    assert "v3.5.0" in CONTENT["sources"]["semver"] and "v0.16.0" in CONTENT["sources"]["version"]
    counts: dict[str, int] = {}
    for case in CASES:
        counts[case["test"]] = counts.get(case["test"], 0) + 1
        assert case["source"].split(" ", 1)[0] in CONTENT["sources"], case
        assert case.get("deliberate") is None or case["deliberate"] in CONTENT["deliberate"], case
    # Upstream table sizes (rows in the Go test tables), so a lost row shows.
    assert counts["TestConstraintCheck"] == 118 and counts["TestConstraintsCheck"] == 126
    assert counts["TestConstraintsCheckIncludePrerelease"] == 130 and counts["TestNewConstraint"] == 19
    assert counts["TestNewVersion/With loose NewVersion"] == 44 and counts["TestCompare"] == 19
    assert counts["TestParseVersion"] == 12 and counts["TestNewSemVer"] == 12
    assert len({case["id"] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [c for c in CASES if c["op"] == "version"], ids=_name)
def test_version(case: dict[str, Any]) -> None:
    """ParseVersion: three dot-separated parts, then Masterminds' loose reading (v, leading zeros)."""
    parsed = parse_version(case["text"])
    assert (parsed is not None) == case["valid"], f"parse_version({case['text']!r}) = {parsed!r}"
    if parsed is None:
        return
    for key, attribute in (("major", "major"), ("minor", "minor"), ("patch", "patch"), ("pre", "prerelease")):
        if key in case:
            assert getattr(parsed, attribute) == case[key], (key, parsed)
    if "original" in case:  # Flux answers with Original(): the tag as written
        assert _answer("semver:>=0.0.0-0", [case["text"]]) == {"tag": case["original"]}


@pytest.mark.parametrize("case", [c for c in CASES if c["op"] == "range"], ids=_name)
def test_range(case: dict[str, Any]) -> None:
    """NewConstraint accepts or refuses the range; the policy `semver:<range>` does the same."""
    expect_valid = case["valid"] if "deliberate" not in case else case["ours"]["valid"]
    try:
        Constraint.parse(case["range"])
    except RangeError:
        accepted = False
    else:
        accepted = True
    assert accepted == expect_valid
    assert _answer(f"semver:{case['range']}", []) == ({"error": "empty"} if expect_valid else {"error": "invalid"})


@pytest.mark.parametrize("case", [c for c in CASES if c["op"] == "policy"], ids=_name)
def test_policy(case: dict[str, Any]) -> None:
    """An ImagePolicy's policy is accepted or refused when it is read."""
    refused = _answer(case["policy"], []) == {"error": "invalid"}
    assert refused == (not case["valid"])


@pytest.mark.parametrize("case", [c for c in CASES if c["op"] == "check" and c.get("flux_path", True)], ids=_name)
def test_check(case: dict[str, Any]) -> None:
    """Constraints.Check over a version ParseVersion read; where Flux never gets to Check, the refusal."""
    expect = case["expect"]
    if expect == "range-refused":
        with pytest.raises(RangeError):
            Constraint.parse(case["range"])
        return
    if expect == "version-refused":
        assert parse_version(case["version"]) is None
        return
    assert Constraint.parse(case["range"]).check(_version(case["version"])) is expect


@pytest.mark.parametrize("case", [c for c in CASES if c.get("include_prerelease")], ids=_name)
def test_check_with_prereleases_option(case: dict[str, Any]) -> None:
    """Masterminds' IncludePrerelease table through the stack's `prereleases` option (not Flux's path)."""
    parsed = parse_version(case["version"])
    if parsed is None:  # a 1- or 2-part version: not a tag any policy reads
        return
    answer = _answer(f"semver:{case['range']}", [case["version"]], prereleases=True)
    assert answer == ({"tag": case["version"]} if case["expect"] else {"error": "empty"})


@pytest.mark.parametrize("case", [c for c in CASES if c["op"] == "compare"], ids=_name)
def test_compare(case: dict[str, Any]) -> None:
    """Version.Compare: precedence, build metadata ignored."""
    if case["expect"] == "version-refused":
        assert parse_version(case["a"]) is None or parse_version(case["b"]) is None
        return
    assert _version(case["a"]).compare(_version(case["b"])) == case["expect"]
    assert _version(case["b"]).compare(_version(case["a"])) == -case["expect"]


@pytest.mark.parametrize("case", [c for c in CASES if c["op"] == "latest"], ids=_name)
def test_latest(case: dict[str, Any]) -> None:
    """The tag Flux's controller picks (filter, extract, policy), none, or the policy's failure."""
    expect = case.get("ours") if "deliberate" in case else {k: case[k] for k in ("tag", "error") if k in case}
    got = _answer(case["policy"], case["tags"], case.get("filter", ""), case.get("extract", ""))
    assert got == expect


@pytest.mark.parametrize("case", [c for c in CASES if c["op"] == "filter"], ids=_name)
def test_filter(case: dict[str, Any]) -> None:
    """The filter's values: the alphabetical policies pick the tags standing for the greatest and least value."""
    items, originals = case["items"], case["originals"]
    asc = _answer("alphabetical:asc", case["tags"], case["filter"], case["extract"])
    desc = _answer("alphabetical:desc", case["tags"], case["filter"], case["extract"])
    assert asc == {"tag": originals[max(items)]}
    assert desc == {"tag": originals[min(items)]}
