"""The exit codes of `canary`: the one table. `--help`, docs/release.md (generated) and the workflows read it."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_INCONCLUSIVE = 2
EXIT_UNAVAILABLE = 3
EXIT_REFUSED = 4
EXIT_INTERNAL = 5
EXIT_BLOCKED = 6
EXIT_UNEXPECTED = 7


@dataclass(frozen=True)
class Exit:
    """One exit code: its number, a one-word name (also the `exit` field of `--json` errors) and its meaning."""

    code: int
    name: str
    meaning: str


TABLE = (
    Exit(EXIT_OK, "ok", "pass / done"),
    Exit(EXIT_FAIL, "fail", "analysis failed (promote refused; promote.yml rolls back on it)"),
    Exit(EXIT_INCONCLUSIVE, "inconclusive", "inconclusive (too little traffic, no data) or nothing to do now"),
    Exit(
        EXIT_UNAVAILABLE,
        "unavailable",
        "Prometheus, the registry or the webhook is unreachable, too slow or answered garbage",
    ),
    Exit(
        EXIT_REFUSED,
        "refused",
        "bad input: invalid config or option, dirty tree, another canary running, unknown step, "
        "rolled-back version, git failure",
    ),
    Exit(EXIT_INTERNAL, "internal", "internal error (a bug in canary; the message names the exception); never 1"),
    Exit(EXIT_BLOCKED, "blocked", "an acceptance check failed: the step waits (never a rollback; --force overrides)"),
    Exit(
        EXIT_UNEXPECTED, "unexpected", "the preview changes more than this kind of step should (canary plan --strict)"
    ),
)
BY_CODE = {entry.code: entry for entry in TABLE}


def help_text(codes: tuple[int, ...] | None = None) -> str:
    """The `exit codes:` epilog of --help, for the codes one command can return (all by default)."""
    rows = [BY_CODE[code] for code in (codes if codes is not None else tuple(BY_CODE))]
    return "exit codes:\n" + "".join(f"  {e.code}  {e.meaning}\n" for e in rows)


def markdown() -> str:
    """The exit-code table of docs/release.md."""
    lines = ["| code | name | meaning |", "| --- | --- | --- |"]
    lines += [f"| {e.code} | `{e.name}` | {e.meaning} |" for e in TABLE]
    return "\n".join(lines)
