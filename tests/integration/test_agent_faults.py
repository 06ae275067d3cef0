"""Nothing stands between a failing canary and its rollback: `canary agent` as a real process, time-compressed (2 s
interval), against a real Prometheus scraping live exporters, a real bare origin, and the GitHub API stand-in
(testkit/githost.py) hanging or answering garbage.

The rollback is decided without the pull-request lookup and pushed before any stack's follow-up work (lookup,
proposal, image watch) starts; that work runs per stack in a thread of its own, so a Git host that hangs for its
whole 20 s deadline holds neither the rollback nor another stack. The bounds on the reaction are hang detectors
set well below that deadline (a loop that waited for the lookup could not meet them); the reaction itself is
printed next to the promise (analysisThreshold x analysisInterval + one interval).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml

from istio_canary.agent.pulls import DEADLINE_S, owner_repo
from testkit import faults
from testkit.agentkit import start_agent, stop
from testkit.exporter import IstioExporter, Traffic
from testkit.githost import GitHost
from testkit.livemetrics import LivePrometheus
from tests.integration import servers
from tests.integration.conftest import Repo, git, stack_text

INTERVAL_S = 2
THRESHOLD = 2
PROMISE_S = THRESHOLD * INTERVAL_S + INTERVAL_S
HANG_DETECTOR_S = DEADLINE_S * 0.75  # a loop that waited for the hanging lookup could not roll back sooner
HEALTHY = Traffic(rps=20, latency_ms=40)
TOKEN = "test-token"
KEYS = """\
  istio-canary:analysisInterval: 2s
  istio-canary:analysisMinRequests: 20
  istio-canary:analysisThreshold: {threshold}
  istio-canary:analysisIterations: {iterations}
  istio-canary:canaryPromotion: {promotion}
  istio-canary:agentWatchImages: false
"""
PLATFORM = """\
config:
  istio-canary:clusterMode: existing
  istio-canary:deployApp: false
  istio-canary:installMesh: false
  istio-canary:monitoring: false
  istio-canary:prometheusUrl: http://127.0.0.1:9
  istio-canary:analysisInterval: 2s
"""
HTML = b"<!doctype html><html><body>Sign in to your proxy</body></html>"


def app_stack(namespace: str, *, promotion: str, weight: int = 10, extra: str = "", iterations: int = 1) -> str:
    keys = KEYS.format(threshold=THRESHOLD, promotion=promotion, iterations=iterations)
    return stack_text(namespace=namespace, weight=weight, window="10s") + keys + extra


def platform_app_stack(name: str, *, promotion: str, iterations: int = 1) -> str:
    text = app_stack(name, promotion=promotion, iterations=iterations).replace(
        "  istio-canary:clusterMode: gke\n", "  istio-canary:clusterMode: stack\n"
    )
    return text + f"  istio-canary:platformStack: platform\n  istio-canary:appName: {name}\n"


def subjects(repo: Repo) -> list[str]:
    return git(repo.origin, "log", "--reverse", "--format=%s", "main").splitlines()


def rolled_back(repo: Repo, stack: str = "dev") -> bool:
    return any(s.startswith("canary: roll back") for s in subjects(repo)) and weight(repo, stack) == 0


def value(repo: Repo, stack: str, key: str, rev: str = "main") -> object:
    """A key of a stack file on the origin as YAML reads it (a number, or a string `pulumi config set` wrote)."""
    config = yaml.safe_load(git(repo.origin, "show", f"{rev}:Pulumi.{stack}.yaml"))["config"]
    return config.get(f"istio-canary:{key}")


def weight(repo: Repo, stack: str) -> int:
    return int(str(value(repo, stack, "canaryWeight")))


def branches(repo: Repo) -> list[str]:
    return git(repo.origin, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split()


def wait_for(predicate, timeout: float, log: Path) -> float:
    """Seconds until `predicate()` holds; fails with the agent's log after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.1)
    pytest.fail(f"not within {timeout:g}s; agent log:\n{log.read_text()[-5000:]}")


