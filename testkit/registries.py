"""Real authenticated OCI registries on 127.0.0.1 for the registry client's integration tests: the CNCF
distribution registry (Debian docker-registry) behind HTTP Basic (htpasswd) or behind bearer tokens from a token
server that runs in this process. Every wait is bounded and every server is stopped by its owner."""

from __future__ import annotations

import base64
import datetime
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from testkit.servers import (  # noqa: F401 - MANIFEST_TYPE: the tests read it from here
    MANIFEST_TYPE,
    READY_TIMEOUT_S,
    Recorded,
    binary,
    free_port,
    push_tags,
    running,
    stub,
)

GOOGLE_USERNAME = "oauth2accesstoken"  # Artifact Registry: this username, an OAuth2 access token as password
TOKEN_TTL_S = 300


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server received, whatever it answered."""

    method: str
    path: str  # with the query string
    authorization: bool  # an Authorization header was sent
    username: str | None  # the HTTP Basic username, None without (readable) Basic credentials
    scopes: tuple[str, ...]  # every scope= parameter, in order
    status: int  # what the token server answered


@dataclass(frozen=True)
class Registry:
    """A running authenticated registry. `realm` is the Basic realm (htpasswd) or the token server's URL (token);
    `token_requests` fills up while the token server runs; add to `google_tokens` to accept more access tokens."""

    url: str
    kind: Literal["htpasswd", "token"]
    service: str
    realm: str
    users: dict[str, str]
    issuer: str = ""
    token_requests: list[TokenRequest] = field(default_factory=list)
    google_tokens: set[str] = field(default_factory=set)


# --- helpers ------------------------------------------------------------------------------------------------


def basic(username: str, password: str) -> str:
    """The Authorization header value of HTTP Basic credentials."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        username, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (username, password) if sep else None


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name.lower()), None)


def _wait_challenge(url: str, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll `url` until it answers 401 (an authenticated registry's /v2/); raise when the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                raise RuntimeError(f"{url}: answers without credentials; auth is not configured")
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 401:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url}: no 401 challenge within {timeout:g}s")


@contextmanager
def _serve(workdir: Path, auth: dict) -> Iterator[str]:
    """Run docker-registry with `auth`; ready once its debug health endpoint answers and /v2/ challenges."""
    exe = binary("docker-registry")
    port, debug_port = free_port(), free_port()
    while debug_port == port:
        debug_port = free_port()
    config = {
        "version": "0.1",
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}, "delete": {"enabled": True}},
        # /v2/ answers 401 now, so readiness is the debug server's /debug/health (200 without health checks).
        "http": {"addr": f"127.0.0.1:{port}", "debug": {"addr": f"127.0.0.1:{debug_port}"}},
        "auth": auth,
    }
    path = workdir / "config.yml"
    path.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    ready = f"http://127.0.0.1:{debug_port}/debug/health"
    with running([exe, "serve", str(path)], ready, workdir / "registry.log"):
        _wait_challenge(f"{url}/v2/")  # the debug listener comes up first
        yield url


# --- htpasswd -----------------------------------------------------------------------------------------------


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash at the minimum cost (4): the registry checks it on every request, and 300 pushes at the
    default cost would take half a minute."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt is deprecated in 3.11, removed in 3.13
        import crypt

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))


@contextmanager
def htpasswd_registry(
    workdir: Path, users: dict[str, str], realm: str = "istio-canary test registry"
) -> Iterator[Registry]:
    """docker-registry behind HTTP Basic: an htpasswd file of `users` (username -> password)."""
    workdir.mkdir(parents=True, exist_ok=True)
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text("".join(f"{name}:{bcrypt_hash(password)}\n" for name, password in users.items()))
    auth = {"htpasswd": {"realm": realm, "path": str(htpasswd)}}
    with _serve(workdir, auth) as url:
        yield Registry(url=url, kind="htpasswd", service=realm, realm=realm, users=dict(users))


# --- token auth ---------------------------------------------------------------------------------------------


