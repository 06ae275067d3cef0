"""Traffic shapes before real users see a canary, in no router's terms (a router writes them into its objects and
reads them back: istio_canary/routers/).

- weights (shape ""): the split of canaryWeight, as always;
- mirror: every request (or `mirror_percent` of them) still answered by GA, and a copy sent to the canary, whose
  answer is discarded. The canary's sidecar reports the copies as requests it served, so the analysis judges them
  like any other;
- header: requests carrying the configured header (or cookie) go to the canary, all others to GA.

In every shape the weighted route keeps GA 100 / canary 0, so a shape step changes only what makes the shape, and
a weight step only the weights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WEIGHTS, MIRROR, HEADER = "", "mirror", "header"
SHAPES = (MIRROR, HEADER)  # in the order a release may take them: nobody sees mirrored answers, testers see header
MATCH = re.compile(r"(header|cookie):([a-z0-9][a-z0-9-]{0,62})=([A-Za-z0-9._~+/-]{1,128})")


@dataclass(frozen=True)
class Match:
    """Which requests a header step sends to the canary: a header with an exact value, or a cookie."""

    kind: str  # "header" or "cookie"
    name: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Match | None:
        """`header:x-canary=always` or `cookie:canary=always`; None when it is not one."""
        found = MATCH.fullmatch(text)
        return cls(found.group(1), found.group(2), found.group(3)) if found else None
