"""istio_canary/safeload.py: files the tool did not write are read within limits (size, nesting, alias expansion), and
every reader of such files (stack files, Pulumi.yaml, app stacks of a platform, preview JSON) goes through it.

The property tests build documents whose limits are known by construction (nesting depth, the nodes the aliases
stand for, a cycle) and check that the loaders accept exactly those within the limits and refuse the others with
LimitError: never a hang (a SIGALRM guard fails the test), a RecursionError or any other exception.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from istio_canary import safeload
from istio_canary.agent import fleet
from istio_canary.cli import main
from istio_canary.exits import EXIT_OK, EXIT_REFUSED
from istio_canary.release.settings import ConfigError, schema
from istio_canary.stackfile import StackFile
from istio_canary.yamledit import EditError, load
from testkit.stackfiles import stack_text

ROOT = Path(__file__).resolve().parents[2]
GUARD_S = 20  # far beyond any honest read of these small documents: reaching it means a hang
YAML_LOADERS = {"round-trip": safeload.round_trip, "safe": safeload.safe_yaml}


@contextmanager
def bounded(seconds: int = GUARD_S) -> Iterator[None]:
    """Raise TimeoutError in this thread when the block runs longer than `seconds` (a hang detector)."""

    def expire(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def glance(on: bool) -> Iterator[None]:
    """With libyaml's quick look at the nesting (when PyYAML has libyaml), or without it: the composers' own
    count must hold alone, as it does where PyYAML comes without libyaml."""
    with mock.patch.object(safeload.yaml, "__with_libyaml__", on and safeload.yaml.__with_libyaml__):
        yield


def expanded_nodes(value: Any, cap: int) -> int:
    """Nodes a reader walking `value` visits (a shared list counted each time it is reached), counting stops at
    `cap`: a loop, since the point is values that would be too deep or too big for recursion."""
    count, pending = 0, [value]
    while pending and count <= cap:
        current = pending.pop()
        count += 1
        if isinstance(current, dict):
            pending.extend(current.values())
            count += len(current)  # the keys
        elif isinstance(current, list):
            pending.extend(current)
    return count


def bomb(levels: int, fan: int, prefix: str = "b") -> tuple[str, int]:
    """Mapping lines `b0: &b0 [x, ...]`, `b1: &b1 [*b0, ...]`...; and the nodes its aliases stand for in all."""
    lines, size, aliased = [f"{prefix}0: &{prefix}0 [{', '.join(['x'] * fan)}]"], 1 + fan, 0
    for level in range(1, levels):
        lines.append(f"{prefix}{level}: &{prefix}{level} [{', '.join([f'*{prefix}{level - 1}'] * fan)}]")
        aliased += fan * size
        size = 1 + fan * size
    return "\n".join(lines) + "\n", aliased


def nested(depth: int, leaf: str = "x", mapping: bool = False) -> str:
    """A flow value `depth` collections deep around `leaf` (so depth + 1 nodes on its deepest path)."""
    if mapping:
        return "{k: " * depth + leaf + "}" * depth
    return "[" * depth + leaf + "]" * depth


# --- examples -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("loader", sorted(YAML_LOADERS))
def test_ordinary_yaml_with_a_few_aliases_and_a_merge_key_is_read(loader):
    text = "checks: &checks [{name: a, max: 1}, {name: b, max: 2}]\nstaging: *checks\nprod: *checks\n"
    text += "base: &base {x: 1}\nmerged:\n  <<: *base\n  y: 2\n"
    value = YAML_LOADERS[loader](text)
    assert value["prod"] == value["checks"] and value["merged"]["x"] == 1


@pytest.mark.parametrize("loader", sorted(YAML_LOADERS))
def test_a_billion_laughs_is_refused_at_once(loader):
    text, aliased = bomb(12, 10)
    assert aliased > 10**11 and len(text) < 1000
    with bounded(), pytest.raises(safeload.LimitError, match="aliases expand to more than"):
        YAML_LOADERS[loader](text)


@pytest.mark.parametrize("loader", sorted(YAML_LOADERS))
def test_an_alias_inside_its_own_anchor_is_refused(loader):
    with bounded(), pytest.raises(safeload.LimitError, match="cycle"):
        YAML_LOADERS[loader]("loop: &loop [x, {again: *loop}]\n")


@pytest.mark.parametrize("loader", sorted(YAML_LOADERS))
@pytest.mark.parametrize("mapping", [False, True], ids=["sequences", "mappings"])
@pytest.mark.parametrize("quick", [True, False], ids=["libyaml-glance", "composer-only"])
def test_nesting_up_to_the_limit_is_read_and_one_more_level_is_refused(loader, mapping, quick):
    read = YAML_LOADERS[loader]
    with glance(quick):
        # `a: <value>`: the root mapping is one node, the value's collections MAX_DEPTH - 2 more, the leaf the last.
        assert read(f"a: {nested(safeload.MAX_DEPTH - 2, mapping=mapping)}\n") is not None
        assert read(f"a: {nested(safeload.MAX_DEPTH - 2, '[]', mapping=mapping)}\n") is not None  # an empty one
        with bounded(), pytest.raises(safeload.LimitError, match="nested deeper than"):
            read(f"a: {nested(safeload.MAX_DEPTH - 1, mapping=mapping)}\n")


@pytest.mark.parametrize("loader", sorted(YAML_LOADERS))
@pytest.mark.parametrize("style", ["flow", "block"])
@pytest.mark.parametrize("quick", [True, False], ids=["libyaml-glance", "composer-only"])
def test_nesting_far_past_python_s_recursion_limit_is_refused_not_a_recursion_error(loader, style, quick):
    # Flow: 5000 levels on one line. Block: 300 levels, one space more each (45 kB: under the size limit).
    block = "".join(f"{' ' * level}k:\n" for level in range(300)) + f"{' ' * 300}v\n"
    with glance(quick), bounded(), pytest.raises(safeload.LimitError, match="nested deeper than"):
        YAML_LOADERS[loader](f"a: {nested(5000)}\n" if style == "flow" else block)


@pytest.mark.parametrize(
    ("loader", "limit"), [("round-trip", safeload.MAX_STACK_BYTES), ("safe", safeload.MAX_PROJECT_BYTES)]
)
def test_the_size_limit_counts_utf8_bytes(loader, limit):
    head = "a: é\n"  # 6 bytes in 5 characters
    fill = "#" * (limit - len(head.encode()) - 1) + "\n"
    assert YAML_LOADERS[loader](head + fill) == {"a": "é"}
    with pytest.raises(safeload.LimitError, match=f"larger than {limit} bytes"):
        YAML_LOADERS[loader](head + "#" + fill)


def test_json_within_the_limits_is_read_and_deep_json_is_refused_not_a_recursion_error():
    assert safeload.json_value(nested(safeload.MAX_DEPTH - 1, "1")) is not None
    assert safeload.json_value(b'{"steps": []}') == {"steps": []}
    for text in (nested(safeload.MAX_DEPTH, "1"), nested(100_000, "1"), '{"a":' * 50_000 + "1" + "}" * 50_000):
        with bounded(), pytest.raises(safeload.LimitError, match="nested deeper than"):
            safeload.json_value(text)
    with pytest.raises(safeload.LimitError, match="larger than 10 bytes"):
        safeload.json_value("[" + "1," * 10 + "1]", limit=10)
    with pytest.raises(ValueError, match="Expecting"):
        safeload.json_value("{nope")


def test_read_bytes_refuses_what_is_not_a_regular_file_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opened for reading, a FIFO would wait for a writer for ever
    (tmp_path / "zero").symlink_to("/dev/zero")  # and /dev/zero never ends
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    for path in (fifo, tmp_path / "zero", tmp_path):
        with bounded(), pytest.raises(safeload.LimitError, match="not a regular file"):
            safeload.read_bytes(path, 100)
    with pytest.raises(safeload.LimitError, match="larger than 100 bytes"):
        safeload.read_bytes(big, 100)
    assert safeload.read_bytes(big, 101) == b"x" * 101
    with pytest.raises(FileNotFoundError):
        safeload.read_bytes(tmp_path / "missing", 100)


# --- the readers that use it --------------------------------------------------------------------------


def project(directory: Path, stack: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (directory / "Pulumi.dev.yaml").write_text(stack)
    return directory


def test_a_stack_file_over_a_limit_is_a_config_error_naming_it(tmp_path):
    text, _ = bomb(10, 10, prefix="istio-canary:lol")
    hostile = stack_text() + "".join(f"  {line}\n" for line in text.splitlines())
    with pytest.raises(EditError, match="aliases expand"):
        load(hostile)
    directory = project(tmp_path, hostile)
    with bounded(), pytest.raises(ConfigError, match=r"^Pulumi\.dev\.yaml: its aliases expand"):
        StackFile.for_stack(directory, "dev")


def test_a_project_file_over_a_limit_is_a_config_error_naming_it(tmp_path):
    directory = project(tmp_path, stack_text())
    path = directory / "Pulumi.yaml"
    path.write_text(path.read_text() + f"deep: {nested(1000)}\n")
    with bounded(), pytest.raises(ConfigError, match=r"Pulumi\.yaml: cannot read the project file: nested deeper"):
        schema(path)


def app_stack(name: str, platform: str = "platform") -> str:
    text = stack_text(namespace=name).replace("istio-canary:clusterMode: gke", "istio-canary:clusterMode: stack")
    return text + f"  istio-canary:platformStack: {platform}\n  istio-canary:appName: {name}\n"


PLATFORM = """\
config:
  istio-canary:clusterMode: existing
  istio-canary:deployApp: false
  istio-canary:installMesh: false
  istio-canary:monitoring: false
  istio-canary:prometheusUrl: http://127.0.0.1:9
