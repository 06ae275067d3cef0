"""Run the `canary` command in-process and capture what it printed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from istio_canary.cli import main


@dataclass(frozen=True)
class Result:
    """Exit code and output of one `canary` run."""

    code: int
    out: str
    err: str


def canary(capsys: pytest.CaptureFixture[str], *args: object) -> Result:
    """`canary <args>`; arguments are converted with str()."""
    capsys.readouterr()  # drop output of earlier steps
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)
