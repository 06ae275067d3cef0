"""The authenticated registry fixtures of testkit.registries against the real docker-registry: challenges,
HTTP Basic, bearer tokens from our token server (also Artifact Registry's oauth2accesstoken), push digests."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.message import Message

import pytest

from testkit import registries
from testkit.registries import GOOGLE_USERNAME, Registry

USERS = {"alice": "alice-secret", "bob": "bob:colon secret"}
GOOGLE_TOKEN = "ya29.test-access-token"


@pytest.fixture(scope="module")
def htpasswd_reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with registries.htpasswd_registry(tmp_path_factory.mktemp("htpasswd-registry"), USERS) as registry:
        yield registry


@pytest.fixture(scope="module")
def token_reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with registries.token_registry(
        tmp_path_factory.mktemp("token-registry"), USERS, google_tokens=[GOOGLE_TOKEN]
    ) as registry:
        yield registry


@pytest.fixture(params=["htpasswd", "token"])
def reg(request: pytest.FixtureRequest) -> Registry:
    return request.getfixturevalue(f"{request.param}_reg")


def call(method: str, url: str, auth: str | None = None, **headers: str) -> tuple[int, Message, bytes]:
    """One HTTP request; (status, headers, body) whatever the status."""
    if auth:
        headers["Authorization"] = auth
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def tags_of(registry: Registry, name: str, user: str = "alice") -> list[str]:
    auth = registries.authorization(registry, name, ["pull"], user, USERS[user])
    status, _, body = call("GET", f"{registry.url}/v2/{name}/tags/list", auth)
    assert status == 200, body
    return json.loads(body)["tags"]


def token_status(registry: Registry, username: str, password: str, scope: str = "repository:x/y:pull") -> int:
    try:
        registries.fetch_token(registry, [scope], username, password)
    except urllib.error.HTTPError as error:
        with error:
            assert json.loads(error.read())["errors"][0]["code"] == "UNAUTHORIZED"
            return error.code
    return 200


def jwt_part(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.partition(" ")
    return scheme, {key.strip(): value.strip('"') for key, _, value in (p.partition("=") for p in params.split(","))}


def test_anonymous_tags_list_is_challenged(reg: Registry) -> None:
    registries.push(reg, "team/anon", ["1.0.0"], "alice", USERS["alice"])
    status, headers, body = call("GET", f"{reg.url}/v2/team/anon/tags/list")
    assert status == 401
    assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
    scheme, params = challenge(headers["WWW-Authenticate"])
    if reg.kind == "htpasswd":
        assert (scheme, params) == ("Basic", {"realm": reg.realm})
    else:
        assert scheme == "Bearer"
        assert params == {"realm": reg.realm, "service": reg.service, "scope": "repository:team/anon:pull"}
        assert reg.realm.startswith("http://127.0.0.1:") and reg.realm.endswith("/token")


def test_credentials_list_exactly_the_pushed_tags(reg: Registry) -> None:
    pushed = ["1.0.0", "1.1.0-rc.1", "latest"]
    registries.push(reg, "team/exact", pushed, "bob", USERS["bob"])
    registries.push(reg, "team/other", ["9.9.9"], "alice", USERS["alice"])
    assert sorted(tags_of(reg, "team/exact", "alice")) == sorted(pushed)
    assert tags_of(reg, "team/other", "bob") == ["9.9.9"]


def test_wrong_password_is_refused(reg: Registry) -> None:
    registries.push(reg, "team/wrong", ["1.0.0"], "alice", USERS["alice"])
    url = f"{reg.url}/v2/team/wrong/tags/list"
    if reg.kind == "htpasswd":
        for user, password in (("alice", "nope"), ("alice", USERS["bob"]), ("mallory", "x")):
            status, headers, _ = call("GET", url, registries.basic(user, password))
            assert status == 401
            assert headers["WWW-Authenticate"].startswith("Basic ")
        assert call("GET", url, registries.basic("alice", USERS["alice"]))[0] == 200
    else:
        before = len(reg.token_requests)
        assert token_status(reg, "alice", "nope") == 401
        assert token_status(reg, "mallory", USERS["alice"]) == 401
        assert token_status(reg, "alice", USERS["alice"]) == 200
        assert [(r.username, r.status) for r in reg.token_requests[before:]] == [
            ("alice", 401),
            ("mallory", 401),
            ("alice", 200),
        ]


def test_token_server_refuses_anonymous_and_logs_the_flow(token_reg: Registry) -> None:
    before = len(token_reg.token_requests)
    query = urllib.parse.urlencode({"service": token_reg.service, "scope": "repository:team/anon:pull"})
    status, headers, body = call("GET", f"{token_reg.realm}?{query}")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic realm=")
    assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
    wrong_service = urllib.parse.urlencode({"service": "elsewhere", "scope": "repository:team/anon:pull"})
    assert call("GET", f"{token_reg.realm}?{wrong_service}", registries.basic("alice", USERS["alice"]))[0] == 400
    registries.push(token_reg, "team/flow", ["1.0.0"], "alice", USERS["alice"])
    seen = token_reg.token_requests[before:]
    assert [(r.method, r.authorization, r.username, r.scopes, r.status) for r in seen] == [
        ("GET", False, None, ("repository:team/anon:pull",), 401),
        ("GET", True, "alice", ("repository:team/anon:pull",), 400),
        ("GET", True, "alice", ("repository:team/flow:pull,push",), 200),  # one token for the whole push
    ]
    assert all(r.path.startswith("/token?") for r in seen)


def test_google_oauth2accesstoken_convention(token_reg: Registry) -> None:
    registries.push(token_reg, "project/repo/app", ["2.0.0"], "alice", USERS["alice"])
    assert token_status(token_reg, GOOGLE_USERNAME, "ya29.not-issued") == 401
    assert token_status(token_reg, GOOGLE_USERNAME, USERS["alice"]) == 401  # a user's password is no access token
    assert tags_of_google(token_reg, "project/repo/app", GOOGLE_TOKEN) == ["2.0.0"]
    token_reg.google_tokens.add("ya29.issued-later")
    try:
        assert tags_of_google(token_reg, "project/repo/app", "ya29.issued-later") == ["2.0.0"]
    finally:
        token_reg.google_tokens.discard("ya29.issued-later")
    assert token_status(token_reg, GOOGLE_USERNAME, "ya29.issued-later") == 401
    assert token_reg.token_requests[-1].username == GOOGLE_USERNAME


def tags_of_google(registry: Registry, name: str, access_token: str) -> list[str]:
    token = registries.fetch_token(registry, [f"repository:{name}:pull"], GOOGLE_USERNAME, access_token)
    assert jwt_part(token, 1)["sub"] == GOOGLE_USERNAME
    status, _, body = call("GET", f"{registry.url}/v2/{name}/tags/list", f"Bearer {token}")
    assert status == 200, body
    return json.loads(body)["tags"]


def test_many_tags_are_all_listed(reg: Registry) -> None:
    many = [f"1.{i // 20}.{i % 20}" for i in range(300)]
    started = time.monotonic()
    digests = registries.push(reg, "team/many", many, "alice", USERS["alice"])
    assert time.monotonic() - started < 15  # one token and two blobs per call, not per tag
    assert sorted(digests) == sorted(many)
    assert sorted(tags_of(reg, "team/many")) == sorted(many)


def test_push_digest_is_what_head_reports(reg: Registry) -> None:
    first = registries.push(reg, "team/digest", ["a", "b"], "alice", USERS["alice"])
    second = registries.push(reg, "team/digest", ["c"], "alice", USERS["alice"], variant="rebuilt")
    assert first["a"] == first["b"] != second["c"]
    auth = registries.authorization(reg, "team/digest", ["pull"], "alice", USERS["alice"])
    for tag, digest in {**first, **second}.items():
        assert digest.startswith("sha256:") and len(digest) == 71
        status, headers, _ = call(
            "HEAD", f"{reg.url}/v2/team/digest/manifests/{tag}", auth, Accept=registries.MANIFEST_TYPE
        )
        assert status == 200
        assert headers["Docker-Content-Digest"] == digest
    # Retagging moves the tag: HEAD follows the newest push.
    moved = registries.push(reg, "team/digest", ["a"], "alice", USERS["alice"], variant="rebuilt")
    assert moved["a"] == second["c"]
    status, headers, _ = call("HEAD", f"{reg.url}/v2/team/digest/manifests/a", auth, Accept=registries.MANIFEST_TYPE)
    assert headers["Docker-Content-Digest"] == second["c"]


def test_token_grants_exactly_the_requested_actions(token_reg: Registry) -> None:
    registries.push(token_reg, "team/scoped", ["1.0.0"], "alice", USERS["alice"])
    registries.push(token_reg, "team/elsewhere", ["1.0.0"], "alice", USERS["alice"])
    token = registries.fetch_token(
        token_reg, ["repository:team/scoped:pull", "repository:team/scoped:pull,push"], "bob", USERS["bob"]
    )
    header, claims = jwt_part(token, 0), jwt_part(token, 1)
    assert header["alg"] == "ES256" and len(header["x5c"]) == 1
    assert claims["access"] == [{"type": "repository", "name": "team/scoped", "actions": ["pull", "push"]}]
    assert (claims["iss"], claims["sub"], claims["aud"]) == (token_reg.issuer, "bob", token_reg.service)
    assert claims["nbf"] <= claims["iat"] < claims["exp"]

    pull_only = registries.authorization(token_reg, "team/scoped", ["pull"], "alice", USERS["alice"])
    assert call("GET", f"{token_reg.url}/v2/team/scoped/tags/list", pull_only)[0] == 200
    assert call("GET", f"{token_reg.url}/v2/team/elsewhere/tags/list", pull_only)[0] == 401  # another repository
    status, _, _ = call("POST", f"{token_reg.url}/v2/team/scoped/blobs/uploads/", pull_only)
    assert status == 401  # push was not granted


def test_registry_verifies_the_token_signature(token_reg: Registry) -> None:
    registries.push(token_reg, "team/forged", ["1.0.0"], "alice", USERS["alice"])
    now = int(time.time())
    claims = {
        "iss": token_reg.issuer,
        "sub": "alice",
        "aud": token_reg.service,
        "exp": now + 60,
        "nbf": now - 10,
        "iat": now,
        "jti": "forged",
        "access": [{"type": "repository", "name": "team/forged", "actions": ["pull"]}],
    }
    url = f"{token_reg.url}/v2/team/forged/tags/list"
    forged = registries.Signer(token_reg.issuer).jwt(claims)  # same issuer, a key the registry does not trust
    assert call("GET", url, f"Bearer {forged}")[0] == 401
    genuine = registries.fetch_token(token_reg, ["repository:team/forged:pull"], "alice", USERS["alice"])
    assert call("GET", url, f"Bearer {genuine}")[0] == 200
