"""docs/release.md quotes the PromQL the code builds, not a paraphrase of it."""

from __future__ import annotations

from istio_canary.metrics import istio_observer
from tests.integration.conftest import ROOT


def test_release_doc_quotes_the_check_queries():
    doc = (ROOT / "docs" / "release.md").read_text()
    for template in (
        istio_observer.requests_template(),
        istio_observer.success_rate_template(),
        istio_observer.p99_template(),
    ):
        assert f"`{istio_observer.render(template, 'test', 'podinfo-canary', '5m')}`" in doc


def test_release_doc_has_the_generated_exit_code_tables():
    from istio_canary import exits
    from istio_canary.cli import COMMANDS

    doc = (ROOT / "docs" / "release.md").read_text()
    assert exits.markdown() in doc
    for name, module in COMMANDS.items():
        assert f"| `{name}` | {', '.join(str(code) for code in module.EXITS)} |" in doc
