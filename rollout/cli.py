"""`canary`: status, analyze, promote, rollback, watch-images, notify. Every traffic step is a Git commit."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TextIO

from rollout import analysis, gitops, httpclient, notify, tags
from rollout.analysis import Analysis, Verdict
from rollout.lock import LockError, RepoLock
from rollout.prometheus import DEFAULT_TIMEOUT_S, TOKEN_ENV, Prometheus, PrometheusError
from rollout.registry import Registry, RegistryError, parse_image
from rollout.stackfile import ReleaseView, StackFile
from stacks.settings import PROJECT, ConfigError, shown

EXIT_OK = 0
EXIT_FAIL = 1  # analysis failed (and so promote refused)
EXIT_INCONCLUSIVE = 2  # not enough data, or nothing to do now
EXIT_UNAVAILABLE = 3  # Prometheus / registry / webhook unreachable, slow or erroring
EXIT_REFUSED = 4  # bad input or config, dirty tree, unknown step, git failure
EXIT_INTERNAL = 5  # a bug: an unexpected exception (never read as a verdict)

EXIT_CODES_HELP = """exit codes:
  0  pass / done
  1  analysis failed (promote refused)
  2  inconclusive (too little traffic, no data) or nothing to do now
  3  Prometheus, the registry or the webhook is unreachable, too slow or answered garbage
  4  bad input: invalid config or option, dirty tree, unknown step, rolled-back version, git failure
  5  internal error (a bug in canary; the message names the exception)
"""

VERDICT_EXIT = {Verdict.PASS: EXIT_OK, Verdict.FAIL: EXIT_FAIL, Verdict.INCONCLUSIVE: EXIT_INCONCLUSIVE}


class Refused(Exception):
    """Stop with a message and an exit code; nothing has been committed."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Context:
    """The repository, the stack file, its validated release view, and the repository lock when writing.

    A context manager: leaving it releases the lock, so one process can run several commands (the tests do).
    """

    repo: Path
    stack_name: str
    stack: StackFile
    view: ReleaseView
    invalid_weight: object = None  # rollback only: the unreadable weight that is being repaired
    for_rollback: bool = False  # validate as a rollback does: only the release keys, any weight
    lock: RepoLock | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lock:
            self.lock.close()


def _load(args: argparse.Namespace, *, need_git: bool, for_rollback: bool = False) -> Context:
    """Find the repository, and for a writing command (need_git) take the lock before anything is read:
    the clean-tree check and the file a step is computed from must be the ones it commits over."""
    start = Path(args.repo).resolve()
    try:
        repo = gitops.toplevel(start)
    except gitops.GitError:
        if need_git:
            raise Refused(f"{start} is not inside a git work tree") from None
        repo = start
    lock = None
    if need_git:
        try:
            lock = RepoLock(gitops.git_dir(repo))
        except LockError as exc:
            raise Refused(str(exc)) from None
    try:
        if need_git:
            gitops.require_clean(repo)
        stack = StackFile.for_stack(repo, args.stack)
        invalid = None
        if for_rollback:
            view, invalid = stack.rollback_view()
        else:
            view = stack.view()
        if need_git:
            stack.check_writable()
    except BaseException:
        if lock:
            lock.close()
        raise
    return Context(
        repo=repo,
        stack_name=args.stack,
        stack=stack,
        view=view,
        invalid_weight=invalid,
        for_rollback=for_rollback,
        lock=lock,
    )


def _prometheus(args: argparse.Namespace, view: ReleaseView, *, required: bool) -> Prometheus | None:
    """The Prometheus to ask: --prometheus, else $PROMETHEUS_URL (both may carry user:password@ for Basic auth,
    with $PROMETHEUS_TOKEN for Bearer), else prometheusUrl from the stack file (never a credential)."""
    for source, url in (("--prometheus", args.prometheus), ("$PROMETHEUS_URL", os.environ.get("PROMETHEUS_URL"))):
        if url:
            break
    else:
        source, url = f"{PROJECT}:prometheusUrl", view.release.prometheus_url  # validated with the stack file
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
    return Prometheus(url, timeout=args.timeout, token=token)


