"""Writes tests/unit/data/flux_policy_cases.json: the expected answers of Flux's and its semver library's own tests.

    .venv/bin/python -m toolchain.flux_cases            # rewrite the file
    .venv/bin/python -m toolchain.flux_cases --check    # exit 1 if the file differs from what would be written

Two kinds of source:
- Flux's image-reflector-controller tests (internal/policy/*_test.go, internal/controller/*_test.go) and
  fluxcd/pkg/version's TestParseVersion/TestSort are short tables, written out below by hand (inputs and expected
  answers only).
- Masterminds/semver v3.5.0's constraints_test.go and version_test.go tables are long; they are read from the module
  source in the Go module cache (`go mod download` fetches it), one (input..., expected) tuple per row.

Every case then goes through the Flux reference (toolchain/fluxpolicy) twice over: the library's own claim must hold
on the path it tested (a transcription error stops the script), and the answer on Flux's path is recorded as
`expect`. Flux's path differs from a library test's where Flux never gets that far: ParseVersion refuses a tag that
lacks three dot-separated parts (`1.4`) before NewVersion sees it, and NewConstraint refuses the empty range the
internal parser reads as `*`. Such a case keeps the library's claim in `upstream` and says why in `path`.

Out of scope (Flux never calls them): StrictNewVersion, NewVersion with CoerceNewVersion off, Validate and its
messages, IncludePrerelease (TestConstraintsCheckIncludePrerelease is kept as data marked "flux_path": false for a
stack's `prereleases` option, not counted as Flux's), Inc*, Set*, JSON/text/SQL marshalling, String forms.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolchain.flux_corpus import Answer, ours
from toolchain.fluxref import SOURCE, FluxReference, build

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "tests" / "unit" / "data" / "flux_policy_cases.json"

FLUX = "github.com/fluxcd/image-reflector-controller@debe2aaa3a98ad3ca69e178638402a5a0feec4a6"
SEMVER = "github.com/Masterminds/semver/v3@v3.5.0"
VERSION = "github.com/fluxcd/pkg/version@v0.16.0"

# Our deliberate differences from Flux: the reason ids the cases and tests/integration/test_flux_reference.py use.
DELIBERATE = {
    "extract-missing-group": "an extract template naming a group the filter lacks is refused when the policy is "
    "read (Flux expands it to an empty string, so every tag gets the same value)",
    "numerical-not-finite": "numerical values inf, infinity and nan (any case, signed) fail the policy like a "
    "non-number (Go's ParseFloat reads them; an infinite or NaN build number is a broken tag)",
    "tag-too-long": "a tag longer than 128 characters is passed over (OCI's limit on a tag; a registry that lists "
    "one is not following the distribution spec)",
}

Case = dict[str, Any]


def _flux_cases() -> list[Case]:
    """Flux's own tests, by hand: (source file, test, inputs, expected answer)."""
    cases: list[Case] = []
    pol = "flux internal/policy"
    ctl = "flux internal/controller"

    def latest(source: str, test: str, policy: str, tags: list[str], answer: dict[str, str], **filt: str) -> None:
        cases.append({"source": source, "test": test, "op": "latest", "policy": policy, "tags": tags, **filt, **answer})

    for text in ["1.0.x", "^1.0", "=1.0.0", "~1.0", ">=1.0", ">0,<2.0"]:
        cases.append(
            {"source": f"{pol}/semver_test.go", "test": "TestNewSemVer", "op": "range", "range": text, "valid": True}
        )
    for text in ["1.0.0p", "1x", "x1", "-1", "a", ""]:
        cases.append(
            {"source": f"{pol}/semver_test.go", "test": "TestNewSemVer", "op": "range", "range": text, "valid": False}
        )
    src = f"{pol}/semver_test.go"
    latest(
        src,
        "TestSemVer_Latest/With valid format",
        "semver:1.0.x",
        ["1.0.0", "1.0.0.1", "1.0.0p", "1.0.1", "1.2.0", "0.1.0"],
        {"tag": "1.0.1"},
    )
    latest(
        src,
        "TestSemVer_Latest/With valid format prefix",
        "semver:1.0.x",
        ["v1.2.3", "v1.0.0", "v0.1.0"],
        {"tag": "v1.0.0"},
    )
    latest(
        src,
        "TestSemVer_Latest/With invalid format prefix",
        "semver:1.0.x",
        ["b1.2.3", "b1.0.0", "b0.1.0"],
        {"error": "empty"},
    )
    latest(src, "TestSemVer_Latest/With empty list", "semver:1.0.x", [], {"error": "empty"})
    latest(src, "TestSemVer_Latest/With non-matching version list", "semver:1.0.x", ["1.2.0"], {"error": "empty"})

    # The CRD's enum is asc|desc (defaulted to asc); the controller upper-cases it for the ASC/DESC constants.
    for kind, test in (("numerical", "TestNewNumerical"), ("alphabetical", "TestNewAlphabetical")):
        src = f"{pol}/{kind}_test.go"
        for order, valid in (("", True), ("asc", True), ("desc", True), ("invalid", False)):
            cases.append({"source": src, "test": test, "op": "policy", "policy": f"{kind}:{order}", "valid": valid})
    src = f"{pol}/numerical_test.go"
    t = "TestNumerical_Latest/"
    latest(
        src,
        t + "With unordered list of integers ascending",
        "numerical:asc",
        ["-62", "-88", "73", "72", "15", "16", "15", "29", "-33", "-91"],
        {"tag": "73"},
    )
    latest(
        src,
        t + "With unordered list of integers descending",
        "numerical:desc",
        ["5", "-8", "-78", "25", "70", "-4", "80", "92", "-20", "-24"],
        {"tag": "-78"},
    )
    latest(
        src,
        t + "With unordered list of floats ascending",
        "numerical:asc",
        [
            "47.40896403322944",
            "-27.8520927455902",
            "-27.930666514224427",
            "-31.352485948094568",
            "-50.41072694704882",
            "-21.962849842263736",
            "24.71884721436865",
            "-39.99177354004344",
            "53.47333823144817",
            "3.2008658570411086",
        ],
        {"tag": "53.47333823144817"},
    )
    latest(
        src,
        t + "With unordered list of floats descending",
        "numerical:desc",
        [
            "-65.27202780220686",
            "57.82948329142309",
            "22.40184684363291",
            "-86.36934305697784",
            "-90.29082099756083",
            "-12.041712603564264",
            "77.70488240399305",
            "-38.98425003883552",
            "16.06867070412028",
            "53.735674335181216",
        ],
        {"tag": "-90.29082099756083"},
    )
    stamps = ["1606234201", "1606364286", "1606334092", "1606334284", "1606334201"]
    latest(src, t + "With Unix Timestamps ascending", "numerical:asc", stamps, {"tag": "1606364286"})
    latest(src, t + "With Unix Timestamps descending", "numerical:desc", stamps, {"tag": "1606234201"})
    latest(src, t + "With single value ascending", "numerical:asc", ["1"], {"tag": "1"})
    latest(src, t + "With single value descending", "numerical:desc", ["1"], {"tag": "1"})
    latest(src, t + "With invalid numerical value", "numerical:asc", ["0", "1a", "b"], {"error": "fail"})
    latest(src, t + "Empty version list", "numerical:asc", [], {"error": "empty"})

    src = f"{pol}/alphabetical_test.go"
    t = "TestAlphabetical_Latest/"
    calver = ["16.04", "16.04.1", "16.10", "20.04", "20.10"]
    names = ["xenial", "yakkety", "zesty", "artful", "bionic"]
    rfc = [
        "2021-01-08T21-18-21Z",
        "2020-05-08T21-18-21Z",
        "2021-01-08T19-20-00Z",
        "1990-01-08T00-20-00Z",
        "2023-05-08T00-20-00Z",
    ]
    latest(src, t + "With Ubuntu CalVer", "alphabetical:asc", calver, {"tag": "20.10"})
    latest(src, t + "With Ubuntu CalVer descending", "alphabetical:desc", calver, {"tag": "16.04"})
    latest(src, t + "With Ubuntu code names", "alphabetical:asc", names, {"tag": "zesty"})
    latest(src, t + "With Ubuntu code names descending", "alphabetical:desc", names, {"tag": "artful"})
    latest(src, t + "With Timestamps", "alphabetical:asc", stamps, {"tag": "1606364286"})
    latest(src, t + "With Unix Timestamps desc", "alphabetical:desc", stamps, {"tag": "1606234201"})
    latest(
        src,
        t + "With Unix Timestamps prefix",
        "alphabetical:asc",
        [f"rel-{s}" for s in stamps],
        {"tag": "rel-1606364286"},
    )
    latest(src, t + "With RFC3339", "alphabetical:asc", rfc, {"tag": "2023-05-08T00-20-00Z"})
    latest(src, t + "With RFC3339 desc", "alphabetical:desc", rfc, {"tag": "1990-01-08T00-20-00Z"})
    latest(src, t + "Empty version list", "alphabetical:asc", [], {"error": "empty"})

    # The filter's values (Flux's expected Items) for these tags; `originals` is the tag each value stands for by
    # Flux's rule (a later tag with the same value replaces an earlier one), checked against the reference.
    src = f"{pol}/filter_test.go"
    builds = ["123-123.123.abcd123-debug", "123-123.123.abcd123", "123-123.123.abcd456-debug", "123-123.123.abcd456"]
    for test, tags, pattern, extract, items in (
        ("TestRegexFilter/none", ["a"], "", "", ["a"]),
        ("TestRegexFilter/valid pattern", ["ver1", "ver2", "ver3", "rel1"], "^ver", "", ["ver1", "ver2", "ver3"]),
        (
            "TestRegexFilter/valid pattern with capture group",
            ["ver1", "ver2", "ver3", "rel1"],
            r"ver(\d+)",
            "$1",
            ["1", "2", "3"],
        ),
        (
            "TestRegexFilter/valid pattern (complex regex 1)",
            builds,
            r"^(123-[0-9]+\.[0-9]+\.[a-z0-9]+-debug)",
            "",
            ["123-123.123.abcd123-debug", "123-123.123.abcd456-debug"],
        ),
        (
            "TestRegexFilter/valid pattern with capture group (complex regex 2)",
            builds,
            r"^(?P<tag>123-[0-9]+\.[0-9]+\.[a-z0-9]+[^-debug])",
            "$tag",
            ["123-123.123.abcd123", "123-123.123.abcd456"],
        ),
        (
            "TestRegexFilter/valid pattern with capture group (complex regex 3)",
            builds,
            r"^(?P<tag>123-[0-9]+\.[0-9]+\.[a-z0-9]+$)",
            "$tag",
            ["123-123.123.abcd123", "123-123.123.abcd456"],
        ),
    ):
        cases.append(
            {
                "source": src,
                "test": test,
                "op": "filter",
                "tags": tags,
                "filter": pattern,
                "extract": extract,
                "items": items,
            }
        )

    src = f"{pol}/factory_test.go"
    cases.append(
        {"source": src, "test": "TestFactory_PolicerFromSpec", "op": "policy", "policy": "semver:1.0.x", "valid": True}
    )
    cases.append(
        {"source": src, "test": "TestFactory_PolicerFromSpec", "op": "policy", "policy": "alphabetical:", "valid": True}
    )
    cases.append(
        {"source": src, "test": "TestFactory_PolicerFromSpec", "op": "policy", "policy": "semver:*-*", "valid": False}
    )

    src = f"{ctl}/policy_test.go"
    repo = ["0.1.0", "0.1.1", "0.2.0", "1.0.0", "1.0.1", "1.0.2", "1.1.0-alpha"]
    t = "TestImagePolicyReconciler_calculateImageFromRepoTags/"
    latest(src, t + "using SemVerPolicy", "semver:1.0.x", repo, {"tag": "1.0.2"})
    latest(src, t + "using SemVerPolicy with invalid range", "semver:*-*", repo, {"error": "invalid"})
    latest(src, t + "using AlphabeticalPolicy", "alphabetical:asc", names, {"tag": "zesty"})
    tests = ["test-0.1.0", "test-0.1.1", "dev-0.2.0", "1.0.0", "1.0.1", "1.0.2", "1.1.0-alpha"]
    t = "TestImagePolicyReconciler_filterTags/"
    latest(src, t + "valid regex", "semver:>=0.x", tests, {"tag": "test-0.1.1"}, filter="^test-(.*)$", extract="$1")
    latest(src, t + "invalid regex", "semver:>=0.x", tests, {"error": "invalid"}, filter="^test-(.*", extract="$1")

    src = f"{ctl}/imagepolicy_controller_test.go"
    t = "TestImagePolicyReconciler_applyPolicy/"
    latest(src, t + "no tags in database", "semver:1.0.x", [], {"error": "empty"})
    latest(src, t + "semver, no tag filter", "semver:1.0.x", ["1.0.0", "2.0.0", "1.0.1", "1.2.0"], {"tag": "1.0.1"})
    vtags = ["v1.0.0", "v2.0.0", "v1.0.1", "v1.2.0"]
    latest(src, t + "semver with 'v' prefix, no tag filter", "semver:v1.0.x", vtags, {"tag": "v1.0.1"})
    latest(
        src,
        t + "semver with 'v' prefix but data without 'v' prefix, no tag filter",
        "semver:v1.0.x",
        ["1.0.0", "2.0.0", "1.0.1", "1.2.0"],
        {"tag": "1.0.1"},
    )
    latest(
        src,
        t + "semver without 'v' prefix but data with 'v' prefix, no tag filter",
        "semver:1.0.x",
        vtags,
        {"tag": "v1.0.1"},
    )
    latest(src, t + "invalid tag filter", "semver:1.0.x", ["1.0.0", "1.0.1"], {"error": "invalid"}, filter="[=")
    latest(
        src,
        t + "valid tag filter with numerical policy",
        "numerical:asc",
        ["1.0.0", "1.0.0-rc.1", "1.0.0-rc.2", "1.0.0-rc.3", "1.0.1-rc.2"],
        {"tag": "1.0.0-rc.3"},
        filter=r"1.0.0-rc\.(?P<num>[0-9]+)",
        extract="$num",
    )
    latest(
        src,
        t + "valid tag filter with alphabetical policy",
        "alphabetical:asc",
        ["foo-aaa", "bar-bbb", "foo-zzz", "baz-nnn", "foo-ooo"],
        {"tag": "foo-zzz"},
        filter="foo-(?P<word>[a-z]+)",
        extract="$word",
    )
    latest(
        src,
        "TestImagePolicyReconciler_digestReflection",
        "semver:v1.x",
        ["v1.0.0", "v1.1.0", "v1.1.1", "v2.0.0"],
        {"tag": "v1.1.1"},
    )

    src = "version version_test.go"
    for text, err in (
        ("v1.2.3", False),
        ("v2025.07.03", False),
        ("v1.0", True),
        ("v1", True),
        ("v1.2.beta", True),
        ("v1.2-5", True),
        ("v1.2-beta5", True),
        ("\nv1.2", True),
        ("v1.2.0-x.Y.0+metadata", False),
        ("v1.2.0-x.Y.0+metadata-width-hypen", False),
        ("v1.2.3-rc1-with-hypen", False),
        ("v1.2.3.4", True),
    ):
        cases.append({"source": src, "test": "TestParseVersion", "op": "version", "text": text, "valid": not err})
    # Sort's first element is what the semver policy picks (the highest, the first of equal ones).
    latest(
        src,
        "TestSort",
        "semver:>= 1.2.0, < 1.3.0",
        ["v1.2.0", "v1.2.3", "v1.3.0", "1.2.4", "v1.1.0", "something-invalid", "v1.2.4", "another-invalid", "1.2.4"],
        {"tag": "1.2.4"},
    )
    return cases