"""


def test_the_platform_agent_skips_each_hostile_app_stack_file_and_serves_the_others(tmp_path, caplog):
    """fleet.survey(), the agent's own choice of stacks, on a clone holding every kind of hostile app stack file."""
    repo = project(tmp_path, app_stack("dev", platform="elsewhere"))
    (repo / "Pulumi.platform.yaml").write_text(PLATFORM)
    for name in ("good", "zgood"):
        (repo / f"Pulumi.{name}.yaml").write_text(app_stack(name))
    bomb_text, _ = bomb(12, 10, prefix="istio-canary:lol")
    hostile = {
        "bomb": app_stack("bomb") + "".join(f"  {line}\n" for line in bomb_text.splitlines()),
        "deep": app_stack("deep") + f"  istio-canary:canaryMatch: {nested(300)}\n",
        "huge": app_stack("huge") + "#" * safeload.MAX_STACK_BYTES + "\n",
        "latin1": app_stack("latin1").replace("# The", "# Th\xe9"),
    }
    for name, text in hostile.items():
        (repo / f"Pulumi.{name}.yaml").write_bytes(text.encode("latin-1"))
    (repo / "Pulumi.zero.yaml").symlink_to("/dev/zero")
    (repo / "Pulumi.dangling.yaml").symlink_to(tmp_path / "nowhere")
    os.mkfifo(repo / "Pulumi.fifo.yaml")
    (repo / "Pulumi.dir.yaml").mkdir()
    with caplog.at_level(logging.ERROR, logger="canary.agent"), bounded(60):
        reading = fleet.survey(repo, "platform")
    assert reading.served == ["good", "zgood"]  # in order: a hostile file sorts between them
    assert sorted(reading.skipped) == sorted([*hostile, "zero", "dangling", "fifo", "dir"])
    assert "aliases expand" in reading.skipped["bomb"] and "nested deeper" in reading.skipped["deep"]
    assert "not a regular file" in reading.skipped["zero"] and "larger than" in reading.skipped["huge"]
    for name in reading.skipped:
        assert f"stack {name} skipped this pass (Pulumi.{name}.yaml)" in caplog.text
    assert fleet.served(repo, "platform") == ["good", "zgood"]
    assert fleet.served(repo, "dev") == ["dev"]


