"""Property-based tests: let hypothesis look for the next hostile input instead of listing them by hand.

- the settings parser: any value for any key is accepted or refused naming that key, never a crash;
- the verdict: nothing outside finite, non-negative numbers ever yields PASS (nor FAIL: that rolls back);
- the stack-file editor: any file it accepts comes back with exactly one value changed and every other
  byte kept, or it refuses and changes nothing.
"""

from __future__ import annotations

import difflib
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from istio_canary import pulumiform
from istio_canary.analysis import ImpossibleMetrics, Measurement, Verdict, judge
from istio_canary.release.checks import MAX, Check, builtin_checks
from istio_canary.release.settings import PROJECT, ConfigError, schema
from istio_canary.stackfile import StackFile
from istio_canary.yamledit import load, plain
from scripts.fuzz_config import CORPUS, classify, run

# --- settings -----------------------------------------------------------------------------------------

scalars = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789.-_:/v x*?", max_size=20),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from([c for c in CORPUS if isinstance(c, str)]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(st.text(max_size=8), scalars, max_size=2))


@settings(max_examples=1500, deadline=None)
@given(key=st.sampled_from(sorted(schema())), value=values)
def test_every_value_is_accepted_or_refused_naming_its_key(key, value):
    assert classify(key, value) in ("accepted", "refused")


def test_the_fuzz_script_finds_no_crash_and_no_unnamed_refusal():
    total, _per_key, bad = run(extra=20)
    assert bad == []
    assert total["refused"] > total["accepted"] > 0  # the corpus is mostly hostile, and some of it is fine


# --- the verdict --------------------------------------------------------------------------------------

numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**12),
    st.booleans(),
)
CHECKS = (
    *builtin_checks(min_requests=100, min_success_rate=99.0, max_p99_ms=500, max_p99_over_ga_pct=50),
    Check("errors_per_s", 'sum(rate(x{w="{workload}"}[{window}]))', MAX, 2.0, max_worse_than_ga_pct=10),
)


def _sane(value) -> bool:
    return value is None or (
        not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value >= 0
    )


def _measurement(name: str, values: list) -> Measurement:
    return Measurement(name, dict(zip([c.name for c in CHECKS], values, strict=True)))


@settings(max_examples=3000, deadline=None)
@given(
    canary=st.lists(numbers, min_size=len(CHECKS), max_size=len(CHECKS)),
    ga=st.lists(numbers, min_size=len(CHECKS), max_size=len(CHECKS)),
)
def test_no_impossible_input_is_ever_a_verdict(canary, ga):
    try:
        mine, theirs = _measurement("podinfo-canary", canary), _measurement("podinfo-ga", ga)
    except ImpossibleMetrics:
        assert not all(map(_sane, canary + ga)) or any(v is not None and v > 100 for v in (canary[1], ga[1]))
        return
    assert all(map(_sane, canary + ga))
    verdict, outcomes = judge(CHECKS, mine, theirs)
    if verdict is not Verdict.INCONCLUSIVE:  # a verdict needs every value and enough traffic
        assert None not in canary and canary[0] >= 100
    if verdict is Verdict.PASS:
        for check, value, baseline in zip(CHECKS, canary, ga, strict=True):
            assert check.passes(value)
            assert baseline is None or check.within_ga(value, baseline)
    assert {o.result for o in outcomes} <= {"pass", "fail", "no-data", "too-little"}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, -1e-9, True])
def test_each_impossible_number_is_refused(bad):
    for position in range(len(CHECKS)):
        values = [3000.0, 100.0, 120.0, 0.0]
        values[position] = bad
        with pytest.raises(ImpossibleMetrics):
            _measurement("podinfo-canary", values)


def test_a_success_rate_over_100_percent_is_impossible():
    with pytest.raises(ImpossibleMetrics, match="over 100%"):
        _measurement("podinfo-canary", [3000.0, 150.0, 120.0, 0.0])


# --- the stack-file editor ----------------------------------------------------------------------------

KEYS = ["canaryWeight", "canaryVersion", "gaVersion", "analysisMaxP99Ms", "namespace", "appName"]


