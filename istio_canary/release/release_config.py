"""The release keys of stack config: canarySteps and the traffic shapes before them, the acceptance checks, the
analysis thresholds and checks, the interval, and the tag policies and versions (version_config.py).
"""

from __future__ import annotations

import re

from istio_canary.release.checks import CHECK_NAME, MAX, MIN, UNIT, Check, builtin_checks, template_error
from istio_canary.release.config_reader import PROJECT, Reader
from istio_canary.release.judge_config import read_judge
from istio_canary.release.model import (
    AcceptanceCheck,
    AppSettings,
    ReleaseSettings,
)
from istio_canary.release.names import DURATION as _PROM_DURATION
from istio_canary.release.names import (
    duration_seconds,
)
from istio_canary.release.rules import (
    INT,
    finite_number,
    prometheus_url_error,
    shown,
    version_tag_problem,
)
from istio_canary.release.traffic import MIRROR, SHAPES
from istio_canary.release.version_config import check_versions, read_tag_policies

PROMOTIONS = ("pr", "auto")  # canaryPromotion: a pull request per step, or the agent pushes it


def read_steps(reader: Reader) -> tuple[tuple[int, ...], tuple[str, ...], int]:
    """(canarySteps' weights, canaryPreSteps' shapes, the mirror step's percentage)."""
    original = reader.raw.get("canarySteps", reader.schema["canarySteps"]["default"])
    value = reader.array("canarySteps")
    allowed = "a list of increasing whole numbers from 1 to 100 that ends at 100, e.g. [10, 60, 100]"
    weights: list[int] = []
    if not isinstance(value, list) or not value:
        reader.fail("canarySteps", original, allowed)
        weights = [100]
    for item in value if isinstance(value, list) else []:
        text = str(item) if not isinstance(item, bool) else "x"
        if not INT.fullmatch(text) or not 1 <= int(text) <= 100:
            reader.fail("canarySteps", original, allowed)
            weights = [100]
            break
        weights.append(int(text))
    if weights != sorted(set(weights)) or weights[-1:] != [100]:
        reader.fail("canarySteps", original, allowed)
    # Pulumi types an array's items with one type, so the shapes cannot share canarySteps' list of integers.
    pre = reader.array("canaryPreSteps")
    pre_allowed = (
        "a list of the shapes mirror (or mirror:<percent>, 1-100) and header, in that order, e.g. [mirror, header]"
    )
    shapes: list[str] = []
    mirror_percent = 100
    for item in pre if isinstance(pre, list) else [None]:
        shape, _, percent = str(item).partition(":")
        fine = isinstance(item, str) and shape in SHAPES and shape not in shapes and (not percent or shape == MIRROR)
        if fine and percent and not (INT.fullmatch(percent) and 1 <= int(percent) <= 100):
            fine = False
        if not fine:
            reader.fail("canaryPreSteps", pre, pre_allowed)
            return tuple(weights), (), 100
        shapes.append(shape)
        mirror_percent = int(percent) if percent else mirror_percent
    if shapes != sorted(shapes, key=SHAPES.index):
        reader.fail("canaryPreSteps", pre, pre_allowed + " (mirror first: nobody sees its answers)")
    return tuple(weights), tuple(shapes), mirror_percent


