"""The one verdict type: what an analysis concludes, and what the agent's history records for each interval.

An analysis ends PASS, FAIL or INCONCLUSIVE (no data is never a pass). The agent's history adds two outcomes of
asking at all: UNAVAILABLE (no answer: unreachable, too slow, a gateway's 502/503/504; never a rollback) and ERROR
(the backend answered, but nothing it said can be judged; a run of them has a limit). A StrEnum, so a verdict
read back from a metric label or a commit as plain text compares equal to its member.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    UNAVAILABLE = "unavailable"
    ERROR = "error"