@st.composite
def stack_files(draw):
    """A stack file as people and `pulumi config set` write them: comments, quoting styles, lists, indents,
    CRLF, a BOM, document markers; the values are valid for their keys so the file passes validation."""
    indent = " " * draw(st.sampled_from([2, 4]))
    lines = []
    if draw(st.booleans()):
        lines.append("# " + draw(st.text(alphabet="abc :#-'\"", max_size=20)))
    if draw(st.booleans()):
        lines.append("---")
    lines.append("config:")
    present = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=len(KEYS)))
    valid = {
        "canaryWeight": st.sampled_from(["0", "10", '"60"', "'100'"]),
        "canaryVersion": st.sampled_from(["6.9.0", '"6.9.1"', "'6.10.0'", "v6.9.2"]),
        "gaVersion": st.sampled_from(["6.8.0", '"6.8.0"']),
        "analysisMaxP99Ms": st.sampled_from(["500", '"800"']),
        "namespace": st.sampled_from(["test", '"apps"', "'canary-ns'"]),
        "appName": st.sampled_from(["podinfo", '"shop"']),
    }
    for key in present:
        if draw(st.booleans()):
            lines.append(indent + "# " + draw(st.text(alphabet="abc :-", max_size=15)))
        comment = draw(st.sampled_from(["", "  # why", " #x", "   # keep: me"]))
        lines.append(f"{indent}{PROJECT}:{key}:{draw(st.sampled_from([' ', '  ']))}{draw(valid[key])}{comment}")
        if draw(st.booleans()):
            lines.append("")
    if draw(st.booleans()):
        dash = draw(st.sampled_from(["  ", ""]))
        lines += [f"{indent}{PROJECT}:canarySteps:", f"{indent}{dash}- 10", f"{indent}{dash}- 100"]
    if draw(st.booleans()):
        lines.append(f"{indent}gcp:region: europe-west1")
    if draw(st.booleans()):
        lines.append("...")
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(lines) + (eol if draw(st.booleans()) else "")
    return ("\ufeff" if draw(st.booleans()) else "") + text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=stack_files(),
    key=st.sampled_from(["canaryWeight", "canaryVersion", "analysisMaxP99Ms"]),
    new=st.sampled_from([0, 10, 60, 100, "6.9.3", "6.10.0"]),
)
def test_an_edit_changes_one_value_and_keeps_every_other_byte(text, key, new):
    assume(isinstance(new, int) != (key == "canaryVersion"))  # ints for numbers, tags for versions
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "Pulumi.dev.yaml"
        path.write_bytes(text.encode())
        stack = StackFile(path)
        before = plain(stack.doc)
        try:
            stack.set(key, new)
        except ConfigError:
            assert stack.render() == text  # refused: nothing changed
            return
        after = stack.render()
    if after == text:  # the value was already `new`, written as Pulumi writes it
        assert (before.get("config") or {}).get(f"{PROJECT}:{key}") == str(new)
        return
    eol = "\r\n" if "\r\n" in text else "\n"
    assert after.startswith("\ufeff") == text.startswith("\ufeff")
    old_lines, new_lines = text.split(eol), after.split(eol)
    changes = [op for op in difflib.SequenceMatcher(a=old_lines, b=new_lines).get_opcodes() if op[0] != "equal"]
    assert len(changes) == 1, changes
    tag, i1, i2, j1, j2 = changes[0]
    assert (tag, i2 - i1, j2 - j1) in (("replace", 1, 1), ("insert", 0, 1))
    assert f"{PROJECT}:{key}:" in new_lines[j1]
    expected = before if before else {}
    expected.setdefault("config", {})
    expected["config"] = {**(expected["config"] or {}), f"{PROJECT}:{key}": str(new)}  # Pulumi's values are strings
    assert plain(load(after.removeprefix("\ufeff"))) == expected
    assert new_lines[j1].split(" #")[0].rstrip().split(":")[-1].strip() == pulumiform.scalar(new)  # Pulumi's form