_LIT = r'(?:"(?:[^"\\]|\\.)*"|`[^`]*`)'


def _lit(text: str) -> str:
    return text[1:-1] if text.startswith("`") else json.loads(text)


def _body(path: Path, name: str, subtest: str = "") -> str:
    text = path.read_text()
    start = text.index(f"func {name}(")
    end = text.find("\nfunc ", start + 1)
    body = text[start : end if end > 0 else None]
    if subtest:
        at = body.index(f't.Run("{subtest}"')
        stop = body.find("t.Run(", at + 6)
        body = body[at : stop if stop > 0 else None]
    return body


def _rows(body: str, *columns: str) -> list[tuple[Any, ...]]:
    """Table rows `{a, b, ...}` whose columns are string literals (s), bools (b), ints (i) or skipped (_)."""
    pattern = {"s": f"({_LIT})", "b": "(true|false)", "i": r"(-?\d+)", "_": rf"(?:[\w.]+|{_LIT})"}
    found = re.finditer(r"\{" + r",\s*".join(pattern[c] for c in columns) + r"\}", body)
    convert: dict[str, Callable[[str], Any]] = {"s": _lit, "b": lambda v: v == "true", "i": int}
    kept = [c for c in columns if c != "_"]
    return [tuple(convert[c](v) for c, v in zip(kept, m.groups(), strict=True)) for m in found]


