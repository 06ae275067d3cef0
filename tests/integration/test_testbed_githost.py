"""testkit/githost.py, the stand-in for GitHub's pull-request API, driven by githubkit (what the agent uses) and
by raw HTTP where githubkit would refuse to send the request: GitHub's request schemas enforced, GitHub's
answers accepted by githubkit's response models, and real git behind it (a bare origin)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from githubkit import GitHub
from githubkit.exception import RequestFailed
from githubkit_schemas.latest.models import IssueComment, PullRequest, PullRequestSimple, Repository
from pydantic import BaseModel, ValidationError

from testkit.githost import GitHost, schema_errors
from tests.integration.conftest import Repo, git

OWNER, REPO, TOKEN = "acme", "istio-canary", "test-token"


def push_branch(repo: Repo, branch: str, weight: int) -> str:
    """A branch off main with one commit on the stack file, pushed to origin; returns its sha."""
    git(repo.work, "checkout", "-q", "-B", branch, "main")
    repo.stack.write_text(re.sub(r"canaryWeight: \d+", f"canaryWeight: {weight}", repo.stack.read_text()))
    git(repo.work, "commit", "-qam", f"canary: {weight}%")
    git(repo.work, "push", "-q", "origin", f"+HEAD:refs/heads/{branch}")
    sha = repo.head()
    git(repo.work, "checkout", "-q", "main")
    return sha


@pytest.fixture
def host(repo: Repo) -> Iterator[GitHost]:
    with GitHost(OWNER, REPO, token=TOKEN, origin=repo.origin) as stand_in:
        yield stand_in


@pytest.fixture
def gh(host: GitHost) -> GitHub:
    # auto_retry off: a 5xx would otherwise be retried after 1, 4 and 9 s (githubkit's default)
    return GitHub(TOKEN, base_url=host.url, auto_retry=False)


def refusal(call) -> tuple[int, dict]:
    with pytest.raises(RequestFailed) as failed:
        call()
    return failed.value.response.status_code, failed.value.response.json()


def test_the_agents_calls_through_githubkit(host, gh, repo):
    sha = push_branch(repo, "canary/60", 60)
    assert gh.rest.pulls.list(OWNER, REPO, head=f"{OWNER}:canary/60", state="open").parsed_data == []

    created = gh.rest.pulls.create(OWNER, REPO, title="canary: 60%", head="canary/60", base="main", body="evidence")
    pr = created.parsed_data
    assert created.status_code == 201 and created.headers["Location"] == pr.url
    assert (pr.number, pr.state, pr.head.ref, pr.head.sha, pr.base.ref) == (1, "open", "canary/60", sha, "main")
    assert (pr.title, pr.body, pr.html_url) == ("canary: 60%", "evidence", f"{host.url}/{OWNER}/{REPO}/pull/1")
    assert (pr.commits, pr.changed_files, pr.additions, pr.deletions, pr.merged) == (1, 1, 1, 1, False)

    [listed] = gh.rest.pulls.list(OWNER, REPO, head=f"{OWNER}:canary/60", state="open").parsed_data
    assert (listed.number, listed.head.ref, listed.title) == (1, "canary/60", "canary: 60%")

    comment = gh.rest.issues.create_comment(OWNER, REPO, pr.number, body="still passing").parsed_data
    assert comment.body == "still passing" and comment.html_url.endswith(f"/pull/1#issuecomment-{comment.id}")
    assert [c.body for c in gh.rest.issues.list_comments(OWNER, REPO, pr.number).parsed_data] == ["still passing"]

    updated = gh.rest.pulls.update(OWNER, REPO, pr.number, body="new evidence", state="closed").parsed_data
    assert (updated.state, updated.body, updated.closed_at is not None) == ("closed", "new evidence", True)
    assert gh.rest.pulls.get(OWNER, REPO, pr.number).parsed_data.state == "closed"
    assert gh.rest.pulls.list(OWNER, REPO, head=f"{OWNER}:canary/60", state="open").parsed_data == []

    # What the stand-in recorded: every call, authenticated, with githubkit's API version and the JSON sent.
    # (githubkit's cache revalidates each GET: an unchanged answer is a 304, which hishel may follow with a plain GET)
    assert all(r.status < 400 for r in host.requests)
    assert [(r.method, r.path, r.status) for r in host.requests if r.status != 304] == [
        ("GET", f"/repos/{OWNER}/{REPO}/pulls", 200),
        ("POST", f"/repos/{OWNER}/{REPO}/pulls", 201),
        ("GET", f"/repos/{OWNER}/{REPO}/pulls", 200),
        ("POST", f"/repos/{OWNER}/{REPO}/issues/1/comments", 201),
        ("GET", f"/repos/{OWNER}/{REPO}/issues/1/comments", 200),
        ("PATCH", f"/repos/{OWNER}/{REPO}/pulls/1", 200),
        ("GET", f"/repos/{OWNER}/{REPO}/pulls/1", 200),
        ("GET", f"/repos/{OWNER}/{REPO}/pulls", 200),
    ]
    assert host.requests[0].query == {"head": [f"{OWNER}:canary/60"], "state": ["open"]}
    assert host.requests[1].body == {"title": "canary: 60%", "head": "canary/60", "base": "main", "body": "evidence"}
    assert {r.header("Authorization") for r in host.requests} == {f"token {TOKEN}"}
    assert {r.header("X-GitHub-Api-Version") for r in host.requests} == {"2026-03-10"}


def names(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def test_answers_conform_to_githubs_response_models_strictly(host, gh, repo):
    push_branch(repo, "canary/10", 10)
    gh.rest.pulls.create(OWNER, REPO, title="canary: 10%", head="canary/10", base="main")
    gh.rest.issues.create_comment(OWNER, REPO, 1, body="hello")
    headers = {"Authorization": f"token {TOKEN}", "X-GitHub-Api-Version": "2026-03-10"}
    with httpx.Client(base_url=host.url, headers=headers, timeout=5) as client:
        api = f"/repos/{OWNER}/{REPO}"
        pull = client.get(f"{api}/pulls/1").json()
        PullRequest.model_validate_json(json.dumps(pull), strict=True)
        assert set(pull) <= names(PullRequest) and set(pull["base"]["repo"]) <= names(Repository)
        for item in client.get(f"{api}/pulls").json():
            PullRequestSimple.model_validate_json(json.dumps(item), strict=True)
            assert set(item) <= names(PullRequestSimple)
        for item in client.get(f"{api}/issues/1/comments").json():
            IssueComment.model_validate_json(json.dumps(item), strict=True)
            assert set(item) <= names(IssueComment)
        # 2022-11-28 (also GitHub's default without the header) still has merge_commit_sha.
        assert "merge_commit_sha" in client.get(f"{api}/pulls/1", headers={"X-GitHub-Api-Version": "2022-11-28"}).json()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"title": 5, "head": "canary/60", "base": "main"}, "For 'properties/title', 5 is not a string."),
        ({"title": "t", "base": "main"}, '"head" wasn\'t supplied.'),
        ({"title": "t", "head": "canary/60", "base": "main", "draft": "true"}, '"true" is not a boolean.'),
        ({"title": "t", "head": "canary/60", "base": "main", "body": None}, "'properties/body', nil is not a string."),
        ({"title": "t", "head": "canary/60", "base": "main", "bdy": "x"}, '"bdy" is not a permitted key.'),
        ({"head": "canary/60", "base": "main"}, '"title" wasn\'t supplied.'),
        (["title", "head"], "is not an object."),
    ],
)
def test_a_body_off_githubs_schema_is_422(host, repo, body, problem):
    push_branch(repo, "canary/60", 60)
    raw = GitHub(TOKEN, base_url=host.url, rest_api_validate_body=False, auto_retry=False)  # send it anyway
    status, answer = refusal(lambda: raw.rest.pulls.create(OWNER, REPO, data=body))
    assert status == 422
    assert answer["message"].startswith("Invalid request.") and problem in answer["message"]
    assert answer["documentation_url"].endswith("#create-a-pull-request")
    assert host.pulls == {} and host.refused()[-1].body == body


def test_githubkit_checks_bodies_itself_unless_told_not_to(host):
    gh = GitHub(TOKEN, base_url=host.url)
    with pytest.raises(ValidationError, match="head"):
        gh.rest.pulls.create(OWNER, REPO, data={"title": "no head", "base": "main"})
    assert host.requests == []  # refused before sending: the stand-in's check is for other paths


def test_comment_and_update_bodies_are_checked_too(host, gh, repo):
    push_branch(repo, "canary/60", 60)
    gh.rest.pulls.create(OWNER, REPO, title="t", head="canary/60", base="main")
    raw = GitHub(TOKEN, base_url=host.url, rest_api_validate_body=False, auto_retry=False)
    status, answer = refusal(lambda: raw.rest.issues.create_comment(OWNER, REPO, 1, data={"bdy": "typo"}))
    assert status == 422 and '"body" wasn\'t supplied.' in answer["message"]
    status, answer = refusal(lambda: raw.rest.pulls.update(OWNER, REPO, 1, data={"state": "merged"}))
    assert status == 422 and "'properties/state'" in answer["message"]
    assert host.comments == [] and host.pulls[1].state == "open"


def test_not_json_is_400_and_unknown_routes_404(host):
    headers = {"Authorization": f"token {TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(base_url=host.url, headers=headers, timeout=5) as client:
        answer = client.post(f"/repos/{OWNER}/{REPO}/pulls", content=b"{not json")
        assert (answer.status_code, answer.json()["message"]) == (400, "Problems parsing JSON")
        for path in (f"/repos/{OWNER}/other/pulls", f"/repos/{OWNER}/{REPO}/pulls/7", "/user", f"/repos/{OWNER}"):
            assert client.get(path).status_code == 404, path
        assert client.delete(f"/repos/{OWNER}/{REPO}/pulls").status_code == 404
        version = client.get(f"/repos/{OWNER}/{REPO}/pulls", headers={"X-GitHub-Api-Version": "2021-01-01"})
        assert version.status_code == 400
        assert client.get(f"/repos/{OWNER.upper()}/{REPO}/pulls").status_code == 200  # GitHub ignores case


def test_a_token_is_required_and_must_be_right(host):
    wrong = GitHub("wrong", base_url=host.url)  # keep the client referenced: githubkit's namespaces hold it weakly
    status, answer = refusal(lambda: wrong.rest.pulls.list(OWNER, REPO))
    assert (status, answer["message"]) == (401, "Bad credentials")
    with httpx.Client(base_url=host.url, timeout=5) as client:
        answer = client.get(f"/repos/{OWNER}/{REPO}/pulls")
        assert (answer.status_code, answer.json()["message"]) == (401, "Requires authentication")
        bearer = client.get(f"/repos/{OWNER}/{REPO}/pulls", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200  # GitHub takes either scheme
    assert [r.status for r in host.requests] == [401, 401, 200]


def test_git_decides_what_a_pull_request_may_be(host, gh, repo):
    status, answer = refusal(lambda: gh.rest.pulls.create(OWNER, REPO, title="t", head="never-pushed", base="main"))
    assert (status, answer["errors"]) == (422, [{"resource": "PullRequest", "code": "invalid", "field": "head"}])
    git(repo.work, "push", "-q", "origin", "main:refs/heads/same-as-main")
    status, answer = refusal(lambda: gh.rest.pulls.create(OWNER, REPO, title="t", head="same-as-main", base="main"))
    assert status == 422 and answer["errors"][0]["message"] == "No commits between main and same-as-main"
    push_branch(repo, "canary/60", 60)
    status, answer = refusal(lambda: gh.rest.pulls.create(OWNER, REPO, title="t", head="canary/60", base="nope"))
    assert status == 422 and answer["errors"][0]["field"] == "base"
    gh.rest.pulls.create(OWNER, REPO, title="t", head=f"{OWNER}:canary/60", base="main")  # owner:branch works too
    status, answer = refusal(lambda: gh.rest.pulls.create(OWNER, REPO, title="again", head="canary/60", base="main"))
    assert status == 422 and answer["errors"][0]["message"] == f"A pull request already exists for {OWNER}:canary/60."
    status, _ = refusal(lambda: gh.rest.pulls.create(OWNER, REPO, title="fork", head="mallory:canary/60", base="main"))
    assert status == 422
    assert [p.number for p in host.open_pulls("canary/60")] == [1]


def test_a_pushed_branch_moves_the_pull_request_head(host, gh, repo):
    first = push_branch(repo, "canary/60", 60)
    gh.rest.pulls.create(OWNER, REPO, title="t", head="canary/60", base="main")
    assert gh.rest.pulls.get(OWNER, REPO, 1).parsed_data.head.sha == first
    second = push_branch(repo, "canary/60", 61)  # force-pushed: a new commit off main
    assert second != first and gh.rest.pulls.get(OWNER, REPO, 1).parsed_data.head.sha == second


@pytest.mark.parametrize("method", ["merge", "squash"])
def test_merge_lands_on_main_in_origin(host, gh, repo, method):
    push_branch(repo, "canary/60", 60)
    pr = gh.rest.pulls.create(OWNER, REPO, title="canary: 60%", head="canary/60", base="main").parsed_data
    sha = host.merge(pr.number, method=method, delete_branch=True)
    assert repo.origin_head() == sha
    shown = git(repo.origin, "show", "main:Pulumi.dev.yaml")
    assert "canaryWeight: 60" in shown
    subject = git(repo.origin, "log", "-1", "--format=%s", "main")
    expected = f"Merge pull request #1 from {OWNER}/canary/60" if method == "merge" else "canary: 60% (#1)"
    assert subject.strip() == expected
    merged = gh.rest.pulls.get(OWNER, REPO, pr.number).parsed_data
    assert (merged.state, merged.merged, merged.merged_at is not None) == ("closed", True, True)
    assert git(repo.origin, "branch", "--list", "canary/60") == ""  # deleted, as GitHub's setting does
    # A new step on a fresh branch off the merged main is a new pull request.
    git(repo.work, "pull", "-q", "origin", "main")
    push_branch(repo, "canary/100", 100)
    assert gh.rest.pulls.create(OWNER, REPO, title="t", head="canary/100", base="main").parsed_data.number == 2


def test_list_filters_like_github(host, gh, repo):
    for weight in (10, 60, 100):
        push_branch(repo, f"canary/{weight}", weight)
        gh.rest.pulls.create(OWNER, REPO, title=f"{weight}", head=f"canary/{weight}", base="main")
    host.close_pull(1)

    def numbers(**query) -> list[int]:
        return [p.number for p in gh.rest.pulls.list(OWNER, REPO, **query).parsed_data]

    assert numbers() == [3, 2]  # open, newest first
    assert numbers(state="all") == [3, 2, 1]
    assert numbers(state="closed") == [1]
    assert numbers(head=f"{OWNER}:canary/60") == [2]
    assert numbers(head="canary/60") == [3, 2]  # without owner: GitHub ignores the filter
    assert numbers(head=f"{OWNER}:canary/10") == []  # closed
    assert numbers(base="other") == []
    # Pages: githubkit follows the Link header.
    pages = list(gh.rest.paginate(gh.rest.pulls.list, owner=OWNER, repo=REPO, state="all", per_page=2))
    assert [p.number for p in pages] == [3, 2, 1]
    first_page = next(r for r in host.requests if r.query.get("per_page") == ["2"])
    assert 'rel="next"' in first_page.response_headers["Link"]


def test_cached_lists_are_revalidated_never_stale(host, gh, repo):
    push_branch(repo, "canary/60", 60)
    assert gh.rest.pulls.list(OWNER, REPO).parsed_data == []
    assert gh.rest.pulls.list(OWNER, REPO).parsed_data == []
    gh.rest.pulls.create(OWNER, REPO, title="t", head="canary/60", base="main")
    assert len(gh.rest.pulls.list(OWNER, REPO).parsed_data) == 1
    statuses = [r.status for r in host.calls("GET")]
    assert statuses == [200, 304, 200]  # githubkit's cache asks with If-None-Match; a change is a new 200


def test_injected_failures_then_recovery(host, gh):
    host.inject(502, message="Server Error")
    status, _ = refusal(lambda: gh.rest.pulls.list(OWNER, REPO))
    assert status == 502
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"}
    host.inject(403, message="API rate limit exceeded", headers=reset)
    with pytest.raises(RequestFailed) as limited:
        gh.rest.pulls.list(OWNER, REPO)
    assert type(limited.value).__name__ == "PrimaryRateLimitExceeded"
    assert gh.rest.pulls.list(OWNER, REPO).parsed_data == []


def test_schema_errors_reads_githubs_models():
    from githubkit_schemas.latest.models import ReposOwnerRepoPullsPostBody

    assert schema_errors(ReposOwnerRepoPullsPostBody, {"head": "a", "base": "b", "title": "t", "draft": True}) == []
    assert schema_errors(ReposOwnerRepoPullsPostBody, {"head": "a", "base": "b", "issue": "7"}) == [
        "For 'properties/issue', \"7\" is not an integer."
    ]