class Signer:
    """An ES256 key and its self-signed certificate: the registry trusts the certificate (rootcertbundle) and
    finds it again in each token's x5c header."""

    def __init__(self, issuer: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def jwt(self, claims: dict) -> str:
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _access(scopes: Iterable[str]) -> list[dict]:
    """The access claim for `scopes` ("repository:<name>:pull,push"; names may hold ':' before a port), granting
    exactly the requested actions; repeated scopes of one resource merge."""
    granted: dict[tuple[str, str], list[str]] = {}
    for scope in scopes:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if not (kind and name and actions):
            raise ValueError(f"malformed scope {scope!r}")
        merged = granted.setdefault((kind, name), [])
        merged.extend(action for action in actions.split(",") if action and action not in merged)
    return [{"type": kind, "name": name, "actions": actions} for (kind, name), actions in granted.items()]


def _json(status: int, body: object, extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **(extra or {})}, json.dumps(body).encode()


def _error(status: int, code: str, message: str, realm: str = "") -> tuple[int, dict[str, str], bytes]:
    extra = {"WWW-Authenticate": f'Basic realm="{realm}"'} if realm else None
    return _json(status, {"errors": [{"code": code, "message": message}]}, extra)


@contextmanager
def token_registry(
    workdir: Path,
    users: dict[str, str],
    service: str = "registry.test",
    issuer: str = "istio-canary-token-server",
    google_tokens: Iterable[str] = (),
) -> Iterator[Registry]:
    """docker-registry behind bearer tokens from a token server in this process (docker's token spec): GET
    /token?service=&scope= with HTTP Basic as one of `users`, or as `oauth2accesstoken` with one of the record's
    `google_tokens`; no anonymous access. The token is an ES256 JWT granting exactly the requested scopes."""
    workdir.mkdir(parents=True, exist_ok=True)
    signer = Signer(issuer)
    bundle = workdir / "token-ca.pem"
    bundle.write_bytes(signer.pem())
    log: list[TokenRequest] = []
    accepted: set[str] = set(google_tokens)
    known = dict(users)

    def answer(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        url = urllib.parse.urlsplit(request.path)
        query = urllib.parse.parse_qs(url.query)
        scopes = tuple(scope for value in query.get("scope", []) for scope in value.split(" ") if scope)
        authorization = _header(request.headers, "Authorization")
        credentials = _basic_credentials(authorization)
        status, headers, body = _token_answer(request.method, url.path, query, scopes, credentials)
        log.append(
            TokenRequest(
                method=request.method,
                path=request.path,
                authorization=authorization is not None,
                username=credentials[0] if credentials else None,
                scopes=scopes,
                status=status,
            )
        )
        return status, headers, body

    def _token_answer(
        method: str,
        path: str,
        query: dict[str, list[str]],
        scopes: tuple[str, ...],
        credentials: tuple[str, str] | None,
    ) -> tuple[int, dict[str, str], bytes]:
        if method != "GET" or path != "/token":
            return _error(404, "NOT_FOUND", f"{method} {path}: only GET /token is served")
        if query.get("service") != [service]:
            return _error(400, "INVALID_REQUEST", f"service must be {service!r}, got {query.get('service')}")
        if credentials is None:
            return _error(401, "UNAUTHORIZED", "authentication required", realm=service)
        username, password = credentials
        if username == GOOGLE_USERNAME:
            valid = password in accepted
        else:
            valid = username in known and known[username] == password
        if not valid:
            return _error(401, "UNAUTHORIZED", "invalid username or password", realm=service)
        try:
            access = _access(scopes)
        except ValueError as error:
            return _error(400, "INVALID_REQUEST", str(error))
        now = int(time.time())
        claims = {
            "iss": issuer,
            "sub": username,
            "aud": service,
            "exp": now + TOKEN_TTL_S,
            "nbf": now - 10,  # the registry's clock may read a little behind ours
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        token = signer.jwt(claims)
        issued = datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _json(200, {"token": token, "access_token": token, "expires_in": TOKEN_TTL_S, "issued_at": issued})

    with stub(answer) as (token_url, _seen):
        realm = f"{token_url}/token"
        auth = {"token": {"realm": realm, "service": service, "issuer": issuer, "rootcertbundle": str(bundle)}}
        with _serve(workdir, auth) as url:
            yield Registry(
                url=url,
                kind="token",
                service=service,
                realm=realm,
                users=known,
                issuer=issuer,
                token_requests=log,
                google_tokens=accepted,
            )


def fetch_token(registry: Registry, scopes: list[str], username: str, password: str) -> str:
    """A bearer token for `scopes` from the registry's token server, asked with HTTP Basic credentials."""
    query = urllib.parse.urlencode([("service", registry.service)] + [("scope", scope) for scope in scopes])
    request = urllib.request.Request(f"{registry.realm}?{query}", headers={"Authorization": basic(username, password)})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["token"]


def authorization(registry: Registry, name: str, actions: list[str], username: str, password: str) -> str:
    """The Authorization header value for `actions` (pull, push) on repository `name`: Basic credentials for
    an htpasswd registry, a fresh bearer token for a token registry."""
    if registry.kind == "htpasswd":
        return basic(username, password)
    return "Bearer " + fetch_token(registry, [f"repository:{name}:{','.join(actions)}"], username, password)


# --- push ---------------------------------------------------------------------------------------------------


def push(
    registry: Registry, name: str, tags: list[str], username: str, password: str, variant: str = ""
) -> dict[str, str]:
    """Tag a tiny OCI image as each of `tags` (servers.push_tags), authenticating as the registry demands (one
    token per call on a token registry); returns tag -> manifest digest. A different `variant` makes a different
    config blob, hence a different digest."""
    auth = authorization(registry, name, ["pull", "push"], username, password)
    return push_tags(registry.url, name, tags, auth, variant)