def _module_dir(module: str) -> Path:
    subprocess.run(["go", "mod", "download", module], cwd=SOURCE, check=True, capture_output=True, timeout=300)
    done = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", module.split("@")[0]],
        cwd=SOURCE,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Path(done.stdout.strip())


def _semver_cases() -> tuple[list[Case], list[Case]]:
    """Masterminds' tables as (library claim) cases; the second list is the IncludePrerelease table."""
    root = _module_dir(SEMVER)
    con, ver = root / "constraints_test.go", root / "version_test.go"
    src_c, src_v = "semver constraints_test.go", "semver version_test.go"
    cases: list[Case] = []
    for text, err in _rows(_body(con, "TestParseConstraint"), "s", "_", "_", "b"):
        cases.append(
            {"source": src_c, "test": "TestParseConstraint", "op": "range", "range": text, "upstream": not err}
        )
    for text, err in _rows(_body(con, "TestNewConstraint"), "s", "_", "_", "b"):
        cases.append({"source": src_c, "test": "TestNewConstraint", "op": "range", "range": text, "upstream": not err})
    cases.append(
        {
            "source": src_c,
            "test": "TestNewConstraintTooLong",
            "op": "range",
            "range": ">= 1.0.0 || " * 100,
            "upstream": False,
        }
    )
    cases.append(
        {
            "source": src_c,
            "test": "TestNewConstraintTooManyGroups",
            "op": "range",
            "range": " || ".join([">= 1.0.0"] * 33),
            "upstream": False,
        }
    )
    for test in ("TestConstraintCheck", "TestConstraintsCheck"):
        for rng, text, ok in _rows(_body(con, test), "s", "s", "b"):
            cases.append({"source": src_c, "test": test, "op": "check", "range": rng, "version": text, "upstream": ok})
    pre = [
        {
            "source": src_c,
            "test": "TestConstraintsCheckIncludePrerelease",
            "op": "check",
            "range": rng,
            "version": text,
            "upstream": ok,
            "flux_path": False,
            "include_prerelease": True,
        }
        for rng, text, ok in _rows(_body(con, "TestConstraintsCheckIncludePrerelease"), "s", "s", "b")
    ]
    for text, err in _rows(_body(ver, "TestNewVersion", "With loose NewVersion"), "s", "b"):
        cases.append(
            {
                "source": src_v,
                "test": "TestNewVersion/With loose NewVersion",
                "op": "version",
                "text": text,
                "upstream": not err,
            }
        )
    listed = _body(ver, "TestOriginal").split("for _, tc")[0]
    for m in re.finditer(_LIT, listed):
        cases.append(
            {
                "source": src_v,
                "test": "TestOriginal",
                "op": "version",
                "text": _lit(m[0]),
                "upstream": True,
                "original": _lit(m[0]),
            }
        )
    cases.append(
        {
            "source": src_v,
            "test": "TestParts",
            "op": "version",
            "text": "1.2.3-beta.1+build.123",
            "upstream": True,
            "major": 1,
            "minor": 2,
            "patch": 3,
            "pre": "beta.1",
        }
    )
    for text, shown in _rows(_body(ver, "TestCoerceString"), "s", "s"):
        numbers, _, pre_part = shown.partition("+")[0].partition("-")
        major, minor, patch = (int(n) for n in numbers.split("."))
        cases.append(
            {
                "source": src_v,
                "test": "TestCoerceString",
                "op": "version",
                "text": text,
                "upstream": True,
                "major": major,
                "minor": minor,
                "patch": patch,
                "pre": pre_part,
            }
        )
    cases.append(
        {
            "source": src_v,
            "test": "TestNewVersionTooLong",
            "op": "version",
            "text": "1.0.0-" + "a" * 256,
            "upstream": False,
        }
    )
    for a, b, order in _rows(_body(ver, "TestCompare"), "s", "s", "i"):
        cases.append({"source": src_v, "test": "TestCompare", "op": "compare", "a": a, "b": b, "upstream": order})
    for test, relation in (
        ("TestLessThan", "lt"),
        ("TestLessThanEqual", "le"),
        ("TestGreaterThan", "gt"),
        ("TestGreaterThanEqual", "ge"),
    ):
        for a, b, holds in _rows(_body(ver, test), "s", "s", "b"):
            cases.append(
                {
                    "source": src_v,
                    "test": test,
                    "op": "compare",
                    "a": a,
                    "b": b,
                    "relation": relation,
                    "upstream": holds,
                }
            )
    body = _body(ver, "TestEqual")
    for m in re.finditer(rf"\{{MustParse\(({_LIT})\),\s*MustParse\(({_LIT})\),\s*(true|false)\}}", body):
        cases.append(
            {
                "source": src_v,
                "test": "TestEqual",
                "op": "compare",
                "a": _lit(m[1]),
                "b": _lit(m[2]),
                "relation": "eq",
                "upstream": m[3] == "true",
            }
        )
    return cases, pre


