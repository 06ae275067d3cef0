"""Read-only OCI distribution client: list an image's tags (with pagination) and read a tag's digest.

Auth as the distribution spec and Docker do it: on a 401, a `Bearer` challenge sends us to its token realm
(with the credential as Basic auth when there is one, anonymously otherwise), a `Basic` challenge gets the
credential directly. Credentials travel only over https, or plain http to this machine. Every message names
the registry and where the credential came from, never the credential or a token.

Bounds are per operation, not per request: a whole tag listing (its token fetch and every page) has one
deadline, `timeout`, and one byte budget, `max_bytes`, for all its pages together, so a slow or huge registry
costs the agent's loop at most `timeout` seconds and `max_bytes` of answers (only the tags are kept of a page
once read). Reading a digest is an operation of its own, with the same deadline and MAX_MANIFEST_BYTES.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from dataclasses import dataclass, field

from istio_canary import httpclient
from istio_canary.credentials import Credential

DEFAULT_TIMEOUT_S = 15.0  # per operation: a whole tag listing, or one digest
MAX_PAGES = 100  # ghcr.io pages at 100 tags by default: 10,000 tags is far beyond any real image
# Every page of one listing together: 10,000 tags of 128 characters are under 1.5 MB; Google's registries add
# a manifest map (a few hundred bytes per image) to the same answer. The agent's pod has 512Mi.
MAX_LISTING_BYTES = 8 * 1024 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the distribution spec's recommended limit for a manifest
# The distribution spec's tag grammar, ASCII only: anything else from a registry is passed over.
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
# What a tag may point at: an index (multi-arch) or a single manifest, OCI's or Docker's.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class RegistryError(RuntimeError):
    """The registry is unreachable, too slow, refused us, or sent an answer we cannot read or that is too big."""


@dataclass
class _Operation:
    """One operation's deadline and what is left of its byte budget, and how far it got (for the messages)."""

    doing: str  # "listing the tags of acme/podinfo"
    amount: str  # "the tags of acme/podinfo are"
    deadline: httpclient.Deadline
    limit: int
    spent: int = 0
    pages: int = 0
    seen: set[str] = field(default_factory=set)  # pages already read, for a pagination that loops
    paged: bool = True  # a listing: its messages count the pages read

    @property
    def budget(self) -> int:
        return self.limit - self.spent

    def failed(self, exc: httpclient.HttpError, base: str) -> RegistryError:
        """The operation's own words for its deadline and its budget; the request's for anything else."""
        read = f"from {httpclient.redact(base)}"
        if self.paged:
            read = f"{self.pages} page{'s' if self.pages != 1 else ''} read {read}"
        if exc.kind == httpclient.DEADLINE or self.deadline.expired:
            return RegistryError(
                f"{self.doing} took longer than {self.deadline.seconds:g}s (one deadline for all of it; {read})"
            )
        if exc.kind == httpclient.TOO_BIG:
            return RegistryError(f"{self.amount} more than {self.limit} bytes in all ({read}); giving up")
        return RegistryError(f"registry at {exc}")


@dataclass(frozen=True)
class ImageRef:
    """Where an image lives: the registry's base URL and the repository name inside it."""

    base_url: str
    name: str
    host: str  # the image's registry host, whose credentials apply (also when base_url points elsewhere)


def parse_image(image: str, registry_url: str | None = None) -> ImageRef:
    """Split `ghcr.io/stefanprodan/podinfo` into base URL + name; `registry_url` overrides the host part."""
    first, _, rest = image.partition("/")
    if "." in first or ":" in first or first == "localhost":
        host, name = first, rest
    else:  # Docker Hub's short form: `stefanprodan/podinfo`, official images under library/
        host, name = "registry-1.docker.io", image
        if "/" not in name:
            name = f"library/{name}"
    if host == "docker.io":
        host = "registry-1.docker.io"
    base = registry_url.rstrip("/") if registry_url else f"https://{host}"
    check_url(base)
    return ImageRef(base_url=base, name=name, host=host)