def _acceptance(reader: Reader, weights: tuple[int, ...], shapes: tuple[str, ...]) -> tuple[AcceptanceCheck, ...]:
    """canaryAcceptance: each item {url, status, timeout, steps}; every bad item is reported."""
    value = reader.array("canaryAcceptance")
    rule = (
        "a list of {url: http(s) URL without credentials, status: 100-599 (200), timeout: seconds 0.1-60 (5), "
        "steps: names of steps it gates such as [mirror, 10, finish] (all)}"
    )
    if not isinstance(value, list) or len(value) > 20:
        reader.fail("canaryAcceptance", value, rule)
        return ()
    known = {*shapes, *(str(weight) for weight in weights), "finish"}
    checks = []
    for index, item in enumerate(value):
        where = f"canaryAcceptance[{index}]"
        if not isinstance(item, dict) or not set(item) <= {"url", "status", "timeout", "steps"}:
            reader.errors.append(f"{PROJECT}:{where}: {shown(item)} is not allowed; expected {rule}")
            continue
        url, status, timeout, steps = (
            item.get("url"),
            item.get("status", 200),
            item.get("timeout", 5),
            item.get("steps", []),
        )
        problem = ""
        if not isinstance(url, str) or prometheus_url_error(url) or "@" in url:
            problem = "url must be an http(s) URL without user info (the stack file is committed)"
        elif isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            problem = "status must be an HTTP status from 100 to 599"
        elif isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0.1 <= timeout <= 60:
            problem = "timeout must be seconds from 0.1 to 60"
        elif not isinstance(steps, list) or not all(str(step) in known for step in steps):
            problem = f"steps must name steps of this stack ({', '.join(sorted(known))})"
        if problem:
            shown_item = {**item, "url": "<not shown>"} if isinstance(url, str) and "@" in url else item
            reader.errors.append(f"{PROJECT}:{where}: {shown(shown_item)} is not allowed; {problem}")
            continue
        checks.append(AcceptanceCheck(str(url), int(status), float(timeout), tuple(str(step) for step in steps)))
    return tuple(checks)


def _success_rate(reader: Reader) -> float:
    value = reader.text("analysisMinSuccessRate")
    try:
        rate = float(value) if re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,6})?", value) else -1.0
    except ValueError:
        rate = -1.0
    if not 0 < rate <= 100:
        reader.fail("analysisMinSuccessRate", value, "a percentage above 0 and at most 100, e.g. 99 or 99.5")
        return 100.0
    return rate


def _optional_percent(reader: Reader, key: str) -> int | None:
    value = reader.text(key)
    if value == "":
        return None
    if not INT.fullmatch(value) or int(value) > 10000:
        reader.fail(key, value, "a whole percentage from 0 to 10000, or empty to turn the comparison off")
        return None
    return int(value)


CHECK_FIELDS = ("name", "query", "max", "min", "unit", "maxWorseThanGaPct")


def _user_checks(reader: Reader, taken: set[str]) -> tuple[Check, ...]:
    """`analysisChecks`: a stack's own checks, each {name, query, max | min, unit?, maxWorseThanGaPct?}."""
    key = "analysisChecks"
    value = reader.array(key)
    if not isinstance(value, list):
        reader.fail(key, value, "a list of checks, each {name, query, max or min, unit, maxWorseThanGaPct}")
        return ()
    checks = []
    for index, item in enumerate(value):
        where = f"[{index}]"
        problems = []
        if not isinstance(item, dict):
            reader.errors.append(f"{PROJECT}:{key}{where}: {shown(item)} is not a mapping with name, query, max/min")
            continue
        name = item.get("name")
        if isinstance(name, str) and CHECK_NAME.fullmatch(name):
            where += f" ({name})"
            if name in taken:
                problems.append(f"name {name!r} is taken (by a built-in check or an earlier entry)")
            taken.add(name)
        else:
            problems.append(f"name {shown(name)}: lowercase letters, digits, '_' and '-', at most 40, a letter first")
        unknown = sorted(set(item) - set(CHECK_FIELDS))
        if unknown:
            problems.append(f"unknown field(s) {', '.join(map(str, unknown))} (known: {', '.join(CHECK_FIELDS)})")
        query = item.get("query")
        error = template_error(query) if isinstance(query, str) else "a PromQL template (text)"
        if error:
            problems.append(f"query: expected {error}")
        bounds = [(field, item[field]) for field in ("max", "min") if field in item]
        threshold = finite_number(bounds[0][1]) if len(bounds) == 1 else None
        if threshold is None:
            problems.append("exactly one of max or min, a finite number >= 0")
        unit = item.get("unit", "")
        if not isinstance(unit, str) or not UNIT.fullmatch(unit):
            problems.append(f"unit {shown(unit)}: up to 12 letters, % or /")
        relative = item.get("maxWorseThanGaPct")
        if relative is not None and (finite_number(relative) is None or relative > 10000):
            problems.append(f"maxWorseThanGaPct {shown(relative)}: a percentage from 0 to 10000")
        if problems:
            reader.errors.extend(f"{PROJECT}:{key}{where}: {problem}" for problem in problems)
            continue
        checks.append(
            Check(
                name=str(name),
                query=str(query),
                comparison=MAX if bounds[0][0] == "max" else MIN,
                threshold=float(threshold),  # type: ignore[arg-type]
                unit=unit,
                max_worse_than_ga_pct=None if relative is None else float(relative),
            )
        )
    return tuple(checks)


