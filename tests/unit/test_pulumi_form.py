"""Stack files in the form `pulumi config set` writes, so a traffic step is a one-line diff however it is made.

The form's rules (istio_canary/pulumiform.py) are checked against the real CLI in tests/engine/test_config_set.py;
here: every tracked stack file is in that form, the `canary` tool's edits keep it so, and a weight in any other
notation than plain decimal digits is refused naming the key.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from istio_canary import pulumiform
from istio_canary.release.settings import ConfigError
from istio_canary.stackfile import StackFile
from istio_canary.yamledit import load, off_pulumi_form, plain

REPO = Path(__file__).resolve().parents[2]
STACK_FILES = sorted(REPO.glob("Pulumi.?*.yaml"))
# The runbook's keys and the values its steps set (README, Canary runbook).
RUNBOOK = [
    ("canaryWeight", 10),
    ("canaryWeight", 60),
    ("canaryWeight", 100),
    ("canaryWeight", 0),
    ("canaryVersion", "6.16.0"),
    ("gaVersion", "6.15.0"),
    ("canaryShape", "mirror"),
    ("canaryShape", "header"),
    ("canaryShape", ""),
]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (60, '"60"'),
        (0, '"0"'),
        ("6.15.0", "6.15.0"),
        ("v6.15.0-rc.1", "v6.15.0-rc.1"),
        ("1.0", '"1.0"'),  # a float to a YAML reader
        ("1700000000", '"1700000000"'),  # a numerical policy's tag
        ("2025-07-03", '"2025-07-03"'),  # a timestamp
        ("v2025.07.03", "v2025.07.03"),
        ("", '""'),
        ("mirror", "mirror"),
        ("mirror:50", "mirror:50"),
        (False, '"false"'),
        ("yes", '"yes"'),  # YAML 1.1's bool
        ("0x1F", '"0x1F"'),
        ("1:20", '"1:20"'),  # base 60
        ("-listen=:5678", "-listen=:5678"),
        ("hello from echo", "hello from echo"),
        ("@team", "'@team'"),
        ("a: b", "'a: b'"),
        ("it's", "it's"),
        ("it's #1", "'it''s #1'"),  # ' #' starts a comment
        ("x #y", "'x #y'"),
        (" padded", "' padded'"),
        ("header:x-canary=always", "header:x-canary=always"),
    ],
)
def test_a_value_is_written_as_pulumi_writes_it(value, text):
    assert pulumiform.scalar(value) == text
    # and it reads back as the same string, as Pulumi keeps every value
    parsed = plain(load(f"config:\n  k: {text}\n"))["config"]["k"]
    assert parsed == ("false" if value is False else str(value))


def test_a_multi_line_value_has_no_one_line_form():
    with pytest.raises(ValueError, match="multi-line"):
        pulumiform.scalar("a\nb")


@pytest.mark.parametrize("path", STACK_FILES, ids=[p.name for p in STACK_FILES])
def test_every_tracked_stack_file_is_in_pulumis_form(path):
    text = path.read_text()
    assert off_pulumi_form(text, load(text)) == [], f"{path.name}: `pulumi config set` would rewrite these lines"


def test_lines_pulumi_would_rewrite_are_found():
    text = (
        "config:\n  istio-canary:deletionProtection: false\n  istio-canary:canaryWeight: 0  # step\n"
        "  istio-canary:gaVersion: '6.8.0'\n  istio-canary:canaryVersion: 6.9.0\n"
        "  istio-canary:appArgs:\n    - -x\n"
    )
    assert off_pulumi_form(text, load(text)) == [
        ("istio-canary:deletionProtection", "false", '"false"'),
        ("istio-canary:canaryWeight", "0", '"0"'),
        ("istio-canary:gaVersion", "'6.8.0'", "6.8.0"),
    ]


@pytest.mark.parametrize("path", STACK_FILES, ids=[p.name for p in STACK_FILES])
@pytest.mark.parametrize(("key", "value"), RUNBOOK, ids=[f"{k}={v}" for k, v in RUNBOOK])
def test_a_canary_edit_changes_one_line_and_keeps_the_file_in_pulumis_form(tmp_path, path, key, value):
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    stack = StackFile(copy)
    stack.set(key, value)
    after = stack.render()
    before = path.read_text()
    assert off_pulumi_form(after, load(after)) == []
    if after == before:  # the file already held that value
        assert plain(load(before))["config"].get(f"istio-canary:{key}") == str(value)
        return
    changed = [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert [line for line in changed if line.startswith("+")] == [f"+  istio-canary:{key}: {pulumiform.scalar(value)}"]
    assert len(changed) in (1, 2)  # the key's line replaced, or added


@pytest.mark.parametrize("notation", ["0x3C", "0o74", "074", "+60", "6_0", "60.0", "1:00", "6e1", "'0x3C'"])
def test_a_weight_not_in_plain_decimal_digits_is_refused_naming_the_key(tmp_path, notation):
    # YAML readers disagree on these (ruamel reads 1.2, Pulumi's Go reader 1.1's octals): refuse, never guess.
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(f"config:\n  istio-canary:clusterMode: existing\n  istio-canary:canaryWeight: {notation}\n")
    with pytest.raises(ConfigError, match=r"istio-canary:canaryWeight: .* a whole number from 0 to 100"):
        StackFile(path).view()


@pytest.mark.parametrize("text", ["60", '"60"', "'60'"])
def test_a_weight_in_decimal_digits_is_read_in_any_quoting(tmp_path, text):
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(f"config:\n  istio-canary:clusterMode: existing\n  istio-canary:canaryWeight: {text}\n")
    assert StackFile(path).view().app.canary_weight == 60
