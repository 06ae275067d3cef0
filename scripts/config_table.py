"""Prints the README's config reference table from the Pulumi.yaml schema; `--write` updates README.md in place."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from istio_canary.release.settings import schema


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


README = Path(__file__).resolve().parents[1] / "README.md"
MARKED = re.compile(r"(<!-- config-table[^>]*-->\n)(.*?)(\n<!-- /config-table -->)", re.DOTALL)


def readme_table(text: str) -> str | None:
    """The table between the README's config-table markers, or None without markers."""
    match = MARKED.search(text)
    return match.group(2) if match else None


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        README.write_text(MARKED.sub(lambda m: m.group(1) + table() + m.group(3), README.read_text()))
    else:
        print(table())