def check_url(url: str) -> None:
    """Only https, except plain http to this machine (a test registry) where nothing can be intercepted."""
    try:
        target = httpclient.parse_url(url)
    except httpclient.HttpError as exc:
        raise RegistryError(f"refusing registry URL: {exc}") from None
    if target.scheme == "https" or httpclient.is_loopback(target.host):
        return
    raise RegistryError(
        f"refusing registry URL {httpclient.redact(url)}: use https (plain http only for 127.0.0.1/localhost)"
    )


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {realm, service, scope})."""
    scheme, _, params = header.strip().partition(" ")
    values = {key.lower(): quoted or bare for key, quoted, bare in _CHALLENGE_PARAM.findall(params)}
    return scheme.lower(), values


class Registry:
    """Reads repositories on one registry; holds the pull token once fetched."""

    def __init__(
        self,
        base_url: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_pages: int = MAX_PAGES,
        credential: Credential | None = None,
        looked_in: str = "",
        max_bytes: int = MAX_LISTING_BYTES,
    ) -> None:
        check_url(base_url)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout  # per operation
        self.max_pages = max_pages
        self.max_bytes = max_bytes  # every page of one listing together
        self.credential = credential
        self.looked_in = looked_in  # where credentials were searched, for the message when none were found
        self.token: str | None = None
        self.basic = False  # the registry asked for Basic auth: send the credential with every request

    def _open(self, url: str, headers: dict[str, str], op: _Operation) -> tuple[int, dict[str, str], bytes]:
        """One request of `op`, within what is left of its deadline and its byte budget."""
        try:
            answer = httpclient.request(
                url,
                deadline=op.deadline,
                max_bytes=op.budget,
                headers={"Accept": "application/json", **headers},
            )
        except httpclient.HttpError as exc:
            raise op.failed(exc, self.base_url) from None
        op.spent += len(answer.body)
        return answer.status, {key.lower(): value for key, value in answer.headers.items()}, answer.body

    def _no_credential(self, what: str) -> RegistryError:
        where = f" (looked in {self.looked_in})" if self.looked_in else ""
        return RegistryError(f"{what} wants credentials and none were found{where}")

    def _refused(self, what: str, status: int) -> RegistryError:
        assert self.credential is not None
        return RegistryError(
            f"{what} refused the credentials of {self.credential} (HTTP {status}); check the user name, "
            "the token's scopes (read:packages on ghcr.io, Artifact Registry Reader on Google) and expiry"
        )

    def _authorization(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.basic and self.credential:
            return {"Authorization": httpclient.basic_auth(self.credential.username, self.credential.secret)}
        return {}

    def _fetch_token(self, params: dict[str, str], name: str, op: _Operation) -> str:
        realm = params["realm"]
        check_url(realm)
        query = {"scope": params.get("scope") or f"repository:{name}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {}
        if self.credential:
            headers["Authorization"] = httpclient.basic_auth(self.credential.username, self.credential.secret)
        status, _, body = self._open(f"{realm}?{urllib.parse.urlencode(query)}", headers, op)
        endpoint = f"token endpoint {httpclient.redact(realm)}"
        if status in (401, 403):
            raise self._refused(endpoint, status) if self.credential else self._no_credential(endpoint)
        if status != 200:
            raise RegistryError(f"{endpoint} answered HTTP {status}")
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{endpoint} sent no token")
        return token

    def _authenticate(self, challenge: str, name: str, what: str, op: _Operation) -> None:
        """Answer a 401's challenge: fetch a Bearer token, or switch to Basic with the credential."""
        scheme, params = parse_challenge(challenge)
        if scheme == "bearer" and "realm" in params:
            self.token = self._fetch_token(params, name, op)
        elif scheme == "basic":
            if not self.credential:
                raise self._no_credential(what)
            self.basic = True
        else:
            raise RegistryError(f"{what} wants {scheme or 'unknown'} auth; only Bearer and Basic are supported")

    def _get(
        self, url: str, name: str, op: _Operation, accept: str = "application/json"
    ) -> tuple[dict[str, str], bytes]:
        """GET with auth; the headers and body of a 200, or RegistryError."""
        what = f"{httpclient.redact(url)} ({name})"
        for attempt in range(2):
            status, response_headers, body = self._open(url, {**self._authorization(), "Accept": accept}, op)
            if status == 401 and attempt == 0:
                self._authenticate(response_headers.get("www-authenticate", ""), name, what, op)
                continue
            if status == 401 and self.credential:
                raise self._refused(what, status)
            if status == 401:
                raise self._no_credential(what)
            if status == 403:
                raise RegistryError(f"{what}: access denied (HTTP 403) for {self.credential or 'anonymous'}")
            if status == 404:
                raise RegistryError(f"{what}: repository {name!r} or tag not found (HTTP 404)")
            if status != 200:
                raise RegistryError(f"{what}: HTTP {status}: {body[:200]!r}")
            return response_headers, body
        raise RegistryError(f"{what}: still unauthorized after authenticating")

    def _get_json(self, url: str, name: str, op: _Operation) -> tuple[dict, dict[str, str]]:
        headers, body = self._get(url, name, op)
        try:
            data = json.loads(body)
        except ValueError:
            raise RegistryError(f"{httpclient.redact(url)} ({name}): answer is not JSON: {body[:200]!r}") from None
        if not isinstance(data, dict):
            raise RegistryError(f"{httpclient.redact(url)} ({name}): answer is not a JSON object")
        return data, headers

    def digest(self, name: str, tag: str) -> str:
        """The digest `tag` points at now (`sha256:...`): the registry's Docker-Content-Digest, or the body's hash."""
        url = f"{self.base_url}/v2/{name}/manifests/{urllib.parse.quote(tag)}"
        with httpclient.Deadline(self.timeout) as deadline:
            doing, amount = f"reading the digest of {name}:{tag}", f"the manifest of {name}:{tag} is"
            op = _Operation(doing, amount, deadline, MAX_MANIFEST_BYTES, paged=False)
            headers, body = self._get(url, name, op, accept=", ".join(MANIFEST_TYPES))
        digest = headers.get("docker-content-digest", "") or "sha256:" + hashlib.sha256(body).hexdigest()
        if not DIGEST.fullmatch(digest):
            raise RegistryError(f"{httpclient.redact(url)} ({name}): digest {digest[:80]!r} is not a sha256 digest")
        return digest

    def tags(self, name: str, page_size: int | None = None) -> list[str]:
        """Every tag of repository `name`, following `Link: <...>; rel="next"` pages, within one deadline and one
        byte budget for the whole listing."""
        url = f"{self.base_url}/v2/{name}/tags/list"
        if page_size:
            url += f"?n={page_size}"
        with httpclient.Deadline(self.timeout) as deadline:
            op = _Operation(f"listing the tags of {name}", f"the tags of {name} are", deadline, self.max_bytes)
            tags: list[str] = []
            next_url: str | None = url
            while next_url is not None:
                if op.pages == self.max_pages:
                    raise RegistryError(f"more than {self.max_pages} pages of tags; giving up")
                next_url = self._page(next_url, name, op, tags)
        return tags

    def _page(self, url: str, name: str, op: _Operation, tags: list[str]) -> str | None:
        """Read one page into `tags` (only the tags are kept); the next page's URL, or None after the last."""
        op.seen.add(url)
        data, headers = self._get_json(url, name, op)
        op.pages += 1
        if "tags" not in data:  # a 200 without the key is not an answer of the tags API
            raise RegistryError(
                f"{httpclient.redact(url)} ({name}): malformed answer, no `tags` key: {str(data)[:200]}"
            )
        page = data["tags"]
        if page is None:  # distribution answers `"tags": null` for a repository without tags
            page = []
        if not isinstance(page, list) or not all(isinstance(tag, str) for tag in page):
            raise RegistryError(f"{httpclient.redact(url)} ({name}): malformed tags list: {str(page)[:200]}")
        tags.extend(tag for tag in page if TAG.fullmatch(tag))  # no control or non-ASCII text onward
        match = _NEXT_LINK.search(headers.get("link", ""))
        if not match:
            return None
        url = urllib.parse.urljoin(url, match.group(1))
        if urllib.parse.urlsplit(url).netloc != urllib.parse.urlsplit(self.base_url).netloc:
            raise RegistryError(f"next page of {name} is on another host ({httpclient.redact(url)}); not followed")
        if url in op.seen:
            raise RegistryError(f"pagination of {name} loops back to a page already read")
        return url
