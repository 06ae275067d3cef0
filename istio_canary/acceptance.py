"""Acceptance checks before a step (canaryAcceptance): plain HTTP requests that must answer the expected status
within their timeout, run by `canary promote` (and so by the agent) before it proposes the step.

Contract: `run(checks, step)` makes each request that gates `step` and returns one Result each, never raising;
`blocked(results)` is the pure decision. A failed check blocks the step (exit 6) and never rolls back: the canary
may be fine and the check's target down. URLs are shown without query strings (the path is committed config).
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass

from istio_canary import httpclient
from istio_canary.release.model import AcceptanceCheck

MAX_BODY_BYTES = 1024 * 1024  # only the status matters; a bigger answer counts as a failed check


@dataclass(frozen=True)
class Result:
    """One check's outcome."""

    url: str  # shown form: scheme://host[:port]/path
    expected: int
    status: int | None  # None: no HTTP answer
    seconds: float
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.status == self.expected

    def line(self) -> str:
        got = f"HTTP {self.status}" if self.status is not None else self.error
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict} GET {self.url} -> {got} (expected {self.expected}) in {self.seconds * 1000:.0f} ms"


def shown(url: str) -> str:
    return httpclient.redact(url) + urllib.parse.urlsplit(url).path


def run(checks: tuple[AcceptanceCheck, ...], step: str) -> list[Result]:
    """Every check that gates `step`, in order."""
    results = []
    for check in checks:
        if not check.gates(step):
            continue
        started = time.monotonic()
        try:
            answer = httpclient.request(check.url, timeout=check.timeout_s, max_bytes=MAX_BODY_BYTES)
            status, error = answer.status, ""
        except httpclient.HttpError as exc:
            status, error = None, str(exc).splitlines()[0][:200]
        results.append(Result(shown(check.url), check.status, status, time.monotonic() - started, error))
    return results


def blocked(results: list[Result]) -> bool:
    return any(not result.passed for result in results)


def evidence(results: list[Result]) -> str:
    """The commit body's account of the acceptance checks."""
    if not results:
        return ""
    return "Acceptance checks:\n" + "\n".join(f"  {result.line()}" for result in results)
