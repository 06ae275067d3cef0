"""`canary watch-images` against real private registries (docker-registry with htpasswd, and with a token realm):
credentials from the environment, Docker's config.json, a credential helper and Google's application-default
credentials; wrong or missing credentials; many tags; the digest in the commit; no secret anywhere."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from istio_canary.cli import EXIT_INCONCLUSIVE, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from testkit import registries, servers
from tests.integration.cli import canary
from tests.integration.conftest import git, stack_text

NAME = "acme/podinfo"
USER, PASSWORD = "ci-bot", "s3cret-registry-password-0123"
GOOGLE_TOKEN = "ya29.test-access-token-do-not-print"
TAGS = ["6.8.0", "6.9.0", "6.9.1", "6.10.0-rc.1", "7.0.0", "latest"]


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[registries.Registry, dict[str, str]]]:
    with registries.htpasswd_registry(tmp_path_factory.mktemp("htpasswd"), {USER: PASSWORD}) as registry:
        yield registry, registries.push(registry, NAME, TAGS, USER, PASSWORD)


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[registries.Registry, dict[str, str]]]:
    with registries.token_registry(tmp_path_factory.mktemp("token"), {USER: PASSWORD}) as registry:
        yield registry, registries.push(registry, NAME, TAGS, USER, PASSWORD, variant="token")


def private_stack(image: str = f"ghcr.io/{NAME}", **kwargs: object) -> str:
    return stack_text(**kwargs) + f"  istio-canary:image: {image}\n"  # type: ignore[arg-type]


def watch(capsys, repo, url, *extra):
    return canary(capsys, "watch-images", "-C", repo.work, "--registry-url", url, "--no-notify", *extra)


def no_secret_in(*texts: str) -> None:
    for text in texts:
        for secret in (PASSWORD, GOOGLE_TOKEN, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()):
            assert secret not in text


def docker_config(monkeypatch: pytest.MonkeyPatch, directory: Path, config: dict) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))


def test_htpasswd_registry_with_credentials_from_the_environment(capsys, repo, basic_registry, monkeypatch):
    registry, digests = basic_registry
    repo.write_stack(private_stack())
    monkeypatch.setenv("CANARY_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("CANARY_REGISTRY_PASSWORD", PASSWORD)
    result = watch(capsys, repo, registry.url, "--json")
    assert result.code == EXIT_OK, result.err
    data = json.loads(result.out)
    assert (data["newest"], data["digest"]) == ("6.9.1", digests["6.9.1"])
    assert data["credential"] == "$CANARY_REGISTRY_USERNAME/$CANARY_REGISTRY_PASSWORD"
    message = repo.message()
    assert f"Digest: {digests['6.9.1']}" in message
    no_secret_in(result.out, result.err, message, git(repo.work, "show", "HEAD"))


def test_token_registry_with_docker_config_auths(capsys, repo, token_registry, monkeypatch, tmp_path):
    registry, digests = token_registry
    repo.write_stack(private_stack(policy="semver:>=6.9.0 <8"))
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    docker_config(monkeypatch, tmp_path / "docker", {"auths": {"ghcr.io": {"auth": auth}}})
    before = len(registry.token_requests)
    result = watch(capsys, repo, registry.url, "--json")
    assert result.code == EXIT_OK, result.err
    data = json.loads(result.out)
    assert (data["newest"], data["digest"]) == ("7.0.0", digests["7.0.0"])
    # The token flow: the 401's realm, Basic credentials of the config's user, a pull-only scope.
    asked = registry.token_requests[before:]
    assert asked and all(request.username == USER and request.status == 200 for request in asked)
    assert {scope for request in asked for scope in request.scopes} == {f"repository:{NAME}:pull"}
    no_secret_in(result.out, result.err, repo.message())


def test_a_credential_helper_from_the_docker_config(capsys, repo, token_registry, monkeypatch, tmp_path):
    registry, _ = token_registry
    repo.write_stack(private_stack())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-acme"
    seen = tmp_path / "helper-saw"
    helper.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get ] || exit 1\ncat > "{seen}"\n'
        f'printf \'{{"ServerURL":"ghcr.io","Username":"{USER}","Secret":"{PASSWORD}"}}\'\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    docker_config(monkeypatch, tmp_path / "docker", {"credHelpers": {"ghcr.io": "acme"}})
    result = watch(capsys, repo, registry.url)
    assert result.code == EXIT_OK, result.err
    assert seen.read_text() == "ghcr.io"  # the helper is asked for the image's host, as docker asks
    no_secret_in(result.out, result.err, repo.message())


@pytest.mark.parametrize("kind", ["htpasswd", "token"])
def test_wrong_credentials_are_exit_3_naming_the_user_not_the_password(
    capsys, repo, basic_registry, token_registry, monkeypatch, kind
):
    registry = basic_registry[0] if kind == "htpasswd" else token_registry[0]
    repo.write_stack(private_stack())
    head = repo.head()
    wrong = "wrong-password-9876"
    monkeypatch.setenv("CANARY_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("CANARY_REGISTRY_PASSWORD", wrong)
    result = watch(capsys, repo, registry.url)
    assert result.code == EXIT_UNAVAILABLE
    assert f"refused the credentials of {USER} (from $CANARY_REGISTRY_USERNAME/$CANARY_REGISTRY_PASSWORD)" in result.err
    assert wrong not in result.err + result.out
    assert repo.head() == head


@pytest.mark.parametrize("kind", ["htpasswd", "token"])
def test_no_credentials_says_where_it_looked(capsys, repo, basic_registry, token_registry, kind):
    registry = basic_registry[0] if kind == "htpasswd" else token_registry[0]
    repo.write_stack(private_stack())
    result = watch(capsys, repo, registry.url)
    assert result.code == EXIT_UNAVAILABLE
    assert "wants credentials and none were found (looked in $CANARY_REGISTRY_USERNAME" in result.err
    assert "config.json" in result.err


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "not readable JSON"),
        (json.dumps({"auths": {"ghcr.io": {"auth": "%%%"}}}), "not base64 of user:password"),
        (json.dumps({"credHelpers": {"ghcr.io": "missing-helper"}}), "not on PATH"),
        (json.dumps({"auths": {"ghcr.io": {"identitytoken": "opaque"}}}), "identity token"),
    ],
)
def test_a_broken_docker_config_is_refused_without_contacting_the_registry(capsys, repo, tmp_path, config, message):
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(config)
    repo.write_stack(private_stack())
    with servers.stub(lambda _request: (500, {}, b"")) as (url, seen):
        os.environ["DOCKER_CONFIG"] = str(tmp_path / "docker")  # restored by the autouse fixture's monkeypatch
        result = watch(capsys, repo, url)
    assert result.code == EXIT_REFUSED
    assert message in result.err
    assert "opaque" not in result.err
    assert seen == []


def test_only_both_environment_variables_or_neither(capsys, repo, monkeypatch):
    repo.write_stack(private_stack())
    monkeypatch.setenv("CANARY_REGISTRY_USERNAME", USER)
    result = watch(capsys, repo, "http://127.0.0.1:9")
    assert result.code == EXIT_REFUSED
    assert "set both CANARY_REGISTRY_USERNAME and CANARY_REGISTRY_PASSWORD" in result.err


def google_adc(tmp_path: Path, token_endpoint: str) -> Path:
    """A service-account key file as application-default credentials, its token URI pointed at a local stand-in of
    Google's OAuth endpoint. (google-auth pins the token URI of `authorized_user` files to Google's own; a key
    file's is honoured. The code path after the file, refresh and access token, is the one Workload Identity
    takes too.)"""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "adc.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "acme-prod",
                "private_key_id": "test-key",
                "private_key": pem,
                "client_email": "canary-agent@acme-prod.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{token_endpoint}/token",
            }
        )
    )
    return path


def test_google_artifact_registry_with_application_default_credentials(
    capsys, repo, token_registry, monkeypatch, tmp_path
):
    registry, digests = token_registry
    registry.google_tokens.add(GOOGLE_TOKEN)
    repo.write_stack(private_stack(image=f"europe-docker.pkg.dev/{NAME}"))
    answer = json.dumps({"access_token": GOOGLE_TOKEN, "expires_in": 3600, "token_type": "Bearer"}).encode()
    with servers.stub(lambda _request: (200, {"Content-Type": "application/json"}, answer)) as (oauth, seen):
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(google_adc(tmp_path, oauth)))
        before = len(registry.token_requests)
        result = watch(capsys, repo, registry.url, "--json")
    assert result.code == EXIT_OK, result.err
    assert json.loads(result.out)["credential"] == "Google application-default credentials"
    assert [request.method for request in seen] == ["POST"]  # one exchange of the signed assertion for a token
    assert {request.username for request in registry.token_requests[before:]} == {registries.GOOGLE_USERNAME}
    assert f"Digest: {digests['6.9.1']}" in repo.message()
    no_secret_in(result.out, result.err, repo.message())


def test_google_credentials_that_cannot_be_refreshed_are_exit_3(capsys, repo, monkeypatch, tmp_path):
    repo.write_stack(private_stack(image=f"europe-docker.pkg.dev/{NAME}"))
    refused = json.dumps({"error": "invalid_grant", "error_description": "Token has been revoked."}).encode()
    with servers.stub(lambda _request: (400, {"Content-Type": "application/json"}, refused)) as (oauth, _seen):
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(google_adc(tmp_path, oauth)))
        result = watch(capsys, repo, "http://127.0.0.1:9")
    assert result.code == EXIT_UNAVAILABLE
    assert "Google application-default credentials could not be refreshed (RefreshError)" in result.err
    assert "revoked" not in result.err  # Google's own words may quote what it was sent; they are not repeated


def test_many_tags_through_the_token_flow(capsys, repo, tmp_path, monkeypatch):
    with registries.token_registry(tmp_path / "many", {USER: PASSWORD}) as registry:
        many = [f"6.{minor}.{patch}" for minor in range(30) for patch in range(10)]
        registries.push(registry, NAME, many, USER, PASSWORD)
        monkeypatch.setenv("CANARY_REGISTRY_USERNAME", USER)
        monkeypatch.setenv("CANARY_REGISTRY_PASSWORD", PASSWORD)
        repo.write_stack(private_stack(canary="6.0.0"))
        # Debian's distribution 2.8 ignores n= and answers all 300 in one page; Link paging of many tags is
        # test_watch_images.py's paged stand-in.
        result = watch(capsys, repo, registry.url, "--page-size", "25", "--dry-run", "--json")
    assert result.code == EXIT_OK, result.err
    data = json.loads(result.out)
    assert (data["tags_seen"], data["newest"]) == (300, "6.29.9")


def test_the_ga_line_moves_only_when_the_stack_opts_in(capsys, repo, basic_registry, monkeypatch):
    registry, digests = basic_registry
    monkeypatch.setenv("CANARY_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("CANARY_REGISTRY_PASSWORD", PASSWORD)
    repo.write_stack(private_stack(ga="6.8.0", canary="6.8.0"))
    result = watch(capsys, repo, registry.url, "--line", "ga")
    assert result.code == EXIT_REFUSED and "gaTagPolicy" in result.err
    # No release runs (canary == GA): GA and the idle canary move together, so no stale release appears.
    repo.write_stack(private_stack(ga="6.8.0", canary="6.8.0") + "  istio-canary:gaTagPolicy: semver:~6.9\n")
    result = watch(capsys, repo, registry.url, "--line", "ga")
    assert result.code == EXIT_OK, result.err
    text = repo.stack.read_text()
    assert "istio-canary:gaVersion: 6.9.1" in text and "canaryVersion: 6.9.1  #" in text
    assert repo.message().startswith("canary: GA image patch podinfo 6.9.1 (was 6.8.0, policy semver:~6.9)")
    assert f"Digest: {digests['6.9.1']}" in repo.message()
    # A release in progress: the GA line waits.
    repo.write_stack(private_stack(ga="6.8.0", canary="6.9.0", weight=10) + "  istio-canary:gaTagPolicy: semver:6.x\n")
    head = repo.head()
    result = watch(capsys, repo, registry.url, "--line", "ga")
    assert result.code == EXIT_INCONCLUSIVE and "in progress at 10%" in result.err
    assert repo.head() == head


def test_the_secret_never_reaches_git_even_on_a_failed_push(capsys, repo, basic_registry, monkeypatch):
    registry, _ = basic_registry
    monkeypatch.setenv("CANARY_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("CANARY_REGISTRY_PASSWORD", PASSWORD)
    repo.write_stack(private_stack())
    result = watch(capsys, repo, registry.url, "--push", "--remote", "http://127.0.0.1:9/nowhere.git")
    assert result.code == EXIT_REFUSED
    log = subprocess.run(
        ["git", "-C", str(repo.work), "log", "-p", "--all"], capture_output=True, text=True, check=True
    ).stdout
    no_secret_in(result.out, result.err, log)
