"""Every external call has one overall deadline that holds, whatever the server does (issue 18).

Each client (Prometheus, the registry's tag listing, acceptance checks, Slack) meets a real local server that
hangs before its headers, drips its headers or its body one byte at a time, sends a body of a gigabyte, or
answers garbage; in all three flavours of HTTP a server speaks: keep-alive HTTP/1.1, HTTP/1.0, and HTTP/1.1
with `Connection: close` (http.client lets go of the socket on the last two, which is where a deadline that
cuts the socket used to stop holding). A drip would take DRIP_S; the call must end with the deadline's error
long before that. Elapsed bounds are hang detectors, not performance assertions.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from istio_canary import acceptance, notify, registry
from istio_canary.exits import EXIT_BLOCKED, EXIT_OK, EXIT_UNAVAILABLE
from istio_canary.metrics import MetricsUnavailable
from istio_canary.metrics.prometheus import Prometheus
from istio_canary.registry import Registry, RegistryError
from istio_canary.release.model import AcceptanceCheck
from istio_canary.stackfile import StackFile
from testkit import hostile
from tests.integration.cli import canary
from tests.integration.conftest import project_dir, stack_text

DEADLINE_S = 0.5
INTERVAL_S = 0.2  # per dripped byte, under the socket timeout: every answer below is over 128 bytes (a drip of 25 s+)
HANG_BOUND_S = 10.0
NAME = "acme/podinfo"
PAD = b" " * 128  # JSON allows trailing whitespace: a longer drip, the same answer

PROMETHEUS_ANSWER = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode() + PAD
TAGS_ANSWER = hostile.tags_page(["6.9.0", "6.9.1"]) + PAD


def call_prometheus(url: str) -> str:
    try:
        Prometheus(url, timeout=DEADLINE_S).query("sum(up)", 1_700_000_000)
    except MetricsUnavailable as exc:
        return str(exc)
    return "answered"


def call_registry(url: str) -> str:
    try:
        Registry(url, timeout=DEADLINE_S).tags(NAME)
    except RegistryError as exc:
        return str(exc)
    return "answered"


def call_acceptance(url: str) -> str:
    check = AcceptanceCheck(url=f"{url}/ready", status=200, timeout_s=DEADLINE_S, steps=())
    [result] = acceptance.run((check,), "10")
    return "answered" if result.passed else result.error


def call_slack(url: str) -> str:
    try:
        notify.post(f"{url}/services/T0/B0/X", notify.payload("hello"), timeout=DEADLINE_S)
    except notify.NotifyError as exc:
        return str(exc)
    return "answered"


CLIENTS: dict[str, tuple[Callable[[str], str], hostile.Reply]] = {
    "prometheus": (
        call_prometheus,
        hostile.Reply(headers={"Content-Type": "application/json"}, body=PROMETHEUS_ANSWER),
    ),
    "registry": (call_registry, hostile.Reply(headers={"Content-Type": "application/json"}, body=TAGS_ANSWER)),
    "acceptance": (call_acceptance, hostile.Reply(body=b"ok" + PAD)),
    "slack": (call_slack, hostile.Reply(body=b"ok" + PAD)),
}


def expected(client: str, fault: str) -> str:
    """What the client's error says: the deadline, the size cap (the registry's is for the whole listing), or
    an answer that is not HTTP."""
    if fault == hostile.GARBAGE:
        return "broken HTTP answer"
    if fault == hostile.HUGE:
        return "bytes in all" if client == "registry" else "bytes; not read"
    if client == "registry":
        return f"listing the tags of {NAME} took longer than {DEADLINE_S:g}s"
    return f"did not answer within {DEADLINE_S:g}s"


@pytest.mark.parametrize("fault", hostile.FAULTS)
@pytest.mark.parametrize("variant", hostile.VARIANTS)
@pytest.mark.parametrize("client", CLIENTS)
def test_every_client_ends_by_its_deadline_whatever_the_server_does(client, variant, fault):
    call, reply = CLIENTS[client]
    with hostile.serve(hostile.always(reply), variant, fault, interval=INTERVAL_S) as served:
        started = time.monotonic()
        outcome = call(served.url)
        elapsed = time.monotonic() - started
    assert expected(client, fault) in outcome, outcome
    assert elapsed < HANG_BOUND_S, f"{elapsed:.1f}s: the deadline did not hold"
    assert served.bytes_sent < 64 * 1024 * 1024  # a huge answer was dropped at the cap, not read to its end


@pytest.mark.parametrize("client", CLIENTS)
def test_without_a_fault_every_client_gets_its_answer(client):
    """The same servers without a fault: the answers above are good ones, so only the fault can fail a call."""
    call, reply = CLIENTS[client]
    for variant in hostile.VARIANTS:
        with hostile.serve(hostile.always(reply), variant) as served:
            assert call(served.url) == "answered", variant


@pytest.mark.parametrize("variant", hostile.VARIANTS)
def test_one_deadline_covers_every_redirect(variant):
    """Same-host redirects are followed, under the first request's deadline: a redirect to an answer that drips
    (on a connection the server closes) ends by the deadline too."""

    def handle(path: str) -> hostile.Reply:
        if path.startswith("/old/"):
            return hostile.Reply(status=308, headers={"Location": path.replace("/old/", "/new/", 1)}, delay=0.1)
        return hostile.Reply(body=PROMETHEUS_ANSWER, fault=hostile.DRIP_BODY)

    with hostile.serve(handle, variant, interval=INTERVAL_S) as served:
        started = time.monotonic()
        outcome = call_prometheus(served.url + "/old")
        elapsed = time.monotonic() - started
    assert f"did not answer within {DEADLINE_S:g}s" in outcome, outcome
    assert any(path.startswith("/new/") for path in served.paths)
    assert elapsed < HANG_BOUND_S


def test_slow_redirect_hops_share_one_deadline():
    """Four hops of 0.3 s each fit a per-request deadline of 0.5 s, but not one deadline for the whole call."""

    def handle(path: str) -> hostile.Reply:
        first = path.split("/")[1]
        hop = int(first) if first.isdigit() else 0
        if hop < 3:
            return hostile.Reply(status=307, headers={"Location": f"/{hop + 1}/api"}, delay=0.3)
        return hostile.Reply(body=PROMETHEUS_ANSWER, delay=0.3)

    with hostile.serve(handle, hostile.CLOSE) as served:
        outcome = call_prometheus(served.url + "/0")
    assert f"did not answer within {DEADLINE_S:g}s" in outcome, outcome
    assert len(served.paths) < 4


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    return hostile.tls_context(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("fault", [None, hostile.HANG, hostile.DRIP_HEADERS, hostile.DRIP_BODY])
@pytest.mark.parametrize("variant", [hostile.KEEP_ALIVE, hostile.CLOSE])
def test_over_https_too(tls, monkeypatch, variant, fault):
    """The same deadline over TLS, including a server that never does the handshake; without a fault the
    answer is read (the certificate is trusted through SSL_CERT_FILE, the address checked against it)."""
    context, certificate = tls
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    _call, reply = CLIENTS["prometheus"]
    with hostile.serve(hostile.always(reply), variant, fault, interval=INTERVAL_S, tls=context) as served:
        assert served.url.startswith("https://")
        started = time.monotonic()
        outcome = call_prometheus(served.url)
        elapsed = time.monotonic() - started
    assert outcome == ("answered" if fault is None else f"Prometheus at {served.url} did not answer within 0.5s")
    assert elapsed < HANG_BOUND_S


def test_an_untrusted_certificate_is_refused(tls):
    context, _certificate = tls
    _call, reply = CLIENTS["prometheus"]
    with hostile.serve(hostile.always(reply), tls=context) as served:
        outcome = call_prometheus(served.url)
    assert f"Prometheus at {served.url} is unreachable" in outcome, outcome


# --- the registry: one deadline and one byte budget for the whole listing ----------------------------------


def paged(pages: int, per_page: int, delay: float = 0.0, length: int = 16) -> hostile.Handler:
    """A registry of `pages` pages of `per_page` tags of `length` characters each, linked by `Link: rel=next`."""

    def handle(path: str) -> hostile.Reply:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        page = int(query.get("page", ["0"])[0])
        tags = [f"6.{page}.{i}".ljust(length, "0") for i in range(per_page)]
        headers = {"Content-Type": "application/json"}
        if page + 1 < pages:
            headers["Link"] = f'</v2/{NAME}/tags/list?page={page + 1}>; rel="next"'
        return hostile.Reply(headers=headers, body=hostile.tags_page(tags), delay=delay)

    return handle


@pytest.mark.parametrize("variant", hostile.VARIANTS)
def test_a_slow_registry_with_many_pages_is_held_to_one_deadline_for_the_whole_listing(variant):
    """Twenty pages of 0.3 s each: every page is within a per-page deadline of 1 s, the listing is not."""
    with hostile.serve(paged(20, 10, delay=0.3), variant) as served:
        started = time.monotonic()
        with pytest.raises(RegistryError, match=r"listing the tags of acme/podinfo took longer than 1s") as caught:
            Registry(served.url, timeout=1).tags(NAME)
        elapsed = time.monotonic() - started
    assert "pages read" in str(caught.value)
    assert len(served.paths) < 20
    assert elapsed < HANG_BOUND_S


def test_the_byte_budget_covers_every_page_together():
    """Pages of about 10 KiB, each far under the budget of 64 KiB: the listing stops at the page that crosses it."""
    budget = r"tags of acme/podinfo are more than 65536 bytes in all"
    with hostile.serve(paged(50, 500, length=16)) as served, pytest.raises(RegistryError, match=budget) as caught:
        Registry(served.url, max_bytes=64 * 1024).tags(NAME)
    assert "pages" in str(caught.value)
    assert len(served.paths) < 10


def test_a_listing_under_both_budgets_is_read_whole():
    with hostile.serve(paged(30, 100), hostile.CLOSE) as served:
        found = Registry(served.url, timeout=10).tags(NAME)
    assert len(found) == 3000 and len(served.paths) == 30


def test_the_default_budget_is_for_the_whole_listing():
    """Three pages of 3 MiB each (the old cap was 8 MiB a page): 9 MiB in all is over the 8 MiB budget."""
    assert registry.MAX_LISTING_BYTES == 8 * 1024 * 1024
    with (
        hostile.serve(paged(3, 3 * 1024 * 1024 // 131, length=128)) as served,
        pytest.raises(RegistryError, match="more than 8388608 bytes in all"),
    ):
        Registry(served.url).tags(NAME)
    assert len(served.paths) == 3


@pytest.mark.parametrize("variant", hostile.VARIANTS)
def test_an_endless_page_is_dropped_at_the_budget(variant):
    """One page that never ends, made of tags a client would keep: read up to the budget, then dropped."""
    reply = hostile.Reply(stream=hostile.endless_tags(hostile.HUGE_BYTES))
    with (
        hostile.serve(hostile.always(reply), variant) as served,
        pytest.raises(RegistryError, match="more than 1048576 bytes in all"),
    ):
        Registry(served.url, max_bytes=1024 * 1024, timeout=10).tags(NAME)
    assert served.bytes_sent < 64 * 1024 * 1024


def test_a_token_endpoint_that_drips_is_inside_the_listing_deadline():
    """The 401's token fetch is part of the listing: its drip ends by the same deadline."""

    where: dict[str, str] = {}

    def handle(path: str) -> hostile.Reply:
        if path.startswith("/token"):
            return hostile.Reply(body=b'{"token":"t"}' + PAD, fault=hostile.DRIP_BODY)
        challenge = f'Bearer realm="{where["url"]}/token",service="test"'
        return hostile.Reply(status=401, headers={"WWW-Authenticate": challenge})

    with hostile.serve(handle, hostile.HTTP10, interval=INTERVAL_S) as served:
        where["url"] = served.url
        started = time.monotonic()
        with pytest.raises(RegistryError, match="took longer than 1s"):
            Registry(served.url, timeout=1).tags(NAME)
        elapsed = time.monotonic() - started
    assert elapsed < HANG_BOUND_S