def _at(args: argparse.Namespace) -> float:
    try:
        return analysis.parse_time(args.at)
    except ValueError as exc:
        raise Refused(str(exc)) from None


def _commit(ctx: Context, subject: str, body: str) -> str:
    if not ctx.stack.save(rollback=ctx.for_rollback):
        raise Refused(f"{ctx.stack.path.name} would not change; nothing to commit")
    try:
        commit_id = gitops.commit(ctx.repo, ctx.stack.path, f"{subject}\n\n{body}".rstrip() + "\n")
    except gitops.GitError as exc:
        # Leave the tree as it was: a modified, staged stack file would make every later run "dirty". Only
        # our own edit is undone: a file someone changed since is theirs and stays.
        if ctx.stack.undo_save():
            what = "is restored"
        else:
            what = "was changed by someone else meanwhile and is left as it is"
        raise Refused(f"{exc}\n{ctx.stack.path.name} {what}; nothing was committed for this step") from None
    print(f"committed {commit_id[:12]}: {subject}")
    return commit_id


def _push(ctx: Context, args: argparse.Namespace, commit_ids: Sequence[str]) -> None:
    remote = httpclient.scrub(args.remote)  # --remote may be a URL with a token in it
    for commit_id in commit_ids:
        try:
            gitops.push(ctx.repo, args.remote, commit_id)
        except gitops.GitError as exc:
            raise Refused(
                f"the push to {remote} failed: {exc}\n"
                f"The local commit {commit_id[:12]} exists (HEAD is {gitops.head(ctx.repo)[:12]}): push it yourself "
                f"(git push {remote} HEAD) or drop it (git reset --hard {commit_id[:12]}~1)."
            ) from None
        print(f"pushed {commit_id[:12]} to {remote}")


def _notify(ctx: Context, args: argparse.Namespace, text: str) -> None:
    if getattr(args, "no_notify", False):
        return
    notify.send(text, ctx.repo, ctx.stack_name, ctx.stack.raw(notify.SECRET_KEY))


def _evidence(result: Analysis | None, prometheus: Prometheus | None, unavailable: str = "") -> str:
    if unavailable:
        return f"Analysis unavailable: {unavailable}"
    if result is None:
        return "No analysis recorded."
    source = f" from {prometheus.shown}" if prometheus else ""
    return f"Analysis{source}:\n\n{analysis.table(result)}"


# --- commands ---------------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    """Weights and versions from the stack file; live metrics when a Prometheus URL is known."""
    ctx = _load(args, need_git=False)
    app, rel = ctx.view.app, ctx.view.release
    prometheus = _prometheus(args, ctx.view, required=False)
    at = _at(args)
    nxt = next_action(ctx.view, _rolled_back(ctx, required=False))
    result, error = None, None
    if prometheus:
        try:
            result = analysis.analyze(ctx.view, prometheus, at)
        except PrometheusError as exc:  # the config part is still worth printing; the exit code says 3
            error = str(exc)
    code = EXIT_UNAVAILABLE if error else EXIT_OK
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
                    "next": nxt,
                    "analysis": result.to_json() if result else ({"error": error} if error else None),
                },
                indent=2,
            )
        )
        return code
    print(f"stack {ctx.stack_name} ({ctx.stack.path.name}): {app.image} in namespace {app.namespace}")
    print(f"  ga      {ctx.view.ga_workload:<24} {app.ga_version:<12} {app.split['ga']:>3}%")
    print(f"  canary  {ctx.view.canary_workload:<24} {app.canary_version:<12} {app.canary_weight:>3}%")
    steps = " -> ".join(str(s) for s in rel.steps)
    print(f"  steps   0 -> {steps}; next: {nxt['to'] if nxt['action'] == 'promote' else nxt['action']}")
    print("  checks  " + "; ".join(f"{check.name} {check.rule()}" for check in rel.checks))
    if result:
        print()
        print(analysis.table(result))
    if error:
        print(f"  analysis unavailable: {error}")
    return code


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


