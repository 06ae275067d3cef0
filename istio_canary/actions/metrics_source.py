"""The Prometheus an action asks, and the time it asks about: the options, and the choice between them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from istio_canary import analysis, gitops, httpclient, metrics
from istio_canary.actions.context import Context
from istio_canary.actions.errors import Refused
from istio_canary.analysis import Analysis
from istio_canary.metrics import MetricsProvider
from istio_canary.metrics.prometheus import DEFAULT_TIMEOUT_S, TOKEN_ENV
from istio_canary.release.model import STATISTICAL_JUDGE
from istio_canary.release.settings import PROJECT
from istio_canary.stackfile import StackView

# The latest time `--at` accepts (9999-12-31T23:59:59Z): datetime cannot show a later one.
MAX_TIME_S = 253402300799.0


# The lines a step's commit changes: the weight, or the shape of a shape step (which keeps the weight at 0).
STEP_KEYS = f"{PROJECT}:canary(Weight|Shape):"


@dataclass(frozen=True)
class MetricsOptions:
    """--prometheus, --at and --timeout."""

    prometheus: str | None = None  # else $PROMETHEUS_URL, else prometheusUrl
    at: str | None = None  # RFC 3339 or unix seconds; None: now
    timeout: float = DEFAULT_TIMEOUT_S  # seconds per whole request
    # How long the step has been live, as the agent read it from the cluster (the statistical judge's window);
    # None: from Git, the step's commit.
    step_age_s: float | None = None


def prometheus(options: MetricsOptions, view: StackView, *, required: bool) -> MetricsProvider | None:
    """The Prometheus to ask: --prometheus, else $PROMETHEUS_URL (both may carry user:password@ for Basic auth,
    with $PROMETHEUS_TOKEN for Bearer), else prometheusUrl from the stack file (never a credential)."""
    source, url = next(
        (
            (name, value)
            for name, value in (
                ("--prometheus", options.prometheus),
                ("$PROMETHEUS_URL", os.environ.get("PROMETHEUS_URL")),
            )
            if value
        ),
        (f"{PROJECT}:prometheusUrl", view.release.prometheus_url),
    )
    if not url:
        if required:
            raise Refused(f"no Prometheus URL: pass --prometheus, set $PROMETHEUS_URL or {PROJECT}:prometheusUrl")
        return None
    try:
        target = httpclient.parse_url(url)
    except httpclient.HttpError as exc:
        raise Refused(f"{source}: {exc}") from None
    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if (target.username is not None or token) and target.scheme != "https" and not httpclient.is_loopback(target.host):
        raise Refused(f"{source}: refusing to send credentials over plain http to {httpclient.redact(url)}; use https")
    return metrics.provider(metrics.PROMETHEUS, url, options.timeout, token)


def analyze(ctx: Context, source: MetricsProvider, at: float, step_age_s: float | None = None) -> Analysis:
    """The analysis of the stack's canary at `at`. The statistical judge judges the step so far: `step_age_s`
    (the agent's reading of the cluster), else the age of the step's commit in Git, else (no Git) analysisWindow."""
    if ctx.view.release.judge == STATISTICAL_JUDGE and step_age_s is None:
        try:
            step_age_s = gitops.seconds_since_change(ctx.repo, ctx.stack.path.name, at, STEP_KEYS)
        except gitops.GitError:
            step_age_s = None  # not a git repository: analysisWindow is taken as the step
    return analysis.analyze(ctx.view, source, at, None, step_age_s)


def at(options: MetricsOptions) -> float:
    """--at as unix seconds (now by default)."""
    try:
        return parse_time(options.at)
    except ValueError as exc:
        raise Refused(str(exc)) from None


def parse_time(value: str | None) -> float:
    """`--at`: RFC 3339 (2025-01-02T03:04:05Z) or unix seconds; None means now."""
    if value is None:
        return datetime.now(UTC).timestamp()
    shown = value[:40]
    if re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,9})?", value, re.ASCII):
        seconds = float(value)
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"--at {shown!r}: expected RFC 3339 (2025-01-02T03:04:05Z) or unix seconds") from None
        if parsed.tzinfo is None:
            raise ValueError(f"--at {shown!r}: give a time zone (Z or +hh:mm)")
        seconds = parsed.timestamp()
    if not 0 <= seconds <= MAX_TIME_S:
        raise ValueError(f"--at {shown!r}: must be between 1970-01-01 and 9999-12-31")
    return seconds
