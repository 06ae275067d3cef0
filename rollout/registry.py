"""Read-only OCI distribution client: list an image's tags with anonymous Bearer-token auth and pagination."""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass

from rollout import httpclient

DEFAULT_TIMEOUT_S = 15.0
MAX_PAGES = 100  # ghcr.io pages at 100 tags by default: 10,000 tags is far beyond any real image
MAX_PAGE_BYTES = 8 * 1024 * 1024  # 10,000 tags of 128 characters is under 1.5 MB
# The distribution spec's tag grammar, ASCII only: anything else from a registry is passed over.
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class RegistryError(RuntimeError):
    """The registry is unreachable, refused us, or sent an answer we cannot read."""


@dataclass(frozen=True)
class ImageRef:
    """Where an image lives: the registry's base URL and the repository name inside it."""

    base_url: str
    name: str


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
    return ImageRef(base_url=base, name=name)


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
    """Lists tags of repositories on one registry; holds the anonymous pull token once fetched."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT_S, max_pages: int = MAX_PAGES) -> None:
        check_url(base_url)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_pages = max_pages
        self.token: str | None = None

    def _open(self, url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        try:
            answer = httpclient.request(
                url, timeout=self.timeout, max_bytes=MAX_PAGE_BYTES, headers={"Accept": "application/json", **headers}
            )
        except httpclient.HttpError as exc:
            raise RegistryError(f"registry at {exc}") from None
        return answer.status, answer.headers, answer.body

    def _fetch_token(self, challenge: str, name: str) -> str:
        scheme, params = parse_challenge(challenge)
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(
                f"registry wants {scheme or 'unknown'} auth ({challenge!r}); only anonymous Bearer is supported"
            )
        realm = params["realm"]
        check_url(realm)
        query = {"scope": params.get("scope") or f"repository:{name}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        status, _, body = self._open(f"{realm}?{urllib.parse.urlencode(query)}", {})
        if status != 200:
            raise RegistryError(f"token endpoint {httpclient.redact(realm)} answered HTTP {status}")
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token endpoint {httpclient.redact(realm)} sent no token")
        return token

    def _get_json(self, url: str, name: str) -> tuple[dict, dict[str, str]]:
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            status, response_headers, body = self._open(url, headers)
            if status == 401 and attempt == 0:
                challenge = {k.lower(): v for k, v in response_headers.items()}.get("www-authenticate", "")
                self.token = self._fetch_token(challenge, name)
                continue
            if status == 404:
                raise RegistryError(f"{httpclient.redact(url)} ({name}): repository {name!r} not found (HTTP 404)")
            if status != 200:
                raise RegistryError(f"{httpclient.redact(url)} ({name}): HTTP {status}: {body[:200]!r}")
            try:
                data = json.loads(body)
            except ValueError:
                raise RegistryError(f"{httpclient.redact(url)} ({name}): answer is not JSON: {body[:200]!r}") from None
            if not isinstance(data, dict):
                raise RegistryError(f"{httpclient.redact(url)} ({name}): answer is not a JSON object")
            return data, response_headers
        raise RegistryError(f"{httpclient.redact(url)} ({name}): still unauthorized after fetching a token")

    def tags(self, name: str, page_size: int | None = None) -> list[str]:
        """Every tag of repository `name`, following `Link: <...>; rel="next"` pages."""
        url = f"{self.base_url}/v2/{name}/tags/list"
        if page_size:
            url += f"?n={page_size}"
        tags: list[str] = []
        seen: set[str] = set()
        for _ in range(self.max_pages):
            seen.add(url)
            data, headers = self._get_json(url, name)
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
            link = headers.get("link", "")
            match = _NEXT_LINK.search(link)
            if not match:
                return tags
            url = urllib.parse.urljoin(url, match.group(1))
            if urllib.parse.urlsplit(url).netloc != urllib.parse.urlsplit(self.base_url).netloc:
                raise RegistryError(f"next page of {name} is on another host ({httpclient.redact(url)}); not followed")
            if url in seen:
                raise RegistryError(f"pagination of {name} loops back to a page already read")
        raise RegistryError(f"more than {self.max_pages} pages of tags; giving up")