def _holds(order: int, relation: str) -> bool:
    return {"lt": order < 0, "le": order <= 0, "gt": order > 0, "ge": order >= 0, "eq": order == 0}[relation]


def _resolve(case: Case, ref: FluxReference) -> None:
    """Set `expect` (Flux's path) and `path`; raise when the library's claim does not hold where it was tested."""
    op = case["op"]
    where = f"{case['test']} {case}"
    if op == "latest":
        answer = ref.ask(
            {
                "op": "latest",
                "policy": case["policy"],
                "filter": case.get("filter", ""),
                "extract": case.get("extract", ""),
                "tags": case["tags"],
            }
        )
        got = {"tag": answer["tag"]} if answer["ok"] else {"error": answer["kind"]}
        want = {k: case[k] for k in ("tag", "error") if k in case}
        assert got == want, f"transcription: reference says {got} for {where}"
        return
    if op == "filter":
        answer = ref.ask({"op": "filter", "filter": case["filter"], "extract": case["extract"], "tags": case["tags"]})
        originals = {item["value"]: item["tag"] for item in answer["items"]}
        assert sorted(originals) == case["items"], f"transcription: items {sorted(originals)} for {where}"
        case["originals"] = originals
        return
    if op in ("range", "policy"):
        if op == "policy":
            answer = ref.ask({"op": "latest", "policy": case["policy"], "tags": ["1"]})
            valid = answer["ok"] or answer["kind"] != "invalid"
        else:
            valid = ref.ask({"op": "constraint", "range": case["range"]})["ok"]
        claim = case.get("valid", case.get("upstream"))
        assert valid == claim, f"transcription: valid={valid} for {where}"
        case["valid"] = valid
        case.pop("upstream", None)
        return
    if op == "version":
        answer = ref.ask({"op": "version", "text": case["text"]})
        if "valid" in case:  # Flux's own ParseVersion table
            assert answer["ok"] == case["valid"], f"transcription: {answer} for {where}"
            return
        # The library test used NewVersion; Flux's path is ParseVersion (three dot-separated parts first).
        three = len(case["text"].split(".", 2)) == 3
        assert answer["ok"] == (case["upstream"] and three), f"transcription: {answer} for {where}"
        case["valid"] = answer["ok"]
        if answer["ok"]:
            for key in ("major", "minor", "patch", "pre", "original"):
                if key in case:
                    assert answer[key] == case[key], f"transcription: {key}={answer[key]} for {where}"
        elif case["upstream"]:
            case["path"] = "version-refused: fewer than three dot-separated parts"
            for key in ("major", "minor", "patch", "pre", "original"):
                case.pop(key, None)
        if case["upstream"] == case["valid"]:
            case.pop("upstream")
        return
    if op == "compare":
        answer = ref.ask({"op": "compare", "a": case["a"], "b": case["b"]})
        if not answer["ok"]:
            case["expect"] = "version-refused"
            case["path"] = f"version-refused: ParseVersion refuses {case[answer['what']]!r}"
            return
        relation = case.get("relation")
        claim = _holds(answer["result"], relation) if relation else answer["result"]
        assert claim == case["upstream"], f"transcription: compare={answer['result']} for {where}"
        case["expect"] = answer["result"]
        case.pop("upstream")
        case.pop("relation", None)
        return
    if op == "check":
        answer = ref.ask({"op": "check", "range": case["range"], "version": case["version"]})
        if not answer["ok"]:
            case["expect"] = f"{answer['what']}-refused"
            reason = "NewConstraint refuses it" if answer["what"] == "range" else "ParseVersion refuses it"
            case["path"] = f"{answer['what']}-refused: {reason}"
            return
        case["expect"] = answer["result"]
        if answer["result"] != case["upstream"]:
            case["path"] = "differs: the library test checked one comparator with its own pre-release flag"
        else:
            case.pop("upstream")
        return
    raise AssertionError(f"unknown op in {where}")


