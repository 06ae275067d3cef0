"""`pulumi config set <key> <value>` is a one-line change in every stack file the repository ships, as a new
user types it on a fresh clone: `pulumi stack init <stack>`, then the runbook's commands (README, Canary
runbook). Also after the `canary` tool has edited the file, and for any value: the tool's form of a value
(istio_canary/pulumiform.py) is compared with what the real CLI writes for a corpus of values.

Only the pulumi CLI runs here (no program, no cluster): each call is bounded by a timeout.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from istio_canary import pulumiform
from istio_canary.stackfile import StackFile
from istio_canary.yamledit import load, off_pulumi_form
from toolchain.controlplane import ControlPlaneError, find_binary

REPO = Path(__file__).resolve().parents[2]
STACK_FILES = sorted(REPO.glob("Pulumi.?*.yaml"))
# The runbook's commands: a weight step, a new canary tag, finish (GA takes the tag), the shapes, back to weights.
RUNBOOK = [
    ("canaryWeight", "60"),
    ("canaryVersion", "6.16.0"),
    ("gaVersion", "6.15.0"),
    ("canaryShape", "mirror"),
    ("canaryShape", "header"),
    ("canaryShape", ""),
]
# Values whose form the tool must get right; each is set under its own key in one `pulumi config set-all`.
CORPUS = [
    "0", "10", "100", "007", "1_000", "0x1F", "0o17", "0b101", "-5", "+5", "1.0", "1e3", ".5", ".inf", "1:20",
    "true", "False", "TRUE", "yes", "No", "on", "OFF", "y", "n", "~", "null", "NULL", "",
    "6.15.0", "v6.15.0", "6.15.0-rc.1", "v2025.07.03", "2025-07-03", "2025-07-03T10:00:00Z", "1700000000",
    "main-0a1b2c3-1700000000", "mirror", "mirror:50", "header:x-canary=always", "cookie:canary=always",
    "-listen=:5678", "hello from echo", "@team", "a: b", "a #b", "it's", "#x", "- x", "-", "?x", "? x", "%x",
    "*x", "&x", "!x", "|x", ">x", "`x`", "'x'", '"x"', "[x]", "{x}", "a,b", " padded", "padded ", "x:", "10m",
    "europe-west1", "ghcr.io/stefanprodan/podinfo", "https://prometheus.example.com:9090/?a=b", "---", "...",
    "caf\u00e9",
]  # fmt: skip


@pytest.fixture(scope="module")
def pulumi() -> str:
    try:
        return find_binary("pulumi")
    except ControlPlaneError as err:
        pytest.fail(str(err), pytrace=False)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env.update(
        PULUMI_HOME=str(home / ".pulumi"),
        PULUMI_BACKEND_URL=f"file://{home / 'backend'}",
        PULUMI_CONFIG_PASSPHRASE="",  # what scripts/up-local.sh gives a user who set none
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
    )
    (home / "backend").mkdir(parents=True, exist_ok=True)
    return env


class Clone:
    """A fresh copy of the project's Pulumi files, driven by the real CLI."""

    def __init__(self, root: Path, pulumi: str) -> None:
        self.root, self.pulumi = root, pulumi
        root.mkdir(parents=True)
        shutil.copy(REPO / "Pulumi.yaml", root / "Pulumi.yaml")
        for path in STACK_FILES:
            shutil.copy(path, root / path.name)
        self.env = _env(root.parent / f"{root.name}-home")

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            [self.pulumi, *args, "--non-interactive"],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, f"pulumi {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}"
        return proc.stdout

    def file(self, stack: str) -> Path:
        return self.root / f"Pulumi.{stack}.yaml"


def _changes(before: str, after: str) -> list[str]:
    """The -/+ lines between two texts."""
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def _one_line(before: str, after: str, key: str, value: str) -> None:
    """Exactly the key's line changed (or was added), to the text the tool would write."""
    changes = _changes(before, after)
    line = f"  istio-canary:{key}: {pulumiform.scalar(value)}"
    if not changes:  # the file held that value already, in the same form: nothing to rewrite
        assert line in before.splitlines(), (key, value)
        return
    assert [line for line in changes if line.startswith("+")] == [f"+  istio-canary:{key}: {pulumiform.scalar(value)}"]
    removed = [line for line in changes if line.startswith("-")]
    assert len(removed) <= 1 and all(f"istio-canary:{key}:" in line for line in removed), changes


@pytest.mark.parametrize("path", STACK_FILES, ids=[p.name for p in STACK_FILES])
def test_each_runbook_command_changes_one_line_of_each_repository_stack_file(tmp_path, pulumi, path):
    stack = path.name[len("Pulumi.") : -len(".yaml")]
    clone = Clone(tmp_path / "clone", pulumi)
    clone.run("stack", "init", stack)
    initialised = clone.file(stack).read_text()
    # init adds only its passphrase salt: it rewrites nothing of the tracked file
    added = _changes(path.read_text(), initialised)
    assert all(line.startswith("+encryptionsalt: ") for line in added), added
    for key, value in RUNBOOK:
        clone.file(stack).write_text(initialised)
        clone.run("config", "set", key, value)
        _one_line(initialised, clone.file(stack).read_text(), key, value)


@pytest.mark.parametrize("path", STACK_FILES, ids=[p.name for p in STACK_FILES])
def test_after_the_canary_tools_edits_pulumi_config_set_still_changes_one_line(tmp_path, pulumi, path):
    stack = path.name[len("Pulumi.") : -len(".yaml")]
    clone = Clone(tmp_path / "clone", pulumi)
    clone.run("stack", "init", stack)
    edited = StackFile(clone.file(stack))
    for key, value in (("canaryWeight", 10), ("canaryVersion", "6.16.1"), ("canaryShape", "header")):
        edited.set(key, value)  # what promote / watch-images write (saved without validation: any stack)
    clone.file(stack).write_text(edited.render())
    assert off_pulumi_form(edited.render(), load(edited.render())) == []
    for key, value in RUNBOOK:
        clone.file(stack).write_text(edited.render())
        clone.run("config", "set", key, value)
        _one_line(edited.render(), clone.file(stack).read_text(), key, value)


def test_the_tools_form_of_a_value_is_the_one_pulumi_writes(tmp_path, pulumi):
    clone = Clone(tmp_path / "clone", pulumi)
    clone.run("stack", "init", "probe")
    pairs = [f"--plaintext=probe:v{i}={value}" for i, value in enumerate(CORPUS)]
    clone.run("config", "set-all", *pairs)
    text = clone.file("probe").read_text()
    written = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("probe:v"):
            key, _, rest = stripped.partition(": ")
            written[int(key[len("probe:v") :])] = rest
    mismatches = {
        value: (written.get(i), pulumiform.scalar(value))
        for i, value in enumerate(CORPUS)
        if written.get(i) != pulumiform.scalar(value)
    }
    assert mismatches == {}, "value: (pulumi's text, the tool's text)"
    # and Pulumi reads each back as the same string
    read = json.loads(clone.run("config", "--json"))
    assert {i: read[f"probe:v{i}"]["value"] for i in range(len(CORPUS))} == dict(enumerate(CORPUS))