def metric(port: int, name: str, **labels: str) -> float:
    """One series of the agent's own /metrics (0 when it is not there yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


@contextmanager
def istio(workdir: Path, *namespaces: str) -> Iterator[tuple[dict[str, IstioExporter], LivePrometheus]]:
    """One live exporter per namespace (app named after it, except `live`: podinfo), one Prometheus for all."""
    with ExitStack() as stack:
        exporters = {
            ns: stack.enter_context(
                IstioExporter(ns, "podinfo" if ns == "live" else ns, ga=HEALTHY, canary=HEALTHY, seed=i)
            )
            for i, ns in enumerate(namespaces)
        }
        prom = stack.enter_context(LivePrometheus(workdir, [e.target for e in exporters.values()]))
        prom.start()
        yield exporters, prom


@contextmanager
def agent(repo: Repo, prom: LivePrometheus, tmp_path: Path, port: int, *extra: str) -> Iterator[Path]:
    log = tmp_path / "agent.log"
    process = start_agent(
        repo.origin, prom.url, tmp_path / "work", port, log, *extra, keep_env=("CANARY_GIT_TOKEN", "SLACK_WEBHOOK_URL")
    )
    try:
        yield log
    finally:
        stop(process)


def slack():
    return servers.stub(lambda _request: (200, {"Content-Type": "text/plain"}, b"ok"))


@pytest.mark.parametrize(("fault", "http"), [("hang", "1.0"), ("html", "close"), ("object", "1.1")])
def test_a_failing_canary_is_rolled_back_whatever_the_git_host_does(tmp_path, repo, monkeypatch, fault, http):
    """The step's proposal is due (a healthy canary, analysisIterations 1) and every call to the GitHub API
    hangs, or answers an HTML page or an object where a list belongs. The proposal is skipped (counted, one
    notice), never made blindly; when the canary turns bad, the rollback lands on the origin on time."""
    owner, name = owner_repo(str(repo.origin))
    repo.write_stack(app_stack("live", promotion="pr"), "canary at 10%")
    monkeypatch.setenv("CANARY_GIT_TOKEN", TOKEN)
    port = servers.free_port()
    with (
        slack() as (webhook, posts),
        GitHost(owner, name, token=TOKEN, origin=repo.origin, http=http) as host,
        istio(tmp_path / "prom", "live") as (exporters, prom),
    ):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", webhook + "/services/T0/B0/x")
        if fault == "hang":
            host.hang(times=1000, seconds=60)
        else:
            host.answer(200, HTML if fault == "html" else b'{"message": "not a list"}', times=1000)
        github = ("--github-api-url", host.url)
        with agent(repo, prom, tmp_path, port, *github) as log:
            wait_for(lambda: len(host.requests) >= 1, timeout=60, log=log)  # the lookup has begun
            time.sleep(2 * INTERVAL_S)
            if fault != "hang":  # failed at once: skipped, counted, noticed
                wait_for(
                    lambda: metric(port, "canary_agent_skipped_total", work="proposal", reason="git-host"), 20, log
                )
            exporters["live"].set("canary", error_share=0.5)
            reaction = wait_for(lambda: rolled_back(repo), timeout=60, log=log)
            time.sleep(INTERVAL_S)  # the notices are posted from their own thread
    assert reaction < HANG_DETECTOR_S, log.read_text()[-4000:]
    assert host.calls("POST", "/pulls") == [] and not any(b.startswith("canary/") for b in branches(repo))
    message = git(repo.origin, "log", "-1", "--format=%B", "main")
    assert f"Reason: canary agent: {THRESHOLD} failed analyses in a row" in message
    texts = [json.loads(post.body)["text"] for post in posts]
    assert sum("roll back podinfo-canary" in text for text in texts) == 1
    if fault != "hang":
        assert sum("proposal skipped (git-host)" in text for text in texts) == 1, texts  # once, not every pass
    print(f"GitHub {fault}: rollback on origin {reaction:.1f}s after the canary turned bad (promise {PROMISE_S}s)")


def test_a_platform_agent_rolls_one_stack_back_while_another_stacks_work_hangs(tmp_path, repo, monkeypatch):
    """blog's proposal is due and its pull-request lookup hangs on every pass; shop's canary fails. shop is rolled
    back on time, blog is still judged every pass (its follow-up skipped while busy), and the platform agent's
    own passes keep its /healthz alive."""
    owner, name = owner_repo(str(repo.origin))
    files = {
        "Pulumi.platform.yaml": PLATFORM,
        "Pulumi.shop.yaml": platform_app_stack("shop", promotion="auto", iterations=1000),
        "Pulumi.blog.yaml": platform_app_stack("blog", promotion="pr"),
    }
    for file, text in files.items():
        (repo.work / file).write_text(text)
    git(repo.work, "add", *files)
    git(repo.work, "commit", "-qm", "a platform with shop and blog at 10%")
    git(repo.work, "push", "-q", "origin", "HEAD:main")
    monkeypatch.setenv("CANARY_GIT_TOKEN", TOKEN)
    port = servers.free_port()
    with (
        GitHost(owner, name, token=TOKEN, origin=repo.origin) as host,
        istio(tmp_path / "prom", "shop", "blog") as (exporters, prom),
    ):
        host.hang(times=1000, seconds=60)
        extra = ("--stack", "platform", "--github-api-url", host.url)
        with agent(repo, prom, tmp_path, port, *extra) as log:
            wait_for(lambda: len(host.requests) >= 1, timeout=60, log=log)  # blog's lookup hangs from here on
            judged = metric(port, "canary_agent_last_iteration_timestamp_seconds", stack="blog")
            wait_for(lambda: metric(port, "canary_agent_skipped_total", stack="blog", reason="busy") >= 1, 30, log)
            exporters["shop"].set("canary", error_share=0.5)
            reaction = wait_for(lambda: weight(repo, "shop") == 0, timeout=60, log=log)
            # blog was judged on, pass after pass, while its lookup hung.
            assert metric(port, "canary_agent_last_iteration_timestamp_seconds", stack="blog") > judged
            passes = metric(port, "canary_agent_passes_total", stack="platform")
            assert passes >= 3 and healthz(port) == 200
            assert metric(port, "canary_agent_longest_interval_seconds", stack="platform") == INTERVAL_S
    assert reaction < HANG_DETECTOR_S, log.read_text()[-4000:]
    assert weight(repo, "blog") == 10 and host.calls("POST", "/pulls") == []
    assert subjects(repo)[-1].startswith("canary: roll back shop-canary 6.9.0 from 10% to 0%")
    print(
        f"platform: shop rolled back {reaction:.1f}s after it turned bad while blog's lookup hung (promise {PROMISE_S}s)"
    )


@pytest.mark.parametrize("variant", [faults.CLOSE, faults.HTTP10])
def test_a_stack_whose_prometheus_drips_delays_no_other_stacks_rollback(tmp_path, repo, variant):
    """Every query about blog drips (Prometheus' answer a byte at a time, its 10 s deadline per query, several
    queries a judgment); shop's canary fails. shop's judgment runs beside blog's, not after it."""
    files = {
        "Pulumi.platform.yaml": PLATFORM,
        "Pulumi.blog.yaml": platform_app_stack("blog", promotion="auto", iterations=1000),  # sorted first
        "Pulumi.shop.yaml": platform_app_stack("shop", promotion="auto", iterations=1000),
    }
    for file, text in files.items():
        (repo.work / file).write_text(text)
    git(repo.work, "add", *files)
    git(repo.work, "commit", "-qm", "a platform with blog and shop at 10%")
    git(repo.work, "push", "-q", "origin", "HEAD:main")
    port = servers.free_port()
    with (
        istio(tmp_path / "prom", "shop", "blog") as (exporters, prom),
        faults.FaultServer(prom.url, variant=variant) as proxy,
    ):
        proxy.fault(faults.DRIP, faults.query_mentions('"blog"'))
        log = tmp_path / "agent.log"
        process = start_agent(repo.origin, proxy.url, tmp_path / "work", port, log, "--stack", "platform")
        try:
            wait_for(lambda: metric(port, "canary_agent_skipped_total", stack="blog", reason="busy") >= 1, 60, log)
            exporters["shop"].set("canary", error_share=0.5)
            reaction = wait_for(lambda: weight(repo, "shop") == 0, timeout=60, log=log)
        finally:
            stop(process)
    assert reaction < HANG_DETECTOR_S, log.read_text()[-4000:]
    assert weight(repo, "blog") == 10
    print(f"blog's Prometheus drips ({variant}): shop rolled back {reaction:.1f}s after it turned bad")