def cases() -> dict[str, Any]:
    """The whole file's content."""
    with FluxReference(build()) as ref:
        flux = _flux_cases()
        semver_cases, include_pre = _semver_cases()
        everything = flux + semver_cases
        for case in everything:
            _resolve(case, ref)
        for case in include_pre:
            case["expect"] = case.pop("upstream")
    for number, case in enumerate([*everything, *include_pre]):
        case["id"] = number
    return {
        "about": "Expected answers of Flux's image-reflector-controller tests and of the semver libraries it pins "
        "(inputs and answers only), each with its source (a key of sources, then the file) and test name; written by toolchain/flux_cases.py. "
        "op=version: valid is ParseVersion's answer; op=range: valid is NewConstraint's; op=policy: valid is whether "
        "the ImagePolicy is accepted; op=check: expect is Check's answer, or range-refused/version-refused where Flux "
        "never gets to Check; op=compare: expect is Compare's sign; op=latest: tag is the tag Flux picks, error is "
        "invalid (refused when read), empty (no tag) or fail (the policy fails on the tags); op=filter: items are the "
        "filter's values, originals the tag each stands for. upstream: the library test's own claim where Flux's path "
        "answers otherwise (path says why). flux_path=false: not Flux's path (kept for the prereleases option).",
        "sources": {"flux": FLUX, "semver": SEMVER, "version": VERSION},
        "deliberate": DELIBERATE,
        "cases": [*everything, *include_pre],
    }


