"""Bounded reading of files the tool did not write: stack files, the project file, stack files on branches and
`pulumi preview --json`.

Anyone who can push a branch or open a pull request writes these files, and the agent reads every app stack
file of its platform each pass. So each read has three limits, each refused with LimitError (a ValueError
whose message says which limit; the caller adds the file's name and turns it into exit 4):

- size: a file over its limit (MAX_STACK_BYTES, MAX_PROJECT_BYTES, MAX_JSON_BYTES) is not parsed at all;
- nesting: more than MAX_DEPTH levels of sequences and mappings (Python's parsers recurse per level: deep
  nesting would end in a RecursionError, an exit 5 or a failed pass);
- aliases: YAML aliases share one parsed node, but every reader after the parser (validation, comparing
  two parses, `str()`) walks the expanded tree. Ten anchors of ten aliases each are 10**10 values in a few
  hundred bytes ("billion laughs"). So the nodes the aliases of a file stand for, counted expanded, may add
  at most ALIAS_NODE_BUDGET nodes; an alias inside its own anchor (a cycle) is refused outright.

The limits are checked while the parser's own composer builds the node tree, so they hold for exactly the tree
the loader then constructs; the counting is linear in the file. libyaml's C parser, when PyYAML has it, first
looks at the nesting only, as a shortcut (deep flow nesting costs the pure-Python scanners seconds before their
composer gets to count). One error type: LimitError.
"""

from __future__ import annotations

import json
import os
import stat
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from ruamel.yaml.composer import Composer

# Pure-Python YAML is slow (ruamel's round trip about 20-40 kB of hostile text per CPU second), and the platform
# agent reads every app stack each pass: the limit bounds what one file can cost it. A stack file is a few kB
# (this repository's largest is under 2 kB); the project file about 16 kB, read through the faster PyYAML.
MAX_STACK_BYTES = 64 * 1024
MAX_PROJECT_BYTES = 256 * 1024
# A preview of a large stack with detailed diffs runs to megabytes.
MAX_JSON_BYTES = 64 * 1024 * 1024
# Stack config nests four or five levels, a preview a dozen or so.
MAX_DEPTH = 64
# Aliases may stand for this many nodes in all: shared lists of checks, never a bomb.
ALIAS_NODE_BUDGET = 10_000


class LimitError(ValueError):
    """A file is over a reading limit (size, nesting, alias expansion) or not a regular file."""


