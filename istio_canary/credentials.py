"""Registry credentials for `canary watch-images`: found where registry tools keep them, never shown.

For the image's registry host, the first of:
1. `$CANARY_REGISTRY_USERNAME` + `$CANARY_REGISTRY_PASSWORD` (CI: e.g. the workflow's actor and GITHUB_TOKEN
   for ghcr.io);
2. Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; in the cluster a
   mounted `kubernetes.io/dockerconfigjson` Secret): `credHelpers[host]`, then `auths[host]`, then `credsStore`.
   A helper is the `docker-credential-<name>` program every registry tool calls (`gcloud auth
   configure-docker` writes `credHelpers` for Artifact Registry);
3. for Google registries (`*-docker.pkg.dev`, `gcr.io`, `*.gcr.io`): Google's application-default credentials
   (Workload Identity in GKE, workload identity federation in GitHub Actions, `gcloud auth
   application-default login` on a laptop) as the `oauth2accesstoken` user;
4. none: anonymous.

Contract: `find(host)` returns a Credential or None, or raises CredentialError for a configuration that is
there but broken (unreadable config.json, a failing helper; exit 4), CredentialUnavailable when Google's
token endpoint will not give a token now (exit 3, like a registry that refuses). No message, repr or log line holds a secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

USERNAME_ENV, PASSWORD_ENV = "CANARY_REGISTRY_USERNAME", "CANARY_REGISTRY_PASSWORD"
GOOGLE_USER = "oauth2accesstoken"  # Artifact Registry's user name for an OAuth access token
GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
HELPER_TIMEOUT_S = 30.0
MAX_CONFIG_BYTES = 1024 * 1024


class CredentialError(RuntimeError):
    """Credentials are configured but cannot be read; the message names where, never what."""


class CredentialUnavailable(CredentialError):
    """The credential source is there but could not give a credential now (Google's token endpoint refused or
    was unreachable): like a registry that refuses, not like a broken file."""


@dataclass(frozen=True)
class Credential:
    """A user name and secret for one registry, and where they came from (for messages)."""

    username: str
    secret: str = field(repr=False)
    source: str

    def __str__(self) -> str:
        return f"{self.username} (from {self.source})"


def is_google(host: str) -> bool:
    """Artifact Registry (`europe-docker.pkg.dev`) or Container Registry (`gcr.io`, `eu.gcr.io`)."""
    host = host.split(":")[0].lower()
    return host == "gcr.io" or host.endswith(("-docker.pkg.dev", ".gcr.io"))


def docker_config_path(env: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """Where Docker (and crane, skopeo with --authfile unset, Flux's secrets) keep credentials."""
    base = env.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


def _keys_for(host: str) -> tuple[str, ...]:
    """The spellings docker writes for one host; Docker Hub's has a history of its own."""
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in ("registry-1.docker.io", "docker.io", "index.docker.io"):
        keys += ["https://index.docker.io/v1/", "index.docker.io", "docker.io"]
    return tuple(keys)


def _from_helper(helper: str, host: str, config: Path) -> Credential | None:
    program = f"docker-credential-{helper}"
    if not helper.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise CredentialError(f"{config}: credential helper name {helper!r} is not a program name")
    try:
        done = subprocess.run(
            [program, "get"], input=host, capture_output=True, text=True, timeout=HELPER_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise CredentialError(f"{config} names credential helper {program}, which is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise CredentialError(f"{program} did not answer within {HELPER_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        if "credentials not found" in done.stdout.lower() + done.stderr.lower():
            return None
        # Its output is not shown: a helper may print what it read.
        raise CredentialError(f"{program} get failed for {host} (exit {done.returncode})")
    try:
        answer = json.loads(done.stdout)
        username, secret = answer["Username"], answer["Secret"]
    except (ValueError, KeyError, TypeError):
        raise CredentialError(f"{program} get answered something other than {{Username, Secret}} JSON") from None
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        raise CredentialError(f"{program} get answered an empty or non-text credential")
    if username == "<token>":
        raise CredentialError(f"{program} gave an identity token; only user name + password/token is supported")
    return Credential(username, secret, f"credential helper {program}")


def _from_auths(entry: object, where: str) -> Credential | None:
    if not isinstance(entry, dict):
        raise CredentialError(f"{where}: not an object")
    if entry.get("identitytoken"):
        raise CredentialError(f"{where}: an identity token; only user name + password/token is supported")
    username, password = entry.get("username"), entry.get("password")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialError(f"{where}.auth: not base64 of user:password") from None
        username, colon, password = decoded.partition(":")
        if not colon:
            raise CredentialError(f"{where}.auth: not base64 of user:password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        return None
    return Credential(username, password, where)


def from_docker_config(host: str, path: Path) -> Credential | None:
    """The credential config.json gives for `host`, or None (no file, no entry)."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise CredentialError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CredentialError(f"{path}: not readable JSON ({type(exc).__name__})") from None
    if not isinstance(config, dict):
        raise CredentialError(f"{path}: not a JSON object")
    helpers, auths = config.get("credHelpers") or {}, config.get("auths") or {}
    if not isinstance(helpers, dict) or not isinstance(auths, dict):
        raise CredentialError(f"{path}: credHelpers and auths must be objects")
    for key in _keys_for(host):
        if isinstance(helpers.get(key), str):
            return _from_helper(helpers[key], host, path)
    for key in _keys_for(host):
        if key in auths:
            found = _from_auths(auths[key], f"{path} auths[{key!r}]")
            if found is not None:
                return found
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return _from_helper(store, host, path)
    return None


def from_google() -> Credential | None:
    """An access token from application-default credentials, or None when none are configured."""
    import google.auth
    import google.auth.exceptions
    import google.auth.transport.requests

    try:
        credentials, _project = google.auth.default(scopes=[GOOGLE_SCOPE])
    except google.auth.exceptions.DefaultCredentialsError:
        return None
    try:
        credentials.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.GoogleAuthError as exc:
        # Google's error text can quote the token endpoint's answer; the type is enough to act on.
        raise CredentialUnavailable(
            f"Google application-default credentials could not be refreshed ({type(exc).__name__})"
        ) from None
    token = getattr(credentials, "token", None)
    if not isinstance(token, str) or not token:
        raise CredentialUnavailable("Google application-default credentials gave no access token")
    return Credential(GOOGLE_USER, token, "Google application-default credentials")


def find(host: str, env: dict[str, str] | os._Environ[str] = os.environ) -> Credential | None:
    """The credential for `host` from the first source that has one (see the module docstring)."""
    username, password = env.get(USERNAME_ENV, ""), env.get(PASSWORD_ENV, "")
    if username or password:
        if not (username and password):
            raise CredentialError(f"set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither")
        return Credential(username, password, f"${USERNAME_ENV}/${PASSWORD_ENV}")
    found = from_docker_config(host, docker_config_path(env))
    if found is None and is_google(host):
        found = from_google()
    return found


def sources(host: str, env: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """Where `find` looked, for the message when a registry wants credentials and none were found."""
    places = [f"${USERNAME_ENV}/${PASSWORD_ENV}", str(docker_config_path(env))]
    if is_google(host):
        places.append("Google application-default credentials")
    return ", ".join(places)
