"""Prints the README's config reference table from the Pulumi.yaml schema (so the two cannot drift)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stacks.settings import schema


def table() -> str:
    """Markdown table: key, type, default, description."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, spec in schema().items():
        default = spec.get("default", "")
        if default == "":
            shown = "(empty)"
        else:
            shown = "`" + (str(default).lower() if isinstance(default, bool) else str(default)) + "`"
        rows.append(f"| `{key}` | {spec['type']} | {shown} | {spec['description'].replace('|', '/')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