def check_size(data: str | bytes, limit: int) -> None:
    """LimitError when `data` is over `limit` bytes (UTF-8)."""
    size = len(data)
    if isinstance(data, str) and size <= limit < 4 * size:  # a character is up to 4 bytes in UTF-8
        size = len(data.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise LimitError(f"larger than {limit} bytes; refusing to read it")


def read_bytes(path: Path, limit: int) -> bytes:
    """A regular file's bytes, at most `limit` of them; LimitError for a larger file or anything that is not a
    regular file once links are followed (a FIFO would block, /dev/zero never ends); OSError as open() raises it.
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; for a regular file it is a no-op.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LimitError("not a regular file; refusing to read it")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        data = handle.read(limit + 1)
    check_size(data, limit)
    return data


class _Budget:
    """The nesting and alias limits of one load: the composers below report each node to it.

    `sizes` holds the expanded node count of every node composed so far (its own node plus, recursively, every
    node under it, an alias counting as the whole node it names), keyed by id(): the tree keeps the nodes
    alive while it is loaded, so the ids stay unique.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.expanded = 0
        self.sizes: dict[int, int] = {}

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LimitError(f"nested deeper than {MAX_DEPTH} levels; refusing to read it")

    def leave(self, node: Any) -> None:
        """`node` is complete: record its expanded size (its children are already recorded)."""
        self.depth -= 1
        size = 1
        if isinstance(node.value, list):
            for item in node.value:
                for child in item if isinstance(item, tuple) else (item,):
                    size += self.sizes[id(child)]
        self.sizes[id(node)] = size

    def alias(self, node: Any) -> None:
        """An alias naming `node`: it costs the readers every node under it."""
        size = self.sizes.get(id(node))
        if size is None:  # its anchor is still open: the alias is inside the node it names
            raise LimitError("an alias inside the node it names (a cycle); refusing to read it")
        self.expanded += size
        if self.expanded > ALIAS_NODE_BUDGET:
            raise LimitError(
                f"its aliases expand to more than {ALIAS_NODE_BUDGET} values (an alias bomb?); refusing to read it"
            )


@cache
def _round_trip_composer() -> type[Composer]:
    """ruamel's composer with the limits of one _Budget. Made on first use: the Pulumi program reads the project
    file through safe_yaml() and has PyYAML but not ruamel.yaml (requirements.txt)."""
    from ruamel.yaml.composer import Composer
    from ruamel.yaml.events import AliasEvent

    class RoundTripComposer(Composer):
        def __init__(self, loader: Any = None) -> None:
            super().__init__(loader)
            self.budget = _Budget()

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.parser.check_event(AliasEvent):
                node = super().compose_node(parent, index)
                self.budget.alias(node)
                return node
            self.budget.enter()
            node = super().compose_node(parent, index)
            self.budget.leave(node)
            return node

    return RoundTripComposer


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader (pure Python: libyaml's composer cannot be watched) with the limits of one _Budget."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.budget = _Budget()

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self.budget.alias(node)
            return node
        self.budget.enter()
        node = super().compose_node(parent, index)
        self.budget.leave(node)
        return node


def _too_deep_at_a_glance(text: str) -> None:
    """LimitError when libyaml's C parser (when PyYAML has it) sees nesting deeper than MAX_DEPTH, counted as the
    composers count it. Only a shortcut: before a pure-Python scanner gets to the composer's count, deep flow
    nesting (`[[[[...`) costs it seconds of looking ahead for a key. Anything libyaml reads differently or
    cannot read is left to the loader itself, whose count decides."""
    if not getattr(yaml, "__with_libyaml__", False):
        return
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.NodeEvent) and not isinstance(event, yaml.AliasEvent):
                if depth + 1 > MAX_DEPTH:
                    raise LimitError(f"nested deeper than {MAX_DEPTH} levels; refusing to read it")
                depth += isinstance(event, yaml.CollectionStartEvent)
    except LimitError:
        raise
    except Exception:  # noqa: BLE001 - a shortcut only: the loader reports what is wrong with the text
        return


def round_trip(text: str, constructor: type | None = None, limit: int = MAX_STACK_BYTES) -> Any:
    """ruamel's round-trip load of `text` (positions of keys and values kept; `constructor`: a subclass of its
    RoundTripConstructor) within the limits; LimitError, or ruamel's YAMLError for text that is not YAML."""
    from ruamel.yaml import YAML

    check_size(text, limit)
    _too_deep_at_a_glance(text)
    loader = YAML()  # round-trip mode
    if constructor is not None:
        loader.Constructor = constructor
    loader.Composer = _round_trip_composer()
    return loader.load(text)


def safe_yaml(text: str, limit: int = MAX_PROJECT_BYTES) -> Any:
    """PyYAML's safe_load of `text` within the limits; LimitError, or yaml.YAMLError for text that is not YAML."""
    check_size(text, limit)
    _too_deep_at_a_glance(text)
    loader = _SafeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def json_value(text: str | bytes, limit: int = MAX_JSON_BYTES) -> Any:
    """json.loads within the limits (size, nesting); LimitError, or ValueError for text that is not JSON."""
    check_size(text, limit)
    try:
        value = json.loads(text)
    except RecursionError:  # the C decoder stops at the interpreter's recursion limit, well before the stack ends
        raise LimitError(f"nested deeper than {MAX_DEPTH} levels; refusing to read it") from None
    if _depth_over(value, MAX_DEPTH):
        raise LimitError(f"nested deeper than {MAX_DEPTH} levels; refusing to read it")
    return value


def _depth_over(value: Any, limit: int) -> bool:
    """Do more than `limit` nodes lie on a path from `value` down to a leaf (the leaf counted, as the YAML
    composers count)? A loop, not recursion: the point is values too deep for recursion."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict | list) and current:
            if depth + 1 > limit:
                return True
            children = current.values() if isinstance(current, dict) else current
            pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