# --- properties ---------------------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text("abcxyz -_", max_size=6)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text("abk", max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


def depth_of(value: Any) -> int:
    """Nodes on the deepest path of a small value, its leaf included: the depth safeload counts. (A mapping's keys
    are nodes one level down, never deeper than their values.)"""
    if isinstance(value, dict):
        return 1 + max([depth_of(child) for child in value.values()], default=0)
    if isinstance(value, list):
        return 1 + max([depth_of(child) for child in value], default=0)
    return 1


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, bool]:
    """A YAML mapping from random parts, and whether it is within safeload's limits by construction."""
    base = draw(json_values)
    wrap = draw(st.integers(0, safeload.MAX_DEPTH + 40))
    kinds = draw(st.lists(st.booleans(), min_size=wrap, max_size=wrap))
    text = json.dumps(base)
    for is_map in kinds:
        text = f"{{k: {text}}}" if is_map else f"[{text}]"
    depth = 1 + wrap + depth_of(base)  # the root mapping, the wrapping, the value
    lines = [f"value: {text}"]
    levels, fan = draw(st.integers(0, 7)), draw(st.integers(1, 12))
    aliased = 0
    if levels:
        bomb_text, aliased = bomb(levels, fan)
        lines.append(bomb_text.rstrip("\n"))
        depth = max(depth, 3)
    cycle = draw(st.booleans()) and draw(st.booleans())
    shared = draw(st.integers(0, 30))  # ordinary sharing: a small anchored list used again and again
    sharing = ["shared: &shared [a, b, c]", *(f"use{n}: *shared" for n in range(shared))] if shared else []
    aliased += 4 * shared
    # Any order of the parts; within a part, each alias after its anchor.
    parts = [lines[:1], lines[1:], ["loop: &loop [x, *loop]"] if cycle else [], sharing]
    lines = [line for part in draw(st.permutations(parts)) for line in part]
    within = depth <= safeload.MAX_DEPTH and aliased <= safeload.ALIAS_NODE_BUDGET and not cycle
    return "\n".join(lines) + "\n", within


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents(), loader=st.sampled_from(sorted(YAML_LOADERS)), quick=st.booleans())
def test_any_document_is_read_within_the_limits_or_refused_never_a_hang_or_another_error(document, loader, quick):
    text, within = document
    try:
        with glance(quick), bounded():
            value = YAML_LOADERS[loader](text)
    except safeload.LimitError:
        assert not within, f"refused a document within the limits:\n{text[:2000]}"
        return
    assert within, f"read a document over a limit:\n{text[:2000]}"
    # What it returns costs a reader no more than the file plus the alias budget.
    assert expanded_nodes(value, cap=10**6) <= 2 * len(text) + safeload.ALIAS_NODE_BUDGET