@pytest.mark.parametrize("fault", [hostile.DRIP_BODY, hostile.HUGE])
def test_reading_a_digest_is_an_operation_of_its_own(fault):
    reply = hostile.Reply(headers={"Docker-Content-Digest": "sha256:" + "0" * 64}, body=b"{}" + PAD, fault=fault)
    with (
        hostile.serve(hostile.always(reply), hostile.CLOSE, interval=INTERVAL_S) as served,
        pytest.raises(RegistryError) as caught,
    ):
        Registry(served.url, timeout=DEADLINE_S).digest(NAME, "6.9.1")
    if fault == hostile.DRIP_BODY:
        assert str(caught.value) == (
            f"reading the digest of {NAME}:6.9.1 took longer than 0.5s (one deadline for all of it; from {served.url})"
        )
    else:
        assert str(caught.value).startswith(f"the manifest of {NAME}:6.9.1 is more than 4194304 bytes in all")


# --- the commands: each ends by its --timeout (or the check's timeout) with its "unavailable" exit ---------


def test_analyze_ends_by_its_timeout_against_a_dripping_prometheus(capsys, tmp_path):
    directory = project_dir(tmp_path, stack_text(weight=10))
    reply = hostile.Reply(headers={"Content-Type": "application/json"}, body=PROMETHEUS_ANSWER, fault=hostile.DRIP_BODY)
    with hostile.serve(hostile.always(reply), hostile.CLOSE, interval=INTERVAL_S) as served:
        started = time.monotonic()
        result = canary(capsys, "analyze", "-C", directory, "--prometheus", served.url, "--timeout", DEADLINE_S)
        elapsed = time.monotonic() - started
    assert result.code == EXIT_UNAVAILABLE, result.err
    assert f"did not answer within {DEADLINE_S:g}s" in result.err
    assert elapsed < HANG_BOUND_S


