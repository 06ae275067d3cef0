"""`canary status`: weights and versions from the stack file, the next step, and live metrics when a
Prometheus URL is known."""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime

from istio_canary import analysis_text
from istio_canary.actions import metrics_source
from istio_canary.actions.next_step import next_step
from istio_canary.commands import common
from istio_canary.exits import EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from istio_canary.metrics import BadQuery, MetricsProvider, MetricsUnavailable
from istio_canary.release import traffic
from istio_canary.release.decide import ERROR, FAIL, INCONCLUSIVE, PASS, UNAVAILABLE
from istio_canary.release.model import AppSettings
from istio_canary.release.names import AGENT_DRIFT, AGENT_LAST_ITERATION, AGENT_VERDICT, AGENT_WEIGHT, duration_seconds

HELP = "weights and versions (+ live metrics)"
EXITS = (EXIT_OK, EXIT_UNAVAILABLE, EXIT_REFUSED, EXIT_INTERNAL)
USES = ("metrics", "json")
VERDICTS = (PASS, FAIL, INCONCLUSIVE, UNAVAILABLE, ERROR)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def shape_words(app: AppSettings) -> str:
    """The live shape step in words, for status and commit messages."""
    if app.canary_shape == traffic.MIRROR:
        return f"mirror: {app.mirror_percent}% of GA's requests copied to the canary, its answers discarded"
    if app.canary_shape == traffic.HEADER:
        return f"header: requests with {app.canary_match} go to the canary, all others to GA"
    return f"weights: {app.canary_weight}% to the canary"


def agent_view(source: MetricsProvider, stack: str, at: float, interval: str) -> dict[str, object] | None:
    """What the release agent reported last (Prometheus scrapes its /metrics): its verdict, the live weight it
    read, drift, and when it runs next. None when no agent reports for this stack."""
    selector = f'stack="{stack}"'

    def value(query: str) -> float | None:
        result = source.query(query, at)
        return None if result is None or math.isnan(result) else result

    last = value(f"{AGENT_LAST_ITERATION}{{{selector}}}")
    if last is None:
        return None
    verdict = next((v for v in VERDICTS if value(f'{AGENT_VERDICT}{{{selector}, verdict="{v}"}}') == 1), "unknown")
    live = value(f'{AGENT_WEIGHT}{{{selector}, source="live"}}')
    return {
        "verdict": verdict,
        "live_weight": None if live is None or live < 0 else int(live),
        "drift": value(f"{AGENT_DRIFT}{{{selector}}}") == 1,
        "last_run": last,
        "next_run": last + duration_seconds(interval),
    }


def run(args: argparse.Namespace) -> int:
    out = common.Output(args)
    ctx = common.load(args, write=False)
    app, rel = ctx.view.app, ctx.view.release
    source = common.prometheus(args, ctx.view, required=False)
    when = common.at(args)
    step, _subject = next_step(ctx, required=False)
    result, error, agent = None, None, None
    if source:
        try:
            result = metrics_source.analyze(ctx, source, when)
            agent = agent_view(source, ctx.stack_name, when, rel.interval)
        except (MetricsUnavailable, BadQuery) as exc:  # the config part is still worth printing; the exit code says 3
            error = str(exc)
    code = EXIT_UNAVAILABLE if error else EXIT_OK
    if out.json:
        out.result(
            {
                "stack": ctx.stack_name,
                "namespace": app.namespace,
                "image": app.image,
                "ga": {"workload": ctx.view.ga_workload, "version": app.ga_version, "weight": app.split["ga"]},
                "canary": {
                    "workload": ctx.view.canary_workload,
                    "version": app.canary_version,
                    "weight": app.canary_weight,
                },
                "steps": list(rel.steps),
                "pre_steps": list(rel.shapes),
                "shape": app.canary_shape or "weights",
                "next": step.to_json(),
                "checks": [{"name": c.name, "rule": c.rule()} for c in rel.checks],
                "analysis": result.to_json() if result else ({"error": error} if error else None),
                "agent": agent,
            }
        )
        return code
    out.say(f"stack {ctx.stack_name} ({ctx.stack.path.name}): {app.image} in namespace {app.namespace}")
    out.say(f"  ga      {ctx.view.ga_workload:<24} {app.ga_version:<12} {app.split['ga']:>3}%")
    out.say(f"  canary  {ctx.view.canary_workload:<24} {app.canary_version:<12} {app.canary_weight:>3}%")
    if app.canary_shape:
        out.say(f"  shape   {shape_words(app)}")
    walk = " -> ".join([*rel.shapes, *(str(s) for s in rel.steps)])
    out.say(f"  steps   0 -> {walk}; next: {step.describe()}")
    out.say("  checks  " + "; ".join(f"{check.name} {check.rule()}" for check in rel.checks))
    if agent:
        live = agent["live_weight"]
        drift = " DRIFT: Git and the cluster disagree" if agent["drift"] else ""
        when_next = datetime.fromtimestamp(float(agent["next_run"]), UTC).strftime("%H:%M:%SZ")  # type: ignore[arg-type]
        out.say(f"  agent   last verdict {agent['verdict']}; live weight {live}%{drift}; next analysis at {when_next}")
    elif source and not error:
        out.say("  agent   no canary agent reports for this stack")
    if result:
        out.say("")
        out.say(analysis_text.table(result))
    if error:
        out.say(f"  analysis unavailable: {error}")
    return code
