"""`canary watch-images` against a real OCI registry and a token-auth stub; tag policy rules."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from istio_canary.cli import EXIT_INCONCLUSIVE, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from istio_canary.registry import Registry, RegistryError, parse_challenge, parse_image
from istio_canary.release.tagpolicy import TagPolicy
from tests.integration import servers
from tests.integration.cli import canary
from tests.integration.conftest import REGISTRY_TAGS, git, stack_text

NAME = "stefanprodan/podinfo"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def watch(capsys, repo, url, *extra):
    return canary(capsys, "watch-images", "-C", repo.work, "--registry-url", url, "--no-notify", *extra)


@pytest.mark.parametrize("page_size", [None, 2])
def test_registry_lists_every_tag(oci_registry, page_size):
    # distribution 2.8 ignores n= and answers in one page; Link pagination is covered by the token stub below.
    found = Registry(oci_registry).tags(NAME, page_size=page_size)
    assert sorted(found) == sorted(REGISTRY_TAGS)


def test_pagination_that_loops_is_an_error():
    link = {"Link": f'</v2/{NAME}/tags/list>; rel="next"', "Content-Type": "application/json"}
    with (
        servers.stub(lambda _request: (200, link, b'{"tags": ["1.0.0"]}')) as (url, seen),
        pytest.raises(RegistryError, match="loops"),
    ):
        Registry(url).tags(NAME)
    assert len(seen) == 1


def test_picks_newest_matching_release_and_commits(capsys, repo, oci_registry):
    head = repo.head()
    result = watch(capsys, repo, oci_registry, "--page-size", 3)
    assert result.code == EXIT_OK, result.err
    # 7.0.0 is outside semver:6.x, 6.10.0-rc.1 and 6.9.2-beta.1 are pre-releases.
    assert git(repo.work, "rev-parse", "HEAD~1").strip() == head
    assert repo.message().startswith("canary: new canary image podinfo 6.9.1 (was 6.9.0, policy semver:6.x)")
    diff = git(repo.work, "show", "--format=", "-U0", "HEAD").splitlines()
    assert (
        [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        == [
            '-  istio-canary:canaryVersion: "6.9.0"  # quoted by hand; the tool writes the Pulumi form',
            "+  istio-canary:canaryVersion: 6.9.1  # quoted by hand; the tool writes the Pulumi form",  # as `pulumi config set` writes it
        ]
    )


@pytest.mark.parametrize(
    ("policy", "expected"), [("semver:7.x", "7.0.0"), ("semver:6.9.x", "6.9.1"), ("glob:6.9.*", "6.9.1")]
)
def test_policies_against_the_registry(capsys, repo, oci_registry, policy, expected):
    repo.write_stack(stack_text(policy=policy))
    assert watch(capsys, repo, oci_registry).code == EXIT_OK
    assert f"canaryVersion: {expected}  #" in repo.stack.read_text()


@pytest.mark.parametrize(
    ("policy", "canary"), [("glob:6.8.*", "6.9.0"), ("semver:6.x", "6.9.1"), ("semver:8.x", "6.9.0")]
)
def test_no_newer_matching_tag_makes_no_commit(capsys, repo, oci_registry, policy, canary):
    repo.write_stack(stack_text(policy=policy, canary=canary))
    head = repo.head()
    result = watch(capsys, repo, oci_registry)
    assert result.code == EXIT_INCONCLUSIVE
    assert "no tag of ghcr.io/stefanprodan/podinfo newer than" in result.out
    assert repo.head() == head


def test_release_in_progress_is_not_disturbed(capsys, repo, oci_registry):
    repo.write_stack(stack_text(weight=10))
    head = repo.head()
    result = watch(capsys, repo, oci_registry)
    assert result.code == EXIT_INCONCLUSIVE
    assert "in progress at 10%" in result.err
    assert repo.head() == head


def test_dry_run_picks_without_committing(capsys, repo, oci_registry):
    head = repo.head()
    result = watch(capsys, repo, oci_registry, "--dry-run")
    assert result.code == EXIT_OK
    assert "6.9.1 is newer" in result.out
    assert repo.head() == head


def test_unknown_repository_and_dead_registry(capsys, repo, oci_registry):
    repo.write_stack(stack_text() + "  istio-canary:image: ghcr.io/nobody/nothing\n")
    result = watch(capsys, repo, oci_registry)
    assert result.code == EXIT_UNAVAILABLE
    assert "not found" in result.err
    dead = f"http://127.0.0.1:{servers.free_port()}"
    assert watch(capsys, repo, dead).code == EXIT_UNAVAILABLE


@pytest.mark.parametrize(
    "body",
    [b'{"name": "stefanprodan/podinfo", "tags": "6.9.1"}', b"[1, 2]", b"<html>", b'{"tags": [6, 9]}'],
)
def test_malformed_answer_makes_no_commit(capsys, repo, body):
    head = repo.head()
    with servers.stub(lambda _request: (200, {"Content-Type": "application/json"}, body)) as (url, _seen):
        result = watch(capsys, repo, url)
    assert result.code == EXIT_UNAVAILABLE
    assert repo.head() == head


def test_plain_http_only_to_loopback(capsys, repo):
    result = watch(capsys, repo, "http://registry.example.com")
    assert result.code == EXIT_UNAVAILABLE
    assert "use https" in result.err


def token_registry():
    """A stub registry that wants an anonymous Bearer token and pages its tags through a relative Link."""
    pages = {
        f"/v2/{NAME}/tags/list": (["6.8.0", "6.9.0"], f'</v2/{NAME}/tags/list?last=6.9.0&n=2>; rel="next"'),
        f"/v2/{NAME}/tags/list?last=6.9.0&n=2": (["6.9.1", "6.10.0-rc.1"], None),
    }
    state = {}

    def handle(request):
        if request.path.startswith("/token"):
            state["token_query"] = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
            return 200, {"Content-Type": "application/json"}, json.dumps({"token": "t0k3n", "expires_in": 300}).encode()
        if request.headers.get("Authorization") != "Bearer t0k3n":
            challenge = f'Bearer realm="{state["url"]}/token",service="stub-registry",scope="repository:{NAME}:pull"'
            return 401, {"WWW-Authenticate": challenge}, b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        if "/manifests/" in request.path:
            return 200, {"Docker-Content-Digest": "sha256:" + "ab" * 32, "Content-Type": MANIFEST}, b"{}"
        tags_page, link = pages[request.path]
        headers = {"Content-Type": "application/json"} | ({"Link": link} if link else {})
        return 200, headers, json.dumps({"name": NAME, "tags": tags_page}).encode()

    return handle, state


def test_anonymous_bearer_token_flow_and_pagination():
    handle, state = token_registry()
    with servers.stub(handle) as (url, seen):
        state["url"] = url
        found = Registry(url).tags(NAME)
    assert found == ["6.8.0", "6.9.0", "6.9.1", "6.10.0-rc.1"]
    assert state["token_query"] == {"service": ["stub-registry"], "scope": [f"repository:{NAME}:pull"]}
    # 401, token, retry with the token, then the second page with the token straight away.
    assert [request.path.split("?")[0] for request in seen] == [f"/v2/{NAME}/tags/list", "/token"] + [
        f"/v2/{NAME}/tags/list"
    ] * 2
    assert seen[-1].headers["Authorization"] == "Bearer t0k3n"


def test_token_flow_through_the_command(capsys, repo):
    handle, state = token_registry()
    with servers.stub(handle) as (url, _seen):
        state["url"] = url
        result = watch(capsys, repo, url)
    assert result.code == EXIT_OK, result.err
    assert "canaryVersion: 6.9.1  #" in repo.stack.read_text()


def test_basic_auth_challenge_without_credentials_says_where_it_looked():
    challenge = {"WWW-Authenticate": 'Basic realm="Registry Realm"'}
    with (
        servers.stub(lambda _request: (401, challenge, b"")) as (url, _seen),
        pytest.raises(RegistryError, match=r"wants credentials and none were found \(looked in \$CANARY"),
    ):
        Registry(url, looked_in="$CANARY_REGISTRY_USERNAME/$CANARY_REGISTRY_PASSWORD").tags(NAME)


def test_challenge_parsing_keeps_commas_inside_quotes():
    scheme, params = parse_challenge(
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {"realm": "https://ghcr.io/token", "service": "ghcr.io", "scope": "repository:a/b:pull,push"}


def test_image_references():
    assert parse_image("ghcr.io/stefanprodan/podinfo") == parse_image("ghcr.io/stefanprodan/podinfo", None)
    assert parse_image("ghcr.io/stefanprodan/podinfo").base_url == "https://ghcr.io"
    assert parse_image("stefanprodan/podinfo").base_url == "https://registry-1.docker.io"
    assert parse_image("docker.io/library/nginx").name == "library/nginx"
    ref = parse_image("ghcr.io/stefanprodan/podinfo", "http://127.0.0.1:5000/")
    assert (ref.base_url, ref.name) == ("http://127.0.0.1:5000", NAME)


@pytest.mark.parametrize(
    ("policy", "tag", "ok"),
    [
        ("semver:6.x", "6.9.1", True),
        ("semver:6.x", "v6.9.1", True),
        ("semver:6.x", "7.0.0", False),
        ("semver:6.x", "6.10.0-rc.1", False),
        ("semver:6.9.x", "6.9.12", True),
        ("semver:6.9.x", "6.10.0", False),
        ("glob:6.9.*", "6.9.3", True),
        ("glob:6.9.*", "6.9.3-rc.1", False),
        ("glob:6.9.*", "6.90.0", False),
        ("semver:6.x", "latest", False),
    ],
)
def test_tag_policy(policy, tag, ok):
    assert (TagPolicy.parse(policy).latest([tag]) == tag) is ok


def test_newest_orders_by_version_not_text():
    found = ["6.9.0", "6.10.0", "6.9.10", "6.11.0-rc.1", "v6.10.0", "garbage"]
    assert TagPolicy.parse("semver:6.x").newest(found, "6.9.0") == "6.10.0"
    assert TagPolicy.parse("semver:6.9.x").newest(found, "6.9.0") == "6.9.10"
    assert TagPolicy.parse("semver:6.x").newest(found, "6.10.0") is None


def test_bad_policy_in_config_is_refused(capsys, repo, oci_registry):
    repo.write_stack(stack_text(policy="regex:.*"))
    result = watch(capsys, repo, oci_registry)
    assert result.code == EXIT_REFUSED
    assert "canaryTagPolicy" in result.err


def test_a_prerelease_canary_never_goes_back_to_an_older_release():
    # 6.9.0 < 6.9.1-rc.1 < 6.9.1: a pre-release current tag is a floor too.
    assert TagPolicy.parse("semver:6.x").newest(["6.0.0", "6.9.0"], "6.9.1-rc.1") is None
    assert TagPolicy.parse("semver:6.x").newest(["6.9.0", "6.9.1"], "6.9.1-rc.1") == "6.9.1"
    assert TagPolicy.parse("semver:6.x").newest(["6.9.1"], "6.9.1") is None


def test_prerelease_current_tag_against_the_registry(capsys, repo, oci_registry):
    # The registry holds 6.9.1 and 6.9.2-beta.1: from 6.9.2-beta.1 there is nothing newer in semver:6.x.
    repo.write_stack(stack_text(canary="6.9.2-beta.1"))
    head = repo.head()
    result = watch(capsys, repo, oci_registry)
    assert result.code == EXIT_INCONCLUSIVE, result.out
    assert repo.head() == head


def test_tags_key_missing_is_malformed_but_null_is_empty(capsys, repo):
    head = repo.head()
    answer = {"body": b'{"name": "stefanprodan/podinfo"}'}
    with servers.stub(lambda _request: (200, {"Content-Type": "application/json"}, answer["body"])) as (url, _seen):
        missing = watch(capsys, repo, url)
        answer["body"] = b'{"name": "stefanprodan/podinfo", "tags": null}'
        null = watch(capsys, repo, url)
    assert missing.code == EXIT_UNAVAILABLE and "no `tags` key" in missing.err
    assert null.code == EXIT_INCONCLUSIVE and "(0 tags seen)" in null.out
    assert repo.head() == head


def test_broken_http_from_the_registry_is_unavailable(capsys, repo):
    with servers.raw_stub(b"garbage\r\n\r\n") as url:
        result = watch(capsys, repo, url)
    assert result.code == EXIT_UNAVAILABLE
    assert "broken HTTP answer" in result.err


def paged_registry(total: int, per_page: int):
    """A registry stand-in with `total` tags served `per_page` at a time (`n` and `last`, as distribution 3 and
    ghcr.io page; Debian's distribution 2.8 answers every tag in one page), behind a Bearer token."""
    every = [f"6.{i // 100}.{i % 100}" for i in range(total)]

    def handle(request):
        url = urllib.parse.urlsplit(request.path)
        if url.path == "/token":
            return 200, {"Content-Type": "application/json"}, json.dumps({"token": "paged"}).encode()
        if request.headers.get("Authorization") != "Bearer paged":
            return 401, {"WWW-Authenticate": f'Bearer realm="{state["url"]}/token",service="paged"'}, b""
        query = urllib.parse.parse_qs(url.query)
        start = every.index(query["last"][0]) + 1 if "last" in query else 0
        page = every[start : start + per_page]
        headers = {"Content-Type": "application/json"}
        if start + per_page < total:
            headers["Link"] = f'</v2/{NAME}/tags/list?n={per_page}&last={page[-1]}>; rel="next"'
        return 200, headers, json.dumps({"name": NAME, "tags": page}).encode()

    state: dict[str, str] = {}
    return handle, state, every


def test_a_thousand_tags_over_ten_pages_with_one_token():
    handle, state, every = paged_registry(1000, 100)
    with servers.stub(handle) as (url, seen):
        state["url"] = url
        found = Registry(url).tags(NAME)
    assert found == every
    paths = [request.path.split("?")[0] for request in seen]
    assert paths.count("/token") == 1 and paths.count(f"/v2/{NAME}/tags/list") == 11  # the 401, then ten pages


def test_more_pages_than_the_bound_is_an_error_not_a_hang():
    handle, state, _ = paged_registry(1000, 10)
    with servers.stub(handle) as (url, _seen):
        state["url"] = url
        with pytest.raises(RegistryError, match="more than 20 pages"):
            Registry(url, max_pages=20).tags(NAME)
