"""`canary`: status, analyze, promote, rollback, watch-images, notify. Every traffic step is a Git commit."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rollout import analysis, gitops, notify, tags
from rollout.analysis import Analysis, Prometheus, PrometheusError, Verdict
from rollout.registry import Registry, RegistryError, parse_image
from rollout.stackfile import ReleaseView, StackFile
from stacks.settings import ConfigError

EXIT_OK = 0
EXIT_FAIL = 1  # analysis failed (and so promote refused)
EXIT_INCONCLUSIVE = 2  # not enough data, or nothing to do now
EXIT_UNAVAILABLE = 3  # Prometheus / registry / webhook unreachable, slow or erroring
EXIT_REFUSED = 4  # bad input or config, dirty tree, unknown step, git failure

VERDICT_EXIT = {Verdict.PASS: EXIT_OK, Verdict.FAIL: EXIT_FAIL, Verdict.INCONCLUSIVE: EXIT_INCONCLUSIVE}


class Refused(Exception):
    """Stop with a message and an exit code; nothing has been committed."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Context:
    """The repository, the stack file and its validated release view."""

    repo: Path
    stack_name: str
    stack: StackFile
    view: ReleaseView


def _load(args: argparse.Namespace, *, need_git: bool) -> Context:
    start = Path(args.repo).resolve()
    try:
        repo = gitops.toplevel(start)
    except gitops.GitError:
        if need_git:
            raise Refused(f"{start} is not inside a git work tree") from None
        repo = start
    if need_git:
        gitops.require_clean(repo)
    stack = StackFile.for_stack(repo, args.stack)
    return Context(repo=repo, stack_name=args.stack, stack=stack, view=stack.view())


def _prometheus(args: argparse.Namespace, view: ReleaseView, *, required: bool) -> Prometheus | None:
    url = args.prometheus or os.environ.get("PROMETHEUS_URL") or view.release.prometheus_url
    if not url:
        if required:
            raise Refused("no Prometheus URL: pass --prometheus, set $PROMETHEUS_URL or istio-canary:prometheusUrl")
        return None
    return Prometheus(url, timeout=args.timeout)


def _at(args: argparse.Namespace) -> float:
    try:
        return analysis.parse_time(args.at)
    except ValueError as exc:
        raise Refused(str(exc)) from None


def _commit(ctx: Context, subject: str, body: str) -> str:
    if not ctx.stack.save():
        raise Refused(f"{ctx.stack.path.name} would not change; nothing to commit")
    commit_id = gitops.commit(ctx.repo, ctx.stack.path, f"{subject}\n\n{body}".rstrip() + "\n")
    print(f"committed {commit_id[:12]}: {subject}")
    return commit_id


def _push(ctx: Context, args: argparse.Namespace, commit_ids: Sequence[str]) -> None:
    for commit_id in commit_ids:
        try:
            gitops.push(ctx.repo, args.remote, commit_id)
        except gitops.GitError as exc:
            raise Refused(f"committed locally, but the push failed: {exc}") from None
        print(f"pushed {commit_id[:12]} to {args.remote}")


def _notify(ctx: Context, args: argparse.Namespace, text: str) -> None:
    if getattr(args, "no_notify", False):
        return
    notify.send(text, ctx.repo, ctx.stack_name, ctx.stack.raw(notify.SECRET_KEY))


def _evidence(result: Analysis | None, prometheus: Prometheus | None) -> str:
    if result is None:
        return "No analysis recorded."
    source = f" from {prometheus.url}" if prometheus else ""
    return f"Analysis{source}:\n\n{analysis.table(result)}"