# The longest analysisInterval: the agent's /healthz goes stale after a few of the longest interval it serves
# (istio_canary/agent/metrics.py), so this bound is how long a stuck agent can look alive before its liveness probe
# restarts it (3 x 15m), and it keeps the rollback promise (threshold x interval + one interval) within an hour or
# so at the default threshold.
MAX_ANALYSIS_INTERVAL = "15m"


def _interval(reader: Reader) -> str:
    interval = reader.matching("analysisInterval", _PROM_DURATION, "a duration such as 30s, 1m or 5m")
    if _PROM_DURATION.fullmatch(interval) and duration_seconds(interval) > duration_seconds(MAX_ANALYSIS_INTERVAL):
        reader.fail(
            "analysisInterval",
            interval,
            f"at most {MAX_ANALYSIS_INTERVAL}: the agent's liveness follows it, and a longer one would leave a stuck "
            "agent (and a failing canary) alone for hours",
        )
    return interval


def read_release(
    reader: Reader, weights: tuple[int, ...], shapes: tuple[str, ...], app: AppSettings, versions_by_policy: bool
) -> ReleaseSettings:
    prometheus_url = reader.text("prometheusUrl")
    url_error = prometheus_url_error(prometheus_url) if prometheus_url else None
    if url_error:
        reader.fail(
            "prometheusUrl",
            "<not shown: it may hold a credential>" if "@" in prometheus_url else prometheus_url,
            url_error,
        )
    canary_tags, ga_tags, policies_read = read_tag_policies(reader)
    if not versions_by_policy:  # the rollback's reading: the image reference and the pods' label are all it needs
        for key, value in (("gaVersion", app.ga_version), ("canaryVersion", app.canary_version)):
            problem = version_tag_problem(value)
            if problem:
                reader.fail(key, value, f"a released image tag ({problem})")
    elif policies_read:  # a refused policy is reported once, not again as every version it cannot order
        check_versions(reader, app, canary_tags, ga_tags)
    checks = builtin_checks(
        min_requests=reader.integer("analysisMinRequests", 1, 10**9),
        min_success_rate=_success_rate(reader),
        max_p99_ms=reader.integer("analysisMaxP99Ms", 1, 600000),
        max_p99_over_ga_pct=_optional_percent(reader, "analysisMaxP99OverGaPct"),
    )
    judge, statistical = read_judge(reader, checks, weights, shapes)
    return ReleaseSettings(
        steps=weights,
        shapes=shapes,
        acceptance=_acceptance(reader, weights, shapes),
        checks=checks + _user_checks(reader, {check.name for check in checks}),
        window=reader.matching("analysisWindow", _PROM_DURATION, "a Prometheus duration such as 30s, 5m or 1h"),
        canary_tags=canary_tags,
        ga_tags=ga_tags,
        watch_images=reader.boolean("agentWatchImages"),
        interval=_interval(reader),
        threshold=reader.integer("analysisThreshold", 1, 100),
        error_limit=reader.integer("analysisErrorLimit", 1, 100),
        iterations=reader.integer("analysisIterations", 1, 1000),
        promotion=reader.choice("canaryPromotion", PROMOTIONS),
        notice_after=reader.matching("agentNoticeAfter", _PROM_DURATION, "a duration such as 10m or 1h"),
        drift_grace=reader.matching("agentDriftGrace", _PROM_DURATION, "a duration such as 5m or 15m"),
        prometheus_url=prometheus_url,
        judge=judge,
        statistical=statistical,
    )