def agrees(impl: Any, case: Case) -> bool:
    """Does `impl` (the names toolchain/flux_corpus.ours uses) give this Flux-path case's expected answer?
    A deliberate case counts as agreeing when `impl` gives our documented answer (`ours`)."""
    want = case.get("ours") if "deliberate" in case else None

    def latest(policy: str, tags: list[str], tag_filter: str = "", extract: str = "") -> Answer:
        request = {"op": "latest", "policy": policy, "tags": tags, "filter": tag_filter, "extract": extract}
        try:
            return ours(impl, request)
        except Exception as exc:  # noqa: BLE001 - a crash is a disagreement
            return ("raised", repr(exc))

    def ask(request: dict[str, Any]) -> Answer:
        try:
            return ours(impl, request)
        except Exception as exc:  # noqa: BLE001 - a crash is a disagreement
            return ("raised", repr(exc))

    op = case["op"]
    if op == "version":
        got = ask({"op": "version", "text": case["text"]})
        if (got[0] == "ok") != case["valid"]:
            return False
        fields = [case.get(key) for key in ("major", "minor", "patch", "pre")]
        if got[0] == "ok" and any(f is not None and f != g for f, g in zip(fields, got[1:], strict=True)):
            return False
        if "original" in case:
            return latest("semver:>=0.0.0-0", [case["text"]]) == ("tag", case["original"])
        return True
    if op == "range":
        valid = want["valid"] if want else case["valid"]
        got = ask({"op": "constraint", "range": case["range"]})
        policy = latest(f"semver:{case['range']}", [])
        return got == (("ok",) if valid else ("refused",)) and policy == (("empty",) if valid else ("invalid",))
    if op == "policy":
        return (latest(case["policy"], []) == ("invalid",)) == (not case["valid"])
    if op == "check":
        expect = case["expect"]
        got = ask({"op": "check", "range": case["range"], "version": case["version"]})
        return got == ((expect,) if isinstance(expect, str) else ("ok", expect))
    if op == "compare":
        got = ask({"op": "compare", "a": case["a"], "b": case["b"]})
        return got == ((case["expect"],) if isinstance(case["expect"], str) else ("ok", case["expect"]))
    if op == "latest":
        expected = want or {k: case[k] for k in ("tag", "error") if k in case}
        got = latest(case["policy"], case["tags"], case.get("filter", ""), case.get("extract", ""))
        return got == (("tag", expected["tag"]) if "tag" in expected else (expected["error"],))
    if op == "filter":
        items, originals = case["items"], case["originals"]
        asc = latest("alphabetical:asc", case["tags"], case["filter"], case["extract"])
        desc = latest("alphabetical:desc", case["tags"], case["filter"], case["extract"])
        return asc == ("tag", originals[max(items)]) and desc == ("tag", originals[min(items)])
    raise ValueError(f"unknown op {op!r}")


def flux_path(content: dict[str, Any]) -> list[Case]:
    """The cases on Flux's own path (not the IncludePrerelease table)."""
    return [case for case in content["cases"] if case.get("flux_path", True)]


def render(content: dict[str, Any]) -> str:
    """JSON with one case a line (a diff shows which case changed)."""
    head = {k: v for k, v in content.items() if k != "cases"}
    lines = [json.dumps(case, ensure_ascii=False) for case in content["cases"]]
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    return text + ',\n "cases": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"


def main(argv: list[str]) -> int:
    text = render(cases())
    if "--check" in argv:
        same = OUTPUT.is_file() and OUTPUT.read_text() == text
        print("up to date" if same else f"{OUTPUT} differs from what toolchain/flux_cases.py writes")
        return 0 if same else 1
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