# --- commands ---------------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    """Weights and versions from the stack file; live metrics when a Prometheus URL is known."""
    ctx = _load(args, need_git=False)
    app, rel = ctx.view.app, ctx.view.release
    prometheus = _prometheus(args, ctx.view, required=False)
    result = analysis.analyze(ctx.view, prometheus, _at(args)) if prometheus else None
    if args.json:
        print(
            json.dumps(
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
                    "next": next_action(ctx.view),
                    "analysis": result.to_json() if result else None,
                },
                indent=2,
            )
        )
        return EXIT_OK
    nxt = next_action(ctx.view)
    print(f"stack {ctx.stack_name} ({ctx.stack.path.name}): {app.image} in namespace {app.namespace}")
    print(f"  ga      {ctx.view.ga_workload:<24} {app.ga_version:<12} {app.split['ga']:>3}%")
    print(f"  canary  {ctx.view.canary_workload:<24} {app.canary_version:<12} {app.canary_weight:>3}%")
    steps = " -> ".join(str(s) for s in rel.steps)
    print(f"  steps   0 -> {steps}; next: {nxt['to'] if nxt['action'] == 'promote' else nxt['action']}")
    print(f"  gate    success >= {rel.min_success_rate:g}%, p99 <= {rel.max_p99_ms}ms, >= {rel.min_requests} requests")
    if result:
        print()
        print(analysis.table(result))
    return EXIT_OK


def cmd_analyze(args: argparse.Namespace) -> int:
    """Judge the canary; the exit code is the verdict."""
    try:
        ctx = _load(args, need_git=False)
        prometheus = _prometheus(args, ctx.view, required=True)
        result = analysis.analyze(ctx.view, prometheus, _at(args))
    except PrometheusError as exc:
        if args.json:
            print(json.dumps({"verdict": "unavailable", "error": str(exc)}))
        raise
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(analysis.table(result))
    return VERDICT_EXIT[result.verdict]


def _next_step(weight: int, steps: Sequence[int]) -> int | None:
    return next((step for step in steps if step > weight), None)


def next_action(view: ReleaseView) -> dict[str, object]:
    """What `canary promote` would do next: promote (to a weight), finish, none, or refuse an unknown step."""
    app, steps = view.app, view.release.steps
    weight = app.canary_weight
    if weight not in (0, *steps):
        return {"action": "unknown-step", "to": None}
    if weight == 100:
        return {"action": "finish", "to": 0}
    if weight == 0 and app.canary_version == app.ga_version:
        return {"action": "none", "to": None}
    return {"action": "promote", "to": _next_step(weight, steps)}


def _gate(args: argparse.Namespace, ctx: Context) -> tuple[Analysis | None, Prometheus | None]:
    """Run the analysis that must pass before traffic moves; --force records it but does not obey it."""
    prometheus = _prometheus(args, ctx.view, required=not args.force)
    if prometheus is None:
        return None, None
    try:
        result = analysis.analyze(ctx.view, prometheus, _at(args))
    except PrometheusError as exc:
        if not args.force:
            raise
        print(f"warning: --force: no analysis ({exc})", file=sys.stderr)
        return None, prometheus
    print(analysis.table(result))
    if result.verdict is not Verdict.PASS and not args.force:
        raise Refused(
            f"analysis is {result.verdict.value}; not promoting (use --force to override)", VERDICT_EXIT[result.verdict]
        )
    return result, prometheus


def cmd_promote(args: argparse.Namespace) -> int:
    """Move the canary weight one step up (or finish at 100) after the analysis passed."""
    ctx = _load(args, need_git=True)
    app, steps = ctx.view.app, ctx.view.release.steps
    weight = app.canary_weight
    if weight not in (0, *steps):
        raise Refused(
            f"canaryWeight {weight} is not 0 or a step of canarySteps {list(steps)}; set it by hand or roll back"
        )
    if app.canary_version == app.ga_version and weight in (0, 100) and not (weight == 100 and args.finish):
        raise Refused(f"canaryVersion equals gaVersion ({app.ga_version}): nothing to release")
    if weight == 100:
        if not args.finish:
            raise Refused("the canary already has 100%; run `canary promote --finish` to make it GA")
        return _finish(args, ctx)
    if args.finish:
        raise Refused(f"--finish needs the canary at 100%, it is at {weight}%")
    target = _next_step(weight, steps)
    assert target is not None  # weight < 100 and steps end at 100
    canary = ctx.view.canary_workload
    if weight == 0 and not args.force:
        # At 0% the canary has no traffic, so there is nothing to analyze: the first step is the smallest
        # exposure and every later step is gated.
        result, prometheus = None, None
        why = "first step; no analysis possible at 0%"
    else:
        result, prometheus = _gate(args, ctx)
        why = result.summary() if result else "no analysis"
        if args.force:
            why = f"FORCED, analysis {result.verdict.value if result else 'unavailable'}: {why}"
    ctx.stack.set("canaryWeight", target)
    subject = f"canary: promote {canary} {app.canary_version} to {target}% ({why})"
    body = f"{_evidence(result, prometheus)}\n\nRevert this commit to return to {weight}%."
    commit_id = _commit(ctx, subject, body)
    if args.push:
        _push(ctx, args, [commit_id])
    _notify(ctx, args, f":arrow_up: {subject}")
    return EXIT_OK


