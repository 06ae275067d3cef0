"""PromQL over Istio's standard metrics: the one place these query strings are built.

The dashboard's request-rate panel (`sum by (destination_workload)`: one series per Deployment) and the
built-in check templates, which the analysis and the dashboard both render once per Deployment. Every query
reads the server side (`reporter="destination"`) as Flagger does: the client side would also count requests
that never reached a pod.

This is "which mesh's metrics", apart from "which backend runs the query" (a provider behind the metrics port,
istio_canary/metrics/base.py): it builds text and imports nothing that talks to a backend. The Pulumi program
imports it too (the dashboard), which is why the package's providers are loaded only when chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

from istio_canary.release.names import DNS_LABEL, DURATION, SUBSETS, workload

REQUESTS_TOTAL = "istio_requests_total"
DURATION_BUCKET = "istio_request_duration_milliseconds_bucket"
BY_WORKLOAD = "destination_workload"
VERSIONS = SUBSETS
DEFAULT_WINDOW = "1m"
# Only 5xx counts against a version; 4xx are the client's fault (Flagger's definition of success).
SERVER_ERROR = "5.."


def selector(namespace: str, app: str, versions: Sequence[str] = VERSIONS) -> str:
    """The label matchers of one app's server-side requests, e.g. `{reporter="destination", ...}`."""
    # Values are pasted into a query string: accept only DNS labels so nothing can close the quotes.
    for value in (namespace, app, *versions):
        if not DNS_LABEL.fullmatch(value):
            raise ValueError(f"{value!r} is not a Kubernetes name (lowercase letters, digits, '-')")
    if not versions:
        raise ValueError("at least one version is needed")
    matchers = [
        'reporter="destination"',
        f'destination_workload_namespace="{namespace}"',
        f'destination_workload=~"{workload(app, "(" + "|".join(versions) + ")")}"',
    ]
    return "{" + ", ".join(matchers) + "}"


def _window(window: str) -> str:
    if not DURATION.fullmatch(window):
        raise ValueError(f"{window!r} is not a Prometheus duration such as 30s, 1m or 5m")
    return window


def request_rate(namespace: str, app: str, window: str = DEFAULT_WINDOW, versions: Sequence[str] = VERSIONS) -> str:
    """Requests per second of each version."""
    return f"sum by ({BY_WORKLOAD}) (rate({REQUESTS_TOTAL}{selector(namespace, app, versions)}[{_window(window)}]))"


# --- check templates: one workload at a time, with {namespace}, {workload} and {window} left to fill in ------
# The analysis and the dashboard render these per Deployment (istio_canary/release/checks.py). They are written with the
# same metric names and matchers as the rate query above; placeholders are filled by exact replacement, which
# never touches PromQL's own braces (a bare `{namespace}` is not a valid PromQL selector).

TEMPLATE_VARIABLES = ("namespace", "workload", "window")
_ONE_WORKLOAD = (
    'reporter="destination", destination_workload_namespace="{namespace}", destination_workload="{workload}"'
)


def _series(metric: str, extra: str = "") -> str:
    return f"{metric}{{{_ONE_WORKLOAD}{extra}}}[{{window}}]"


def requests_template() -> str:
    """Requests one workload served within the window."""
    return f"sum(increase({_series(REQUESTS_TOTAL)}))"


def success_rate_template() -> str:
    """Percent of one workload's requests that were not 5xx; 0/0 (no traffic) is NaN, no series is no value."""
    total = f"sum(rate({_series(REQUESTS_TOTAL)}))"
    not_5xx = f', response_code!~"{SERVER_ERROR}"'
    ok = f"sum(rate({_series(REQUESTS_TOTAL, not_5xx)}))"
    # Only 5xx: no non-5xx series at all; `or total * 0` makes that 0 %, not a gap.
    return f"({ok} or {total} * 0) / {total} * 100"


def p99_template() -> str:
    """99th percentile request duration of one workload, in milliseconds."""
    return f"histogram_quantile(0.99, sum by (le) (rate({_series(DURATION_BUCKET)})))"


# --- the statistical judge's counts (istio_canary/release/statistical.py): what each version served in the
# window, its 5xx, and its duration histogram by bucket, all as increase() so they are counts, not rates.


def errors_template() -> str:
    """5xx one workload served within the window."""
    server_error = f', response_code=~"{SERVER_ERROR}"'
    return f"sum(increase({_series(REQUESTS_TOTAL, server_error)}))"


def buckets_template() -> str:
    """One workload's duration histogram within the window: one sample per bucket bound (`le`), cumulative."""
    return f"sum by (le) (increase({_series(DURATION_BUCKET)}))"


def render(template: str, namespace: str, workload_name: str, window: str) -> str:
    """A check template with its variables filled in; values are checked so nothing can close a quote."""
    for value in (namespace, workload_name):
        if not DNS_LABEL.fullmatch(value):
            raise ValueError(f"{value!r} is not a Kubernetes name (lowercase letters, digits, '-')")
    values = {"namespace": namespace, "workload": workload_name, "window": _window(window)}
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template
