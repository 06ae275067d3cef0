"""The package's import arrows, read from the source with `ast` (nothing is imported): only the CLI imports the
CLI, no two modules of istio_canary import each other (directly or round a circle, at module level or inside a
function), and the release core imports nothing of the package but the safe loader."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "istio_canary"
CLI = ("istio_canary.cli", "istio_canary.commands")
# `python -m istio_canary` is the console script's other door.
CLI_ENTRIES = ("istio_canary.__main__",)
RELEASE = "istio_canary.release"
RELEASE_MAY_IMPORT = ("istio_canary.safeload",)
# Arrows out of the release core that stand today, each with why; the metrics port's issue removes the first (the
# mesh's check templates are an observer over a metrics backend, and the checks as data will take them as input).
RELEASE_KNOWN_OUTSIDE = {
    "istio_canary.release.checks -> istio_canary.metrics.istio_observer": "the built-in checks' PromQL templates",
}


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its __init__.py)."""
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """The package's modules `name` imports anywhere in its text (a `from package import module` names the module),
    with the line of each import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _within(alias.name, PACKAGE):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the importing module's package upward
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            if not _within(source, PACKAGE):
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield (submodule if submodule in MODULES else source), node.lineno


def _graph() -> dict[str, set[str]]:
    return {
        name: {target for target, _ in _imports(name, path) if target in MODULES and target != name}
        for name, path in MODULES.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_modules_are_found():
    assert {"istio_canary.cli", "istio_canary.agent.loop", "istio_canary.release.settings"} <= set(MODULES)


def test_only_the_cli_imports_the_cli():
    upward = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for name, path in MODULES.items()
        if not any(_within(name, cli) for cli in CLI) and name not in CLI_ENTRIES
        for target, line in _imports(name, path)
        if any(_within(target, cli) for cli in CLI)
    ]
    assert upward == []


def test_no_import_circles():
    assert _cycles(_graph()) == []


def test_the_release_core_imports_only_itself_and_the_safe_loader():
    outside = [
        f"{name} -> {target}"
        for name, path in MODULES.items()
        if _within(name, RELEASE)
        for target, _ in _imports(name, path)
        if not _within(target, RELEASE) and target not in RELEASE_MAY_IMPORT
    ]
    assert sorted(set(outside)) == sorted(RELEASE_KNOWN_OUTSIDE)


def test_a_circle_is_found():
    # The detector itself: a -> b -> c -> a is one circle, d -> a is not part of it.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
