"""A base Prometheus URL with a path, a query string or a fragment (issue 18): the base's path and parameters
are kept (a gateway's prefix, a tenant or org id), the API's path and `query`/`time`/`timeout` are added after
them, a fragment is dropped (it never reaches a server), and a base's own value of one of those three is
dropped (Prometheus would read the base's, the first one, and judge another query than the check's); nothing
about the base URL raises, so it cannot block a rollback. Against a recording stub and a real Prometheus."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from istio_canary.cli import EXIT_OK
from istio_canary.metrics.prometheus import Prometheus
from tests.integration import servers
from tests.integration.cli import canary
from tests.integration.conftest import project_dir, stack_text

EMPTY = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()


def recording():
    return servers.stub(lambda _request: (200, {"Content-Type": "application/json"}, EMPTY))


@pytest.mark.parametrize(
    ("base", "path", "kept"),
    [
        ("/prom?tenant=a%20b&org=1", "/prom/api/v1/query", [("tenant", "a b"), ("org", "1")]),
        ("/prom/?tenant=t1#dashboards", "/prom/api/v1/query", [("tenant", "t1")]),
        ("#only-a-fragment", "/api/v1/query", []),
        ("/?flag", "/api/v1/query", [("flag", "")]),
        ("/p?query=up&tenant=t&time=1&timeout=9s&a=", "/p/api/v1/query", [("tenant", "t"), ("a", "")]),
        ("/p?query=up", "/p/api/v1/query", []),
        ("", "/api/v1/query", []),
    ],
)
def test_the_base_keeps_its_path_and_parameters_and_loses_its_fragment(base, path, kept):
    with recording() as (url, seen):
        assert Prometheus(url + base, timeout=5).query('sum(up{job="a&b"})', 1_700_000_000.5) is None
    [request] = seen
    parts = urllib.parse.urlsplit(request.path)
    assert parts.path == path
    params = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    assert params[: len(kept)] == kept
    own = dict(params[len(kept) :])
    assert list(own) == ["query", "time", "timeout"]
    assert own["query"] == 'sum(up{job="a&b"})' and own["time"] == "1700000000.500"
    assert 0 < float(own["timeout"]) <= 5  # plain seconds: Prometheus refuses "0.5s" as bad_data


def test_the_command_sends_the_checks_own_query_and_never_shows_the_url(capsys, tmp_path):
    directory = project_dir(tmp_path, stack_text(weight=10))
    with recording() as (url, seen):
        base = f"{url}/p?tenant=s3cret&query=vector(1)"
        result = canary(capsys, "analyze", "-C", directory, "--prometheus", base, "--json")
    assert result.code == 2, result.err  # no data: inconclusive, from the checks' own queries
    queries = [urllib.parse.parse_qs(urllib.parse.urlsplit(r.path).query)["query"] for r in seen]
    assert queries and all(len(q) == 1 and q[0] != "vector(1)" for q in queries)
    assert "s3cret" not in result.err + result.out


def test_a_real_prometheus_behind_a_query_string_and_a_fractional_timeout(capsys, tmp_path, prom):
    """Prometheus ignores a parameter it does not know, and reads `timeout=0.9xx` (it refuses `0.9s`)."""
    directory = project_dir(tmp_path, stack_text(namespace="healthy", weight=10))
    base = f"{prom.url}/?tenant=team-a#graph"
    result = canary(capsys, "analyze", "-C", directory, "--prometheus", base, "--at", prom.end, "--timeout", 0.9)
    assert result.code == EXIT_OK, result.out + result.err
