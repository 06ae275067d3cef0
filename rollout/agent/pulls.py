"""Pull requests through the Git host's API, with githubkit (generated from GitHub's own API description).

One error type: PullError. Only the calls the agent needs: is a pull request for this branch open, open one,
retitle one (an image proposal updated in place).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

GITHUB_API = "https://api.github.com"


class PullError(RuntimeError):
    """The Git host refused or could not be reached; the message names no credential."""


def owner_repo(repo_url: str) -> tuple[str, str]:
    """`https://github.com/acme/shop.git` -> ("acme", "shop")."""
    path = urllib.parse.urlsplit(repo_url).path.strip("/").removesuffix(".git")
    parts = path.split("/")
    if len(parts) < 2 or not all(parts[-2:]):
        raise PullError(f"cannot tell owner/repo from {urllib.parse.urlsplit(repo_url).path!r}")
    return parts[-2], parts[-1]


@dataclass(frozen=True)
class Pull:
    """An open pull request: its number (for updates) and its page."""

    number: int
    url: str


class PullRequests:
    """The repository's pull requests."""

    def __init__(self, repo_url: str, token: str, api_url: str = GITHUB_API) -> None:
        from githubkit import GitHub

        self.owner, self.repo = owner_repo(repo_url)
        # auto_retry=False: githubkit would sleep 1+4+9 s on a 5xx (or until a rate-limit reset) inside one
        # iteration; the loop retries at the next interval instead.
        self.github: Any = GitHub(token, base_url=api_url.rstrip("/") + "/", auto_retry=False)

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        from githubkit.exception import GitHubException

        try:
            return call(*args, **kwargs).json()
        except GitHubException as exc:
            raise PullError(f"{what}: {type(exc).__name__}: {str(exc)[:200]}") from None

    def open_for(self, branch: str) -> Pull | None:
        """The open pull request from `branch`, or None."""
        pulls = self._call(
            "list pull requests",
            self.github.rest.pulls.list,
            self.owner,
            self.repo,
            head=f"{self.owner}:{branch}",
            state="open",
        )
        if not pulls:
            return None
        return Pull(int(pulls[0]["number"]), str(pulls[0].get("html_url") or ""))

    def update(self, number: int, title: str, body: str) -> None:
        """Retitle and rewrite the body of pull request `number`."""
        self._call(
            "update a pull request",
            self.github.rest.pulls.update,
            self.owner,
            self.repo,
            number,
            title=title,
            body=body,
        )

    def create(self, branch: str, base: str, title: str, body: str) -> str:
        """Open a pull request from `branch` into `base`; its URL."""
        pull = self._call(
            "open a pull request",
            self.github.rest.pulls.create,
            self.owner,
            self.repo,
            title=title,
            head=branch,
            base=base,
            body=body,
        )
        return str(pull.get("html_url") or pull.get("url") or "")