def _finish(args: argparse.Namespace, ctx: Context) -> int:
    """Two commits: GA takes the canary's version while the canary holds 100%, then the weight goes to 0."""
    app = ctx.view.app
    result, prometheus = _gate(args, ctx)
    evidence = _evidence(result, prometheus)
    commits = []
    if app.ga_version != app.canary_version:
        ctx.stack.set("gaVersion", app.canary_version)
        commits.append(
            _commit(
                ctx,
                f"canary: finish {app.name} {app.canary_version} (1/2): {ctx.view.ga_workload} runs {app.canary_version}",
                "No traffic change: the canary serves 100% while the GA Deployment rolls to the new version.\n\n"
                + evidence,
            )
        )
    ctx.stack.set("canaryWeight", 0)
    commits.append(
        _commit(
            ctx,
            f"canary: finish {app.name} {app.canary_version} (2/2): traffic back to {ctx.view.ga_workload}, canary 0%",
            f"{ctx.view.ga_workload} runs {app.canary_version} now; {ctx.view.canary_workload} is idle until the next tag.",
        )
    )
    if args.push:
        _push(ctx, args, commits)  # one push per commit: CI runs `pulumi up` for each step in order
    _notify(ctx, args, f":white_check_mark: {app.name} {app.canary_version} is GA")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    """Send all traffic back to GA; the commit carries the analysis that justified it when one can be had."""
    ctx = _load(args, need_git=True)
    app = ctx.view.app
    if app.canary_weight == 0:
        print(f"canary weight is already 0% in {ctx.stack.path.name}; nothing to roll back")
        return EXIT_OK
    prometheus = _prometheus(args, ctx.view, required=False)
    result = None
    note = ""
    if prometheus:
        try:
            result = analysis.analyze(ctx.view, prometheus, _at(args))
        except PrometheusError as exc:  # evidence is nice to have; a rollback never waits for it
            note = f"Analysis unavailable: {exc}\n\n"
            print(f"warning: {exc}", file=sys.stderr)
    why = result.summary() if result else "no analysis"
    ctx.stack.set("canaryWeight", 0)
    subject = (
        f"canary: roll back {ctx.view.canary_workload} {app.canary_version} from {app.canary_weight}% to 0% ({why})"
    )
    reason = f"Reason: {args.reason}\n\n" if args.reason else ""
    commit_id = _commit(ctx, subject, f"{reason}{note}{_evidence(result, prometheus)}")
    if args.push:
        _push(ctx, args, [commit_id])
    _notify(ctx, args, f":rewind: {subject}" + (f" Reason: {args.reason}" if args.reason else ""))
    return EXIT_OK


def cmd_watch_images(args: argparse.Namespace) -> int:
    """Bump canaryVersion to the newest registry tag allowed by canaryTagPolicy."""
    ctx = _load(args, need_git=not args.dry_run)
    app, policy = ctx.view.app, ctx.view.release.tag_policy
    ref = parse_image(app.image, args.registry_url)
    found = Registry(ref.base_url, timeout=args.timeout).tags(ref.name, page_size=args.page_size)
    newest = tags.newest(policy, found, app.canary_version)
    if newest is None:
        print(f"no tag of {app.image} newer than {app.canary_version} matches {policy} ({len(found)} tags seen)")
        return EXIT_INCONCLUSIVE
    print(f"{app.image}: {newest} is newer than canary {app.canary_version} and matches {policy}")
    if args.dry_run:
        return EXIT_OK
    if app.canary_weight != 0:
        raise Refused(
            f"a release of {app.canary_version} is in progress at {app.canary_weight}%; "
            "finish or roll back before a new canary version",
            EXIT_INCONCLUSIVE,
        )
    ctx.stack.set("canaryVersion", newest)
    subject = f"canary: new canary image {app.name} {newest} (was {app.canary_version}, policy {policy})"
    commit_id = _commit(ctx, subject, f"Tags listed from {ref.base_url}/v2/{ref.name}/tags/list ({len(found)} tags).")
    if args.push:
        _push(ctx, args, [commit_id])
    _notify(ctx, args, f":package: {subject}")
    return EXIT_OK


