"""What an action says while it runs: the human lines (an analysis table, "committed ...", "pushed ...") and its
warnings. The CLI sends the lines to stdout (to stderr with --json, beside the one JSON object); the agent and
any other caller get both on stderr, where the agent has always printed them."""

from __future__ import annotations

import sys
from typing import Protocol


class Progress(Protocol):
    def say(self, text: str) -> None:
        """One human line: what the action did or found."""

    def warn(self, text: str) -> None:
        """One warning: what the action went on without."""


class ToStderr:
    """Every line and warning on stderr."""

    def say(self, text: str) -> None:
        print(text, file=sys.stderr)

    def warn(self, text: str) -> None:
        print(text, file=sys.stderr)


TO_STDERR = ToStderr()
