"""`canary plan`: what merging this stack commit does to traffic, in plain words and a picture, for the pull request.

Reads `pulumi preview --json` (a file, or - for stdin) and the stack file as the commit leaves it; writes Markdown:
a headline, the traffic before and after per version, Mermaid pie charts, a warning listing every change that is
not the one expected for this kind of step (replacements first), and, when Prometheus answers, the latest
analysis. With --strict it exits 7 when the preview holds such a change (a red check; merging stays possible).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from istio_canary import safeload
from istio_canary.actions.errors import Refused
from istio_canary.actions.plan import PlanRequest, plan_merge
from istio_canary.commands import common
from istio_canary.exits import EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED, EXIT_UNEXPECTED

HELP = "Markdown for the pull request: what merging does to traffic"
EXITS = (EXIT_OK, EXIT_REFUSED, EXIT_INTERNAL, EXIT_UNEXPECTED)
USES = ("metrics", "json")
MAX_PREVIEW_BYTES = safeload.MAX_JSON_BYTES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preview", default="-", help="`pulumi preview --json` output: a file, or - for stdin")
    parser.add_argument("--strict", action="store_true", help="exit 7 when the preview changes more than expected")
    parser.add_argument("--dashboard-url", default="", help="the Grafana dashboard, linked under the analysis")


def _preview(source: str) -> dict[str, Any]:
    """The preview JSON, read within istio_canary/safeload.py's limits (size, nesting): a pull request's CI job reads
    what the pull request's code printed. Every problem with it is exit 4 naming --preview."""
    try:
        if source == "-":
            stdin = getattr(sys.stdin, "buffer", sys.stdin)  # bytes when there is a real stdin
            data = stdin.read(MAX_PREVIEW_BYTES + 1)
        else:
            data = safeload.read_bytes(Path(source), MAX_PREVIEW_BYTES)
        value = safeload.json_value(data, MAX_PREVIEW_BYTES)
    except OSError as exc:
        raise Refused(f"--preview {source}: {exc.strerror}") from None
    except safeload.LimitError as exc:
        raise Refused(f"--preview {source}: {exc}") from None
    except ValueError:  # not JSON, or not UTF-8
        raise Refused(f"--preview {source}: not JSON (run `pulumi preview --json`)") from None
    if not isinstance(value, dict) or not isinstance(value.get("steps", []), list):
        raise Refused(f"--preview {source}: not the output of `pulumi preview --json` (no steps list)")
    return value


def run(args: argparse.Namespace) -> int:
    out = common.Output(args)
    preview = _preview(args.preview)
    request = PlanRequest(
        Path(args.repo),
        args.stack,
        preview,
        args.preview,
        strict=args.strict,
        dashboard_url=args.dashboard_url,
        metrics=common.metrics_options(args),
    )
    result = plan_merge(request)
    if out.json:
        out.result(result.to_json())
    else:
        print(result.markdown)
    if result.reading.unexpected:
        print(f"warning: {len(result.reading.unexpected)} unexpected change(s) in the preview", file=sys.stderr)
    return result.exit_code