def _known_step(weight: int, steps: Sequence[int]) -> bool:
    """A weight `canary promote` can move from: 0 or one of canarySteps (a hand-edited 30 is not)."""
    return weight == 0 or weight in steps


def _rolled_back(ctx: Context, *, required: bool) -> str | None:
    """The rollback commit subject when the current canaryVersion was rolled back at weight 0, else None."""
    app = ctx.view.app
    if app.canary_weight != 0 or app.canary_version == app.ga_version:
        return None
    try:
        return gitops.rolled_back(
            ctx.repo, ctx.stack.path, ctx.view.canary_workload, app.canary_version, f"{PROJECT}:canaryVersion:"
        )
    except gitops.GitError:
        if required:
            raise
        return None  # `status` outside a git repository: no history to read


def next_action(view: ReleaseView, rolled_back: str | None = None) -> dict[str, object]:
    """What `canary promote` would do next: promote (to a weight), finish, none, rolled-back (refused without
    --force), or unknown-step (refused)."""
    app, steps = view.app, view.release.steps
    weight = app.canary_weight
    if not _known_step(weight, steps):
        return {"action": "unknown-step", "to": None}
    if weight == 100:
        return {"action": "finish", "to": 0}
    if weight == 0 and app.canary_version == app.ga_version:
        return {"action": "none", "to": None}
    if weight == 0 and rolled_back:
        return {"action": "rolled-back", "to": None}
    return {"action": "promote", "to": _next_step(weight, steps)}


@dataclass
class Gate:
    """What the analysis before a traffic step said: a result, or why there is none."""

    result: Analysis | None = None
    prometheus: Prometheus | None = None
    unavailable: str = ""  # the Prometheus error when --force went ahead without an analysis

    def evidence(self) -> str:
        return _evidence(self.result, self.prometheus, self.unavailable)


def _gate(args: argparse.Namespace, ctx: Context) -> Gate:
    """Run the analysis that must pass before traffic moves; --force records it but does not obey it."""
    prometheus = _prometheus(args, ctx.view, required=not args.force)
    if prometheus is None:
        return Gate()
    try:
        result = analysis.analyze(ctx.view, prometheus, _at(args))
    except PrometheusError as exc:
        if not args.force:
            raise
        print(f"warning: --force: no analysis ({exc})", file=sys.stderr)
        return Gate(prometheus=prometheus, unavailable=str(exc))
    print(analysis.table(result))
    if result.verdict is not Verdict.PASS and not args.force:
        raise Refused(
            f"analysis is {result.verdict.value}; not promoting (use --force to override)", VERDICT_EXIT[result.verdict]
        )
    return Gate(result=result, prometheus=prometheus)


def cmd_promote(args: argparse.Namespace) -> int:
    """Move the canary weight one step up (or finish at 100) after the analysis passed."""
    with _load(args, need_git=True) as ctx:
        app, steps = ctx.view.app, ctx.view.release.steps
        weight = app.canary_weight
        if not _known_step(weight, steps):
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
        rolled_back = _rolled_back(ctx, required=True)
        if rolled_back and not args.force:
            # At 0% the first step needs no analysis, so without this a rolled-back version would go straight
            # back to live traffic. A newer tag from watch-images (a new canaryVersion) clears it.
            raise Refused(
                f"{app.canary_version} was rolled back ({rolled_back!r}); not promoting it again. "
                "Wait for a newer tag (canary watch-images) or use --force"
            )
        target = _next_step(weight, steps)
        assert target is not None  # weight < 100 and steps end at 100
        canary = ctx.view.canary_workload
        if weight == 0 and not args.force:
            # At 0% the canary has no traffic, so there is nothing to analyze: the first step is the smallest
            # exposure and every later step is gated.
            gate = Gate()
            why = "first step; no analysis possible at 0%"
        else:
            gate = _gate(args, ctx)
            why = gate.result.summary() if gate.result else "no analysis"
            if args.force:
                why = f"FORCED, analysis {gate.result.verdict.value if gate.result else 'unavailable'}: {why}"
        ctx.stack.set("canaryWeight", target)
        subject = f"canary: promote {canary} {app.canary_version} to {target}% ({why})"
        forced = f"Promoted with --force although {app.canary_version} was rolled back: {rolled_back}\n\n"
        body = f"{forced if rolled_back else ''}{gate.evidence()}\n\nRevert this commit to return to {weight}%."
        commit_id = _commit(ctx, subject, body)
        if args.push:
            _push(ctx, args, [commit_id])
        _notify(ctx, args, f":arrow_up: {subject}")
        return EXIT_OK


