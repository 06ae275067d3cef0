"""The release agent's image automation, as a real process: tags pushed to a real private registry (docker-registry
behind a token realm) while the agent runs become exactly one pull request per line (a stand-in of GitHub's API
that holds every request to GitHub's schema, on a real bare origin), updated in place by a newer tag; or, with
`canaryPromotion: auto`, exactly one commit on main. The digest is in the message and the Slack notice.

The bounds on waits are hang detectors, not performance assertions.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from istio_canary.agent.pulls import owner_repo
from testkit import registries
from testkit.agentkit import start_agent, stop
from testkit.githost import GitHost
from tests.integration import servers
from tests.integration.conftest import Repo, git, stack_text

NAME = "acme/podinfo"
USER, PASSWORD = "agent-bot", "agent-registry-password-4711"
TOKEN = "test-token"
INTERVAL_S = 2
KEYS = """\
  istio-canary:image: ghcr.io/acme/podinfo
  istio-canary:analysisInterval: 2s
  istio-canary:canaryPromotion: {promotion}
"""


def image_stack(promotion: str) -> str:
    return stack_text(ga="6.8.0", canary="6.8.0", weight=0, window="10s") + KEYS.format(promotion=promotion)


@contextmanager
def running_agent(repo: Repo, registry: registries.Registry, workdir: Path, log: Path, *extra: str) -> Iterator[None]:
    """The agent with registry credentials in its environment; Prometheus is down (no release runs, nothing to
    judge), which must not keep the image automation from working."""
    dead_prometheus = f"http://127.0.0.1:{servers.free_port()}"
    process = start_agent(
        repo.origin,
        dead_prometheus,
        workdir,
        servers.free_port(),
        log,
        "--registry-url",
        registry.url,
        *extra,
        keep_env=("CANARY_GIT_TOKEN", "CANARY_REGISTRY_USERNAME", "CANARY_REGISTRY_PASSWORD", "SLACK_WEBHOOK_URL"),
    )
    try:
        yield
    finally:
        stop(process)


def wait_for(predicate, timeout: float, log: Path) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return
        time.sleep(0.25)
    pytest.fail(f"not within {timeout:g}s; agent log:\n{log.read_text()[-4000:]}")


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[registries.Registry]:
    with registries.token_registry(tmp_path / "registry", {USER: PASSWORD}) as private:
        registries.push(private, NAME, ["6.7.0", "6.8.0", "latest"], USER, PASSWORD)
        monkeypatch.setenv("CANARY_REGISTRY_USERNAME", USER)
        monkeypatch.setenv("CANARY_REGISTRY_PASSWORD", PASSWORD)
        monkeypatch.setenv("CANARY_GIT_TOKEN", TOKEN)
        yield private


def branch_file(repo: Repo, branch: str) -> str:
    return git(repo.origin, "show", f"{branch}:Pulumi.dev.yaml")


def test_a_pushed_tag_becomes_one_pull_request_updated_in_place(tmp_path, repo, registry, monkeypatch):
    repo.write_stack(image_stack("pr"), "podinfo 6.8.0, no release running")
    owner, name = owner_repo(str(repo.origin))
    log = tmp_path / "agent.log"
    with (
        servers.stub(lambda _request: (200, {"Content-Type": "text/plain"}, b"ok")) as (slack, posts),
        GitHost(owner, name, token=TOKEN, origin=repo.origin) as host,
    ):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack + "/services/T0/B0/x")
        with running_agent(repo, registry, tmp_path / "work", log, "--github-api-url", host.url):
            wait_for(lambda: "stack dev:" in log.read_text(), 60, log)
            time.sleep(2 * INTERVAL_S)
            assert host.pulls == {}  # nothing newer than 6.8.0 yet
            first = registries.push(registry, NAME, ["6.9.0"], USER, PASSWORD)["6.9.0"]
            wait_for(lambda: len(host.pulls) == 1, 60, log)
            pull = host.pulls[1]
            branch_head = git(repo.origin, "rev-parse", pull.head).strip()
            time.sleep(3 * INTERVAL_S)  # already proposed: no second pull request, no force-push churn
            assert len(host.pulls) == 1 and git(repo.origin, "rev-parse", pull.head).strip() == branch_head
            assert pull.title == "canary: new canary image podinfo 6.9.0 (was 6.8.0, policy semver:6.x)"
            assert f"Digest: {first}" in (pull.body or "")
            second = registries.push(registry, NAME, ["6.9.1"], USER, PASSWORD, variant="newer")["6.9.1"]
            wait_for(lambda: "6.9.1" in host.pulls[1].title, 60, log)
            time.sleep(2 * INTERVAL_S)
    assert host.refused() == []  # every request conformed to GitHub's schema
    assert len(host.pulls) == 1 and host.pulls[1].state == "open"
    pull = host.pulls[1]
    assert pull.head == "canary/dev-image-canary"
    assert f"Digest: {second}" in (pull.body or "") and first not in (pull.body or "")
    assert "canaryVersion: 6.9.1  #" in branch_file(repo, pull.head)
    assert 'canaryVersion: "6.8.0"' in branch_file(repo, "main")  # main moves only by the merge
    texts = [json.loads(post.body)["text"] for post in posts]
    assert next(t for t in texts if "6.9.0" in t).splitlines()[1:] == [
        f"ghcr.io/acme/podinfo@{first}",
        f"{host.url}/{owner}/{name}/pull/1",
    ]
    assert any(f"ghcr.io/acme/podinfo@{second}" in text for text in texts)
    everything = log.read_text() + "".join(texts) + git(repo.origin, "log", "-p", "--all")
    assert PASSWORD not in everything and TOKEN not in everything


def test_auto_promotion_pushes_exactly_one_commit_with_the_digest(tmp_path, repo, registry):
    repo.write_stack(image_stack("auto"), "podinfo 6.8.0, no release running")
    log = tmp_path / "agent.log"
    with running_agent(repo, registry, tmp_path / "work", log):
        digest = registries.push(registry, NAME, ["6.9.0"], USER, PASSWORD)["6.9.0"]

        def bumped() -> list[str]:
            subjects = git(repo.origin, "log", "--format=%s", "main").splitlines()
            return [s for s in subjects if s.startswith("canary: new canary image")]

        wait_for(lambda: len(bumped()) == 1, 60, log)
        time.sleep(3 * INTERVAL_S)
    assert bumped() == ["canary: new canary image podinfo 6.9.0 (was 6.8.0, policy semver:6.x)"]
    message = subprocess.run(
        ["git", "-C", str(repo.origin), "log", "--format=%B", "--grep=new canary image", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"Digest: {digest}" in message
    # The new version at 0 % is the first step's cue (no analysis possible at 0 %): the release starts.
    assert '  istio-canary:canaryWeight: "10"\n' in branch_file(repo, "main")


def test_a_release_with_traffic_is_never_disturbed_by_a_new_tag(tmp_path, repo, registry):
    stack = stack_text(ga="6.8.0", canary="6.9.0", weight=10, window="10s") + KEYS.format(promotion="auto")
    repo.write_stack(stack, "canary at 10%")
    registries.push(registry, NAME, ["6.9.0", "6.9.5"], USER, PASSWORD)
    log = tmp_path / "agent.log"
    before = repo.origin_head()
    with running_agent(repo, registry, tmp_path / "work", log):
        wait_for(lambda: log.read_text().count("stack dev:") >= 3, 60, log)
    assert repo.origin_head() == before
    assert "image canary" not in log.read_text()  # the registry is not even asked while users see the canary