def test_watch_images_ends_by_its_timeout_against_slow_pages(capsys, repo):
    head = repo.head()
    with hostile.serve(paged(40, 10, delay=0.2), hostile.HTTP10) as served:
        started = time.monotonic()
        result = canary(
            capsys, "watch-images", "-C", repo.work, "--registry-url", served.url, "--timeout", 1, "--no-notify"
        )
        elapsed = time.monotonic() - started
    assert result.code == EXIT_UNAVAILABLE, result.err
    assert "listing the tags of stefanprodan/podinfo took longer than 1s (one deadline for all of it;" in result.err
    assert repo.head() == head
    assert len(served.paths) < 40 and elapsed < HANG_BOUND_S


def test_a_dripping_acceptance_check_blocks_the_step_by_its_timeout(capsys, repo):
    reply = hostile.Reply(body=b"ok" + PAD, fault=hostile.DRIP_BODY)
    with hostile.serve(hostile.always(reply), hostile.HTTP10, interval=INTERVAL_S) as served:
        checks = json.dumps([{"url": f"{served.url}/ready", "timeout": DEADLINE_S}])
        repo.write_stack(stack_text() + f"  istio-canary:canaryAcceptance: {checks}\n")
        head = repo.head()
        started = time.monotonic()
        result = canary(capsys, "promote", "-C", repo.work, "--no-notify")
        elapsed = time.monotonic() - started
    assert result.code == EXIT_BLOCKED, result.err
    assert f"did not answer within {DEADLINE_S:g}s" in result.out
    assert repo.head() == head and elapsed < HANG_BOUND_S


def test_a_dripping_slack_does_not_hold_a_rollback(capsys, repo, monkeypatch):
    repo.write_stack(stack_text(weight=60))
    reply = hostile.Reply(body=b"ok" + PAD, fault=hostile.DRIP_BODY)
    with hostile.serve(hostile.always(reply), hostile.CLOSE, interval=INTERVAL_S) as served:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{served.url}/services/T0/B0/X")
        monkeypatch.setattr(notify, "POST_TIMEOUT_S", DEADLINE_S)
        started = time.monotonic()
        result = canary(capsys, "rollback", "-C", repo.work)
        elapsed = time.monotonic() - started
    assert result.code == EXIT_OK, result.err
    assert StackFile(repo.stack).view().app.canary_weight == 0
    assert "notification not sent" in result.err and f"did not answer within {DEADLINE_S:g}s" in result.err
    assert elapsed < HANG_BOUND_S