def test_a_rollback_lands_before_the_follow_up_of_its_own_pass(tmp_path, repo, monkeypatch):
    """Judging comes first for every stack: with shop failing from the start and blog's proposal due, the first
    commit on the origin is shop's rollback, made before blog's lookup was even asked (the stand-in's clock)."""
    owner, name = owner_repo(str(repo.origin))
    files = {
        "Pulumi.platform.yaml": PLATFORM,
        "Pulumi.blog.yaml": platform_app_stack("blog", promotion="pr"),  # sorted first: served first
        "Pulumi.shop.yaml": platform_app_stack("shop", promotion="auto"),
    }
    for file, text in files.items():
        (repo.work / file).write_text(text)
    git(repo.work, "add", *files)
    git(repo.work, "commit", "-qm", "a platform with blog and shop at 10%")
    git(repo.work, "push", "-q", "origin", "HEAD:main")
    monkeypatch.setenv("CANARY_GIT_TOKEN", TOKEN)
    with (
        GitHost(owner, name, token=TOKEN, origin=repo.origin) as host,
        istio(tmp_path / "prom", "shop", "blog") as (exporters, prom),
    ):
        host.hang(times=1000, seconds=60)
        exporters["shop"].set("canary", error_share=0.5)
        time.sleep(THRESHOLD * INTERVAL_S + 1)  # shop has failed for longer than the threshold before the agent starts
        extra = ("--stack", "platform", "--github-api-url", host.url)
        with agent(repo, prom, tmp_path, servers.free_port(), *extra) as log:
            wait_for(lambda: len(host.requests) >= 1, timeout=60, log=log)
            assert weight(repo, "shop") == 0, log.read_text()[-4000:]  # pushed before blog's lookup was asked
    first = host.requests[0]
    assert first.method == "GET" and first.path.endswith("/pulls") and weight(repo, "blog") == 10