def cmd_notify(args: argparse.Namespace) -> int:
    """Post a message (default: the current state) to the Slack webhook; --dry-run prints the payload."""
    ctx = _load(args, need_git=False)
    app = ctx.view.app
    text = args.text or (
        f"{app.name} ({ctx.stack_name}): canary {app.canary_version} at {app.canary_weight}%, GA {app.ga_version}"
    )
    body = notify.payload(text)
    if args.dry_run:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    try:
        url = notify.webhook_url(ctx.repo, ctx.stack_name, ctx.stack.raw(notify.SECRET_KEY))
    except notify.NotifyError as exc:
        raise Refused(str(exc)) from None
    if not url:
        raise Refused(f"no webhook: set ${notify.ENV_VAR} or the secret {notify.SECRET_KEY}")
    try:
        notify.post(url, body)
    except notify.NotifyError as exc:
        raise Refused(str(exc), EXIT_UNAVAILABLE) from None
    print("sent")
    return EXIT_OK


# --- argument parsing -------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage; 2 means inconclusive here, so bad usage exits 4 like other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_REFUSED, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of `canary`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", default=os.environ.get("CANARY_STACK", "dev"), help="stack name (default: dev)")
    common.add_argument("-C", "--repo", default=".", help="directory inside the repository (default: .)")

    metrics = argparse.ArgumentParser(add_help=False)
    metrics.add_argument("--prometheus", help="Prometheus base URL (default: $PROMETHEUS_URL, then prometheusUrl)")
    metrics.add_argument("--at", help="evaluate queries at this time: RFC 3339 or unix seconds (default: now)")
    metrics.add_argument("--timeout", type=float, default=analysis.DEFAULT_TIMEOUT_S, help="seconds per request")

    git = argparse.ArgumentParser(add_help=False)
    git.add_argument("--push", action="store_true", help="push the commit(s) to --remote")
    git.add_argument("--remote", default="origin", help="remote to push to (default: origin)")
    git.add_argument("--no-notify", action="store_true", help="do not post to Slack")

    parser = _Parser(prog="canary", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("status", parents=[common, metrics], help="weights and versions (+ live metrics)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("analyze", parents=[common, metrics], help="judge the canary from Istio metrics")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("promote", parents=[common, metrics, git], help="next traffic step after a passing analysis")
    p.add_argument("--force", action="store_true", help="promote whatever the analysis says")
    p.add_argument("--finish", action="store_true", help="at 100%%: make the canary version GA, weight back to 0")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", parents=[common, metrics, git], help="canary weight to 0")
    p.add_argument("--reason", help="why, for the commit message and Slack")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("watch-images", parents=[common, git], help="bump canaryVersion to the newest allowed tag")
    p.add_argument("--registry-url", help="registry base URL instead of the image's host (http only for 127.0.0.1)")
    p.add_argument("--page-size", type=int, default=None, help="tags per page to request (n=)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
    p.add_argument("--dry-run", action="store_true", help="only print what would be picked")
    p.set_defaults(func=cmd_watch_images)

    p = sub.add_parser("notify", parents=[common], help="post a message to the Slack webhook")
    p.add_argument("--text", help="message (default: the current release state)")
    p.add_argument("--dry-run", action="store_true", help="print the JSON payload instead of posting")
    p.set_defaults(func=cmd_notify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `canary` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except (ConfigError, gitops.GitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (PrometheusError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
