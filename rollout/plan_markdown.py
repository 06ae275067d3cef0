"""The pull request's account of a plan (rollout/plan.py) in Markdown: a headline in words, the traffic before and
after per version, Mermaid pie charts of both splits, a loud warning listing every unexpected change, and the
latest analysis with a dashboard link. Pure: the plan and the analysis in, text out."""

from __future__ import annotations

from components import shapes
from components.names import duration_seconds
from rollout import plan as plans
from rollout.analysis import Analysis, table
from stacks.model import AppSettings

MARKER = "<!-- canary-plan -->"  # the sticky comment's identity: preview.yml edits the comment holding it


def _split_words(traffic: plans.Traffic, app: AppSettings) -> str:
    if traffic.shape == shapes.MIRROR:
        return f"a {app.mirror_percent} % mirror to the canary {traffic.canary_version} (users get GA's answers)"
    if traffic.shape == shapes.HEADER:
        return f"only requests with {app.canary_match} on the canary {traffic.canary_version}"
    return f"{traffic.canary_weight} % canary ({traffic.canary_version})"


def headline(plan: plans.Plan, app: AppSettings) -> str:
    """One sentence saying what merging does to users."""
    before, after, name = plan.before, plan.after, app.name
    if plan.kind == plans.MOVE:
        if not before.shape and not after.shape:  # weights only: "from 10 % to 60 % canary (6.15.0)"
            ga = (
                f"GA {after.ga_version} keeps {after.ga_weight} %"
                if after.ga_weight
                else f"GA {after.ga_version} gets none"
            )
            return f"Moves {name} from {before.canary_weight} % to {after.canary_weight} % canary ({after.canary_version}); {ga}."
        return f"Moves {name} from {_split_words(before, app)} to {_split_words(after, app)}."
    if plan.kind == plans.ROLLBACK:
        return f"Rolls back {name}: every request to GA {after.ga_version} (was {_split_words(before, app)})."
    if plan.kind == plans.NEW_VERSION:
        return (
            f"Starts a release of {name} {after.canary_version} (was {before.canary_version}): "
            "the canary Deployment changes, no user is sent to it yet."
        )
    if plan.kind == plans.FINISH_GA:
        return f"Finishes the release (1/2): GA runs {after.ga_version}; the canary keeps {after.canary_weight} %."
    if plan.kind == plans.FINISH_TRAFFIC:
        return f"Finishes the release (2/2): every request to GA {after.ga_version}; the canary is idle."
    if plan.kind == plans.NOTHING:
        return f"Changes no traffic of {name}."
    return f"Changes {name}'s traffic and versions at once: review it as two steps."


def _rows(traffic: plans.Traffic) -> list[tuple[str, str]]:
    share = {"": f"{traffic.canary_weight} %", shapes.MIRROR: "0 % (mirrored)", shapes.HEADER: "header match only"}
    return [
        (f"GA {traffic.ga_version}", f"{traffic.ga_weight} %"),
        (f"canary {traffic.canary_version}", share[traffic.shape]),
    ]


def _pie(title: str, traffic: plans.Traffic) -> str:
    slices = [
        (f"GA {traffic.ga_version}", traffic.ga_weight),
        (f"canary {traffic.canary_version}", traffic.canary_weight),
    ]
    body = "".join(f'    "{label}" : {value}\n' for label, value in slices if value > 0)
    return f"```mermaid\npie showData title {title}\n{body}```"


def mermaid(plan: plans.Plan) -> list[str]:
    """The Mermaid blocks: the split before and after (user traffic by weight; shapes are in the table)."""
    return [_pie("Before", plan.before), _pie("After merge", plan.after)]


def dashboard_link(url: str, result: Analysis | None) -> str:
    """The dashboard, showing the analysis window when there is an analysis (Grafana's from/to in ms)."""
    if result is None:
        return url
    end_ms = int(result.at * 1000)
    start_ms = end_ms - int(duration_seconds(result.window) * 1000)
    return f"{url}{'&' if '?' in url else '?'}from={start_ms}&to={end_ms}"


def markdown(
    plan: plans.Plan,
    app: AppSettings,
    stack: str,
    result: Analysis | None = None,
    analysis_note: str = "",
    dashboard_url: str = "",
) -> str:
    """The whole comment."""
    lines = [MARKER, f"### canary plan: `{stack}`", "", f"**{headline(plan, app)}**", ""]
    if plan.unexpected:
        lines += ["> [!WARNING]", "> This commit changes more than this kind of step should. Stop and check:"]
        lines += [f"> - **{change.op}** `{change.kind}` `{change.name}`" for change in plan.unexpected]
        lines.append("")
    lines += ["| version | before | after |", "| --- | --- | --- |"]
    for (label_before, before), (label_after, after) in zip(_rows(plan.before), _rows(plan.after), strict=True):
        label = label_after if label_before == label_after else f"{label_before} → {label_after}"
        lines.append(f"| {label} | {before} | {after} |")
    shape_before, shape_after = plan.before.shape or "weights", plan.after.shape or "weights"
    if shape_before != shape_after:
        lines.append(f"| shape | {shape_before} | {shape_after} |")
    lines += ["", *mermaid(plan), ""]
    if result is not None:
        lines += [
            f"Latest analysis: **{result.verdict.value.upper()}**, {result.summary()}",
            "",
            "```",
            table(result),
            "```",
        ]
    elif analysis_note:
        lines.append(f"Latest analysis: {analysis_note}")
    if dashboard_url:
        lines += ["", f"[Dashboard]({dashboard_link(dashboard_url, result)})"]
    changes = ", ".join(sorted(change.words() for change in plan.changes)) or "none"  # the engine's order varies
    lines += ["", f"<sub>Changes in the preview: {changes}.</sub>", ""]
    return "\n".join(lines)