@settings(max_examples=60, deadline=None)
@given(value=json_values, wrap=st.integers(0, safeload.MAX_DEPTH + 40), maps=st.booleans())
def test_any_json_is_read_within_the_nesting_limit_or_refused(value, wrap, maps):
    text = json.dumps(value)
    for _ in range(wrap):
        text = f'{{"k": {text}}}' if maps else f"[{text}]"
    depth = wrap + depth_of(value)
    try:
        with bounded():
            safeload.json_value(text)
    except safeload.LimitError:
        assert depth > safeload.MAX_DEPTH
        return
    assert depth <= safeload.MAX_DEPTH


hostile_parts = st.one_of(
    st.builds(lambda depth: f"  istio-canary:canaryMatch: {nested(depth)}\n", st.integers(0, 3000)),
    st.builds(
        lambda levels, fan: "".join(
            f"  {line}\n" for line in bomb(levels, fan, prefix="istio-canary:lol")[0].splitlines()
        ),
        st.integers(1, 9),
        st.integers(1, 10),
    ),
    st.builds(
        lambda depth: "  istio-canary:canaryMatch:\n" + "".join(f"{'  ' * (n + 2)}k:\n" for n in range(depth)),
        st.integers(0, 300),
    ),
    st.just("  istio-canary:canaryMatch: &loop [x, *loop]\n"),
    st.builds(lambda size: "  # " + "x" * size + "\n", st.integers(0, 2 * safeload.MAX_STACK_BYTES)),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(part=hostile_parts, command=st.sampled_from(["status", "plan"]))
def test_the_cli_on_a_hostile_stack_file_exits_0_or_4_never_5(tmp_path, capsys, part, command):
    directory = project(tmp_path / "p", stack_text(weight=10) + part)
    preview = tmp_path / "preview.json"
    preview.write_text('{"steps": []}')
    args = ["-C", str(directory), "--stack", "dev", *(["--preview", str(preview)] if command == "plan" else [])]
    with bounded():
        code = main([command, *args])
    err = capsys.readouterr().err
    assert code in (EXIT_OK, EXIT_REFUSED), err  # never EXIT_INTERNAL
    if code == EXIT_REFUSED:
        assert "Pulumi.dev.yaml" in err