def test_the_rollback_of_an_autoscaled_app_raises_gas_minimum_in_the_same_commit(tmp_path, repo):
    """appMaxReplicas: GA's autoscaler minimum becomes the pods GA and the canary ran (from the config without
    a cluster: both minimums), in the rollback commit itself; nothing else in the file changes."""
    extra = "  istio-canary:replicas: 2\n  istio-canary:appMaxReplicas: 8\n"
    repo.write_stack(app_stack("live", promotion="auto", extra=extra), "canary at 10%, autoscaled")
    before = git(repo.origin, "show", "main:Pulumi.dev.yaml")
    with istio(tmp_path / "prom", "live") as (exporters, prom):
        exporters["live"].set("canary", error_share=0.5)
        with agent(repo, prom, tmp_path, servers.free_port()) as log:
            wait_for(lambda: rolled_back(repo), timeout=60, log=log)
    after = git(repo.origin, "show", "main:Pulumi.dev.yaml")
    added = sorted(set(after.splitlines()) - set(before.splitlines()))
    removed = sorted(set(before.splitlines()) - set(after.splitlines()))
    assert len(removed) == 1 and "canaryWeight" in removed[0]
    assert len(added) == 2 and any(re.fullmatch(r'  istio-canary:gaRollbackReplicas: "?4"?', line) for line in added)
    message = git(repo.origin, "log", "-1", "--format=%B", "main")
    assert "GA's autoscaler minimum is raised to 4 pods (gaRollbackReplicas)" in message


