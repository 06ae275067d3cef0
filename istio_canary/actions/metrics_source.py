"""The Prometheus an action asks, and the time it asks about: the options, and the choice between them."""

from __future__ import annotations

import os
from dataclasses import dataclass

from istio_canary import analysis, httpclient, metrics
from istio_canary.actions.errors import Refused
from istio_canary.metrics import MetricsProvider
from istio_canary.metrics.prometheus import DEFAULT_TIMEOUT_S, TOKEN_ENV
from istio_canary.release.settings import PROJECT
from istio_canary.stackfile import StackView


@dataclass(frozen=True)
class MetricsOptions:
    """--prometheus, --at and --timeout."""

    prometheus: str | None = None  # else $PROMETHEUS_URL, else prometheusUrl
    at: str | None = None  # RFC 3339 or unix seconds; None: now
    timeout: float = DEFAULT_TIMEOUT_S  # seconds per whole request


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


def at(options: MetricsOptions) -> float:
    """--at as unix seconds (now by default)."""
    try:
        return analysis.parse_time(options.at)
    except ValueError as exc:
        raise Refused(str(exc)) from None
