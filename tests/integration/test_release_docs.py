"""docs/release.md quotes the PromQL the code builds, not a paraphrase of it."""

from __future__ import annotations

from components import promql
from tests.integration.conftest import ROOT


def test_release_doc_quotes_the_analysis_queries():
    doc = (ROOT / "docs" / "release.md").read_text()
    canary = ("test", "podinfo", "5m", ("canary",))
    for query in (promql.request_count(*canary), promql.server_error_count(*canary), promql.p99_latency(*canary)):
        assert f"`{query}`" in doc