def _finish(args: argparse.Namespace, ctx: Context) -> int:
    """Two commits: GA takes the canary's version while the canary holds 100%, then the weight goes to 0."""
    app = ctx.view.app
    evidence = _gate(args, ctx).evidence()
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
        if args.one_commit:
            if args.push:
                _push(ctx, args, commits)
            print("--one-commit: step 2/2 is left for the next run")
            return EXIT_OK
    ctx.stack.set("canaryWeight", 0)
    commits.append(
        _commit(
            ctx,
            f"canary: finish {app.name} {app.canary_version} (2/2): traffic back to {ctx.view.ga_workload}, canary 0%",
            f"{ctx.view.ga_workload} runs {app.canary_version} now; {ctx.view.canary_workload} is idle until the next "
            f"tag.\n\n{evidence}",
        )
    )
    if args.push:
        _push(ctx, args, commits)  # one push per commit: CI runs `pulumi up` for each step in order
    _notify(ctx, args, f":white_check_mark: {app.name} {app.canary_version} is GA")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    """Send all traffic back to GA; the commit carries the analysis that justified it when one can be had."""
    with _load(args, need_git=True, for_rollback=True) as ctx:
        app = ctx.view.app
        invalid = ctx.invalid_weight
        if app.canary_weight == 0 and invalid is None:
            print(f"canary weight is already 0% in {ctx.stack.path.name}; nothing to roll back")
            return EXIT_OK
        if invalid is not None:
            print(f"warning: canaryWeight {shown(invalid)} is invalid; rolling back to 0 anyway", file=sys.stderr)
        previous = f"{app.canary_weight}%" if invalid is None else f"invalid weight {shown(invalid)}"
        prometheus = _prometheus(args, ctx.view, required=False)
        result = None
        note = ""
        if invalid is not None:
            note = f"The previous canaryWeight {shown(invalid)} was invalid (not a whole number from 0 to 100).\n\n"
        if prometheus:
            try:
                result = analysis.analyze(ctx.view, prometheus, _at(args))
            except PrometheusError as exc:  # evidence is nice to have; a rollback never waits for it
                note += f"Analysis unavailable: {exc}\n\n"
                print(f"warning: {exc}", file=sys.stderr)
        why = result.summary() if result else "no analysis"
        ctx.stack.set("canaryWeight", 0)
        subject = f"canary: roll back {ctx.view.canary_workload} {app.canary_version} from {previous} to 0% ({why})"
        reason = f"Reason: {args.reason}\n\n" if args.reason else ""
        commit_id = _commit(ctx, subject, f"{reason}{note}{_evidence(result, prometheus)}")
        if args.push:
            _push(ctx, args, [commit_id])
        _notify(ctx, args, f":rewind: {subject}" + (f" Reason: {args.reason}" if args.reason else ""))
        return EXIT_OK


def cmd_watch_images(args: argparse.Namespace) -> int:
    """Bump canaryVersion to the newest registry tag allowed by canaryTagPolicy."""
    with _load(args, need_git=not args.dry_run) as ctx:
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
        source = f"{httpclient.redact(ref.base_url)} ({ref.name})"
        commit_id = _commit(ctx, subject, f"Tags listed from {source}: {len(found)} tags.")
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
        if url:
            notify.check_url(url)
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


