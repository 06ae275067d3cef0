"""Canary checks as data: each thing the analysis judges is one record (name, query, comparison, threshold,
unit, and optionally how much worse than GA the canary may be).

The analysis (istio_canary/analysis.py), its table, JSON and commit summary, `canary status` and the Grafana
dashboard all iterate over the same tuple of checks, so a new metric is one record here (or, for a stack's
own metric, one entry in its `analysisChecks` config) and nothing else. This module is pure: no Pulumi, no I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from istio_canary.metrics import istio_observer

MAX = "<="  # pass while the canary's value is at most the threshold (latency, errors)
MIN = ">="  # pass while it is at least the threshold (success rate)
CHECK_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}", re.ASCII)
UNIT = re.compile(r"[A-Za-z%/]{0,12}", re.ASCII)
MAX_QUERY_LENGTH = 2000


@dataclass(frozen=True)
class Check:
    """One judged metric. `gate`: a value below the threshold means too little evidence (inconclusive), not a
    fail. `max_worse_than_ga_pct`: the canary may be at most that many percent worse than GA over the same
    window (in the check's bad direction), judged only when GA has a value."""

    name: str
    query: str  # a PromQL template with {namespace}, {workload}, {window}
    comparison: str  # MAX or MIN
    threshold: float
    unit: str = ""
    label: str = ""  # the short word in commit subjects ("p99"); the name when empty
    gate: bool = False
    max_worse_than_ga_pct: float | None = None

    def promql(self, namespace: str, workload: str, window: str) -> str:
        """The query for one Deployment."""
        return istio_observer.render(self.query, namespace, workload, window)

    def passes(self, value: float) -> bool:
        """Does the canary's value meet the absolute threshold?"""
        return value <= self.threshold if self.comparison == MAX else value >= self.threshold

    def ga_limit(self, ga: float) -> float | None:
        """The worst canary value the relative rule allows given GA's value, or None without a relative rule."""
        if self.max_worse_than_ga_pct is None:
            return None
        factor = self.max_worse_than_ga_pct / 100
        return ga * (1 + factor) if self.comparison == MAX else ga * (1 - factor)

    def within_ga(self, canary: float, ga: float) -> bool:
        """Is the canary no worse than GA allows? (True when there is no relative rule.)"""
        limit = self.ga_limit(ga)
        if limit is None:
            return True
        return canary <= limit if self.comparison == MAX else canary >= limit

    def show(self, value: float | None) -> str:
        """A value as people read it: `99.8%`, `120ms`, `3000`, `n/a`."""
        if value is None or not math.isfinite(value):
            return "n/a"
        if self.unit == "%":
            return f"{value:.1f}%"
        if self.unit == "ms":
            return f"{value:.0f}ms"
        text = f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"
        return f"{text}{self.unit and ' ' + self.unit}"

    def rule(self) -> str:
        """The threshold as a sentence fragment, e.g. `>= 99%`, `<= 500ms (and <= GA +50%)`."""
        text = f"{self.comparison} {self.show(self.threshold)}"
        if self.max_worse_than_ga_pct is not None:
            sign = "+" if self.comparison == MAX else "-"
            text += f" and {self.comparison} GA {sign}{self.max_worse_than_ga_pct:g}%"
        return text


def builtin_checks(
    min_requests: int, min_success_rate: float, max_p99_ms: int, max_p99_over_ga_pct: int | None
) -> tuple[Check, ...]:
    """The checks every stack has, with the stack's thresholds (Flagger's two, plus the traffic gate)."""
    return (
        Check("requests", istio_observer.requests_template(), MIN, min_requests, gate=True),
        Check("success_rate", istio_observer.success_rate_template(), MIN, min_success_rate, unit="%", label="success"),
        Check(
            "p99_ms",
            istio_observer.p99_template(),
            MAX,
            max_p99_ms,
            unit="ms",
            label="p99",
            max_worse_than_ga_pct=max_p99_over_ga_pct,
        ),
    )


def template_error(query: str) -> str | None:
    """Why `query` cannot be a check template, or None. Offline and structural only (printable ASCII,
    `{workload}` present, no other `{word}` placeholder, brackets and quotes balanced): Prometheus' own parser
    judges the rest when the analysis sends it, and a parse error there is a config error, not an outage."""
    if not query or len(query) > MAX_QUERY_LENGTH or not query.isascii() or not query.isprintable():
        return f"printable ASCII PromQL of at most {MAX_QUERY_LENGTH} characters"
    if "{workload}" not in query:
        return "a query that selects one Deployment with {workload} (it is run once for the canary, once for GA)"
    unknown = set(re.findall(r"\{([A-Za-z_]\w*)\}", query)) - set(istio_observer.TEMPLATE_VARIABLES)
    if unknown:
        return "only the variables {namespace}, {workload} and {window} (found {" + "}, {".join(sorted(unknown)) + "})"
    if not _balanced(query):
        return "PromQL with balanced (), [], {} and closed quotes"
    return None


def _balanced(query: str) -> bool:
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    quote = ""
    escaped = False
    for char in query:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and not quote