def test_the_next_release_returns_gas_minimum(tmp_path, repo, capsys):
    """The first step of the next release (a new canaryVersion at 0 %) sets gaRollbackReplicas back to 0 in its
    own commit, with the weight."""
    from tests.integration.cli import canary

    extra = "  istio-canary:replicas: 2\n  istio-canary:appMaxReplicas: 8\n  istio-canary:gaRollbackReplicas: 4\n"
    repo.write_stack(app_stack("live", promotion="auto", weight=0, extra=extra), "rolled back earlier; 6.9.0 is new")
    result = canary(capsys, "promote", "-C", repo.work, "--no-notify", "--push")
    assert result.code == 0, result.err
    diff = git(repo.work, "show", "--format=", "-U0", "HEAD", "--", "Pulumi.dev.yaml").splitlines()
    assert sorted(line.split(":", 2)[1] for line in diff if line.startswith(("+ ", "- "))) == sorted(
        ["canaryWeight", "canaryWeight", "gaRollbackReplicas", "gaRollbackReplicas"]
    )
    assert int(str(value(repo, "dev", "gaRollbackReplicas"))) == 0 and weight(repo, "dev") == 10
    assert "GA's autoscaler minimum returns to replicas (gaRollbackReplicas 4 -> 0" in repo.message()


def test_a_stack_file_that_fails_validation_elsewhere_is_still_rolled_back(tmp_path, repo):
    """A typo in a key the release does not use (merged while the canary runs) fails the program's full
    validation; the agent still judges the release keys and rolls a failing canary back, and proposes nothing."""
    repo.write_stack(app_stack("live", promotion="auto") + "  istio-canary:loadRate: lots\n", "canary at 10%, a typo")
    with (
        istio(tmp_path / "prom", "live") as (exporters, prom),
        agent(repo, prom, tmp_path, servers.free_port()) as log,
    ):
        wait_for(lambda: log.exists() and "judged for a rollback only" in log.read_text(), 60, log)
        time.sleep(2 * INTERVAL_S)
        assert subjects(repo)[-1] == "canary at 10%, a typo"  # healthy, iterations 1: yet nothing proposed
        exporters["live"].set("canary", error_share=0.5)
        wait_for(lambda: rolled_back(repo), timeout=60, log=log)


def test_with_a_cluster_the_floor_is_the_pods_ga_and_the_canary_run(tmp_path, repo):
    """The agent reads the Deployments (their autoscalers have GA at 3 pods and the canary at 2): GA's minimum
    becomes 5, not the 4 the config alone would give."""
    from tests.integration.test_agent_live_since import NAMESPACE, Cluster, kubeconfig, rolled_out

    cluster = Cluster()
    for name, version, pods in (("podinfo-ga", "6.8.0", 3), ("podinfo-canary", "6.9.0", 2)):
        obj = rolled_out(name, version)
        obj["spec"]["replicas"] = obj["status"]["replicas"] = obj["status"]["availableReplicas"] = pods
        obj["status"]["updatedReplicas"] = pods
        cluster.put(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}", obj)
    cluster.apply_virtual_service(10, time.time() - 600)
    extra = "  istio-canary:replicas: 2\n  istio-canary:appMaxReplicas: 8\n"
    repo.write_stack(app_stack(NAMESPACE, promotion="auto", extra=extra, iterations=1000), "canary at 10%")
    with (
        servers.stub(cluster.answer) as (api_url, _requests),
        istio(tmp_path / "prom", NAMESPACE) as (exporters, prom),
    ):
        config = kubeconfig(tmp_path / "kubeconfig", api_url)
        exporters[NAMESPACE].set("canary", error_share=0.5)
        with agent(repo, prom, tmp_path, servers.free_port(), "--kubeconfig", str(config)) as log:
            wait_for(lambda: rolled_back(repo), timeout=60, log=log)
    assert int(str(value(repo, "dev", "gaRollbackReplicas"))) == 5
    message = git(repo.origin, "log", "-1", "--format=%B", "main")
    assert "raised to 5 pods (gaRollbackReplicas): GA and the canary ran 5" in message