def _seconds(value: str) -> float:
    """--timeout: a number of seconds above 0 (0 would make every request fail at once)."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r}: must be a number of seconds above 0")
    return seconds


def _command(
    sub: argparse._SubParsersAction, name: str, func, help_text: str, parents: list
) -> argparse.ArgumentParser:
    """A subcommand whose --help shows its description and the exit codes."""
    parser = sub.add_parser(
        name,
        parents=parents,
        help=help_text,
        description=(func.__doc__ or help_text).strip(),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of `canary`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", default=os.environ.get("CANARY_STACK", "dev"), help="stack name (default: dev)")
    common.add_argument("-C", "--repo", default=".", help="directory inside the repository (default: .)")

    metrics = argparse.ArgumentParser(add_help=False)
    metrics.add_argument("--prometheus", help="Prometheus base URL (default: $PROMETHEUS_URL, then prometheusUrl)")
    metrics.add_argument("--at", help="evaluate queries at this time: RFC 3339 or unix seconds (default: now)")
    metrics.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, help="seconds per request")

    git = argparse.ArgumentParser(add_help=False)
    git.add_argument("--push", action="store_true", help="push the commit(s) to --remote")
    git.add_argument("--remote", default="origin", help="remote to push to (default: origin)")
    git.add_argument("--no-notify", action="store_true", help="do not post to Slack")

    parser = _Parser(
        prog="canary", description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = _command(sub, "status", cmd_status, "weights and versions (+ live metrics)", [common, metrics])
    p.add_argument("--json", action="store_true")

    p = _command(sub, "analyze", cmd_analyze, "judge the canary from Istio metrics", [common, metrics])
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = _command(sub, "promote", cmd_promote, "next traffic step after a passing analysis", [common, metrics, git])
    p.add_argument("--force", action="store_true", help="promote whatever the analysis says")
    p.add_argument("--finish", action="store_true", help="at 100%%: make the canary version GA, weight back to 0")
    p.add_argument(
        "--one-commit",
        action="store_true",
        help="with --finish: make only the next of the two commits (one pull request per commit)",
    )

    p = _command(sub, "rollback", cmd_rollback, "canary weight to 0", [common, metrics, git])
    p.add_argument("--reason", help="why, for the commit message and Slack")

    p = _command(sub, "watch-images", cmd_watch_images, "bump canaryVersion to the newest allowed tag", [common, git])
    p.add_argument("--registry-url", help="registry base URL instead of the image's host (http only for 127.0.0.1)")
    p.add_argument("--page-size", type=int, default=None, help="tags per page to request (n=)")
    p.add_argument("--timeout", type=_seconds, default=15.0, help="seconds per request")
    p.add_argument("--dry-run", action="store_true", help="only print what would be picked")

    p = _command(sub, "notify", cmd_notify, "post a message to the Slack webhook", [common])
    p.add_argument("--text", help="message (default: the current release state)")
    p.add_argument("--dry-run", action="store_true", help="print the JSON payload instead of posting")
    return parser


class _PipeSafeStdout:
    """stdout that survives its reader going away (`canary status --json | head -c 10`): the rest of the
    output goes nowhere, and the command still finishes and exits with the code that means what happened."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())  # later writes and the final flush go to /dev/null
            os.close(devnull)
        return len(text)

    def flush(self) -> None:
        self.write("")

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `canary` console script; returns the exit code."""
    if not isinstance(sys.stdout, _PipeSafeStdout) and hasattr(sys.stdout, "fileno"):
        try:
            sys.stdout.fileno()
            sys.stdout = _PipeSafeStdout(sys.stdout)  # type: ignore[assignment]
        except (OSError, ValueError):  # not a real file (pytest's capture): nothing to protect
            pass
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except (ConfigError, gitops.GitError, analysis.BadCheckQuery) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (PrometheusError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except Exception as exc:  # noqa: BLE001 - exit 1 would read as "analysis failed" and trigger a rollback
        print(f"internal error (a bug in canary): {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
