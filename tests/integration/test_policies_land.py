"""Every tag policy docs/release.md shows lands a commit: `canary watch-images` against a real registry moves the
canary line to the tag the policy picks, the stack file still validates (the program's rules, `canary status`), a
second run proposes nothing, and a whole release (`canary promote` up to `--finish`) makes that tag GA.

The policies are read from the docs ("### Tag policies": the table's backticked `kind:argument` examples, `kind:asc|desc`
in its policy column, and the filter-and-extract example after it), so a newly documented policy fails here until
it has a case in CASES: a realistic tag list and the tag Flux's policy picks from it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from istio_canary import gitops
from istio_canary.actions.watch_images import WatchImagesRequest
from istio_canary.agent import images
from istio_canary.cli import EXIT_INCONCLUSIVE, EXIT_OK, EXIT_REFUSED
from istio_canary.stackfile import StackFile
from testkit.stackfiles import policy_stack
from tests.integration import servers
from tests.integration.cli import canary
from tests.integration.conftest import ROOT, Repo, git, project_dir

DOCS = ROOT / "docs" / "release.md"
KINDS = ("semver", "glob", "numerical", "alphabetical")
# A registry like podinfo's: releases, pre-releases, a moving tag, a branch build.
RELEASES = [
    "5.9.9",
    "6.2.0",
    "6.3.2",
    "6.4.0",
    "6.8.0",
    "6.9.0",
    "6.9.1",
    "6.10.0-rc.1",
    "6.14.2",
    "6.15.1",
    "6.16.0-rc.2",
    "7.0.0",
    "latest",
    "main-abc123",
]
MAIN_BUILDS = [
    "main-0a1b2c-1699999999",
    "main-abc123-1700000000",
    "main-def456-1700000500",
    "feature-x-1800000000",  # newer, but not a main build: the filter leaves it
    "6.9.1",
    "latest",
]
TIMESTAMPS = ["2025-06-30T23-59-59Z", "2025-07-01T08-00-00Z", "2025-07-03T10-00-00Z"]


@dataclass(frozen=True)
class Policy:
    """A documented policy with its filter and extract."""

    policy: str
    tag_filter: str = ""
    extract: str = ""

    def __str__(self) -> str:
        return " ".join(part for part in (self.policy, self.tag_filter, self.extract) if part)


@dataclass(frozen=True)
class Case:
    tags: list[str]
    current: str  # gaVersion and canaryVersion before the first run (no release runs)
    expected: str


# The tag each documented policy picks, from a list where a wrong order would pick another.
CASES = {
    Policy("semver:6.x"): Case(RELEASES, "6.9.0", "6.15.1"),
    Policy("semver:>=6.15.0 <7"): Case(RELEASES, "6.9.0", "6.15.1"),
    Policy("semver:~6.14"): Case(RELEASES, "6.9.0", "6.14.2"),
    Policy("semver:^6.9.0"): Case(RELEASES, "6.9.0", "6.15.1"),
    Policy("semver:6.1 - 6.4"): Case(RELEASES, "6.2.0", "6.4.0"),
    Policy("semver:5.x || 6.x"): Case(RELEASES, "6.9.0", "6.15.1"),
    # Flux's release-candidate idiom: the range names a pre-release, so 6.16.0-rc.2 is a candidate; 7.0.0 is out.
    Policy("semver:^6.x-0"): Case(RELEASES, "6.9.0", "6.16.0-rc.2"),
    Policy("glob:6.9.*"): Case(RELEASES, "6.9.0", "6.9.1"),
    # Build numbers after semver: numbers, not strings (100 > 42 > 7), from a stack whose versions are semver.
    Policy("numerical:asc"): Case(["7", "41", "42", "100"], "6.9.1", "100"),
    Policy("numerical:desc"): Case(["12", "20", "3"], "6.9.1", "3"),
    # The case: alphabetical:asc with no filter, current 6.9.1 no longer listed, timestamps only.
    Policy("alphabetical:asc"): Case(TIMESTAMPS, "6.9.1", "2025-07-03T10-00-00Z"),
    Policy("alphabetical:desc"): Case(TIMESTAMPS, "6.9.1", "2025-06-30T23-59-59Z"),
    Policy("numerical:asc", "^main-[a-f0-9]+-(?P<ts>[0-9]+)", "$ts"): Case(
        MAIN_BUILDS, "6.9.1", "main-def456-1700000500"
    ),
}


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]


def documented() -> list[Policy]:
    """The policies docs/release.md shows: from the table under "### Tag policies" and the paragraph after it."""
    section = DOCS.read_text().split("### Tag policies", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = _cells(rows[0])
    found: list[Policy] = []
    for row in rows[2:]:
        cells = dict(zip(header, _cells(row), strict=False))
        for column in ("policy", "example"):
            for item in re.findall(r"`([^`]+)`", cells.get(column, "")):
                text = item.replace("\\|", "|")
                kind, colon, argument = text.partition(":")
                if kind not in KINDS or not colon or not argument or argument.startswith("<"):
                    continue  # not a policy, or a placeholder such as semver:<range>
                if kind in ("numerical", "alphabetical") and argument == "asc|desc":
                    found += [Policy(f"{kind}:asc"), Policy(f"{kind}:desc")]
                else:
                    found.append(Policy(text))
    # The filter-and-extract example: `canaryTagPolicy: ...`, `imageTagFilter: ...`, `imageTagExtract: ...`.
    keys = dict(re.findall(r"`(canaryTagPolicy|imageTagFilter|imageTagExtract): ([^`]+)`", section))
    if keys:
        found.append(Policy(keys["canaryTagPolicy"], keys.get("imageTagFilter", ""), keys.get("imageTagExtract", "")))
    return list(dict.fromkeys(found))


def test_the_docs_show_every_kind_and_each_has_a_case():
    shown = documented()
    assert {policy.policy.split(":")[0] for policy in shown} == set(KINDS)
    assert any(policy.tag_filter and policy.extract for policy in shown)
    missing = [str(policy) for policy in shown if policy not in CASES]
    assert not missing, f"documented policies without a case in CASES (add a tag list and Flux's pick): {missing}"


def watch(capsys, repo: Repo, url: str, *extra: object):
    return canary(capsys, "watch-images", "-C", repo.work, "--registry-url", url, "--no-notify", *extra)


def value(repo: Repo, key: str) -> str:
    """The key as the program reads the committed stack file (full validation)."""
    view = StackFile(repo.stack).view()
    return view.app.canary_version if key == "canaryVersion" else view.app.ga_version


def setup(repo: Repo, url: str, policy: Policy, tags: list[str], current: str, name: str) -> None:
    servers.push_tags(url, f"acme/{name}", tags)
    repo.write_stack(
        policy_stack(policy.policy, current, current, f"ghcr.io/acme/{name}", policy.tag_filter, policy.extract)
    )


@pytest.mark.parametrize("policy", documented(), ids=str)
def test_a_documented_policy_lands_a_commit_then_a_release(capsys, repo, oci_registry, policy):
    case = CASES[policy]
    setup(repo, oci_registry, policy, case.tags, case.current, f"land-{documented().index(policy)}")
    before = repo.count()

    result = watch(capsys, repo, oci_registry)
    assert result.code == EXIT_OK, result.err
    assert repo.count() == before + 1
    assert repo.message().startswith(
        f"canary: new canary image podinfo {case.expected} (was {case.current}, policy {policy.policy})"
    )
    assert (value(repo, "canaryVersion"), value(repo, "gaVersion")) == (case.expected, case.current)
    status = canary(capsys, "status", "-C", repo.work)
    assert status.code == EXIT_OK, status.err
    assert case.expected in status.out

    again = watch(capsys, repo, oci_registry)
    assert again.code == EXIT_INCONCLUSIVE, again.err
    assert repo.count() == before + 1

    # A release makes the tag GA: the first step, two forced steps (no Prometheus here), the finish.
    for args in ((), ("--force",), ("--force",), ("--finish", "--force")):
        step = canary(capsys, "promote", "-C", repo.work, "--no-notify", *args)
        assert step.code == EXIT_OK, step.err
    assert (value(repo, "canaryVersion"), value(repo, "gaVersion")) == (case.expected, case.expected)
    assert watch(capsys, repo, oci_registry).code == EXIT_INCONCLUSIVE


# --- alphabetical:asc with no filter after semver: what the registry still lists decides ------------------------------


def test_alphabetical_after_semver_waits_while_the_semver_tag_is_still_listed(capsys, repo, oci_registry):
    # 6.9.1 sorts after every timestamp and is still listed: Flux's pick is 6.9.1 itself, so nothing is proposed.
    setup(repo, oci_registry, Policy("alphabetical:asc"), [*TIMESTAMPS, "6.9.1"], "6.9.1", "alpha-listed")
    head = repo.head()
    result = watch(capsys, repo, oci_registry)
    assert result.code == EXIT_INCONCLUSIVE, result.err
    assert repo.head() == head


def test_alphabetical_after_semver_with_an_older_semver_tag_listed_picks_what_flux_picks(capsys, repo, oci_registry):
    # 6.9.1 is gone, 6.8.0 is still listed: in plain string order 6.8.0 is after every 2025-... timestamp, so Flux's
    # alphabetical:asc picks it, and with the current tag unlisted it is no floor: the pick is an older release.
    # A filter (^[0-9]{4}-) is the way to run timestamps; docs/release.md says so.
    setup(repo, oci_registry, Policy("alphabetical:asc"), [*TIMESTAMPS, "6.8.0"], "6.9.1", "alpha-older")
    result = watch(capsys, repo, oci_registry)
    assert result.code == EXIT_OK, result.err
    assert value(repo, "canaryVersion") == "6.8.0"


def test_alphabetical_after_semver_with_a_timestamp_filter_picks_the_newest_timestamp(capsys, repo, oci_registry):
    policy = Policy("alphabetical:asc", "^[0-9]{4}-[0-9]{2}-[0-9]{2}T")
    setup(repo, oci_registry, policy, [*TIMESTAMPS, "6.8.0", "6.9.1"], "6.9.1", "alpha-filtered")
    result = watch(capsys, repo, oci_registry)
    assert result.code == EXIT_OK, result.err
    assert value(repo, "canaryVersion") == "2025-07-03T10-00-00Z"


def test_cosign_signature_tags_are_no_candidates_as_in_flux(capsys, repo, oci_registry):
    # Flux's ImageRepository drops `^.*\\.sig$` before any policy: without that, alphabetical:asc would pick the
    # signature (`sha256-...` sorts after `2025-...`) and numerical would fail on it.
    signature = "sha256-" + "ab" * 32 + ".sig"
    setup(repo, oci_registry, Policy("alphabetical:asc"), [*TIMESTAMPS, signature], "6.9.1", "signed")
    result = watch(capsys, repo, oci_registry)
    assert result.code == EXIT_OK, result.err
    assert value(repo, "canaryVersion") == "2025-07-03T10-00-00Z"
    setup(repo, oci_registry, Policy("numerical:asc"), ["41", "42", signature], "6.9.1", "signed-numbers")
    result = watch(capsys, repo, oci_registry)
    assert result.code == EXIT_OK, result.err
    assert value(repo, "canaryVersion") == "42"


# --- refusals: a clear message naming the tag and a filter, no commit ----------------------------------------------


def test_numerical_over_a_tag_that_is_no_number_is_refused_naming_it(capsys, repo, oci_registry):
    setup(repo, oci_registry, Policy("numerical:asc"), ["41", "42", "latest"], "6.9.1", "numbers-and-latest")
    head = repo.head()
    result = watch(capsys, repo, oci_registry)
    assert result.code == EXIT_REFUSED
    assert "'latest'" in result.err
    assert "imageTagFilter" in result.err
    assert repo.head() == head
    assert git(repo.work, "status", "--porcelain") == ""


def test_a_pick_the_version_key_cannot_hold_is_refused_with_a_filter_to_set(capsys, repo, oci_registry):
    # alphabetical:asc over timestamps and `latest`: Flux picks latest ("l" sorts after digits); no commit names it.
    setup(repo, oci_registry, Policy("alphabetical:asc"), [*TIMESTAMPS, "latest"], "6.9.1", "stamps-and-latest")
    head = repo.head()
    for extra in ((), ("--dry-run",)):
        result = watch(capsys, repo, oci_registry, *extra)
        assert result.code == EXIT_REFUSED
        assert "alphabetical:asc picks 'latest'" in result.err
        assert "canaryVersion cannot hold it" in result.err
        assert "moves with every push" in result.err
        assert "imageTagFilter" in result.err
    assert repo.head() == head
    assert git(repo.work, "status", "--porcelain") == ""


def test_the_picked_tag_is_committed_in_pulumi_form(capsys, repo, oci_registry):
    # A build number is written quoted, as `pulumi config set` writes it ("100" would read back as a number).
    setup(repo, oci_registry, Policy("numerical:asc"), ["99", "100"], "6.9.1", "pulumi-form")
    assert watch(capsys, repo, oci_registry).code == EXIT_OK
    assert 'istio-canary:canaryVersion: "100"  #' in Path(repo.stack).read_text()


def test_the_agents_image_watch_reports_the_refusal_and_pushes_nothing(caplog, repo, oci_registry):
    # The agent takes the same action in-process (canaryPromotion auto: straight to main): the line fails, its log
    # line names the tag and the filter to set, and the origin does not move.
    setup(repo, oci_registry, Policy("numerical:asc"), ["41", "42", "latest"], "6.9.1", "agent-numbers")
    origin, notices = repo.origin_head(), []
    view = StackFile(repo.stack).view()
    request = WatchImagesRequest(repo.work, "dev", registry_url=oci_registry)
    with caplog.at_level(logging.WARNING, logger="canary.agent"):
        outcomes = images.watch("dev", repo.work, view, repo.stack.name, request, None, notices.append)
    assert outcomes == {"canary": images.FAILED}
    assert "watch-images exited 4" in caplog.text
    assert "'latest'" in caplog.text and "imageTagFilter" in caplog.text
    assert (repo.origin_head(), notices) == (origin, [])


# --- canary plan orders a new tag by the stack's policy ---------------------------------------------------------------

GOLDEN_BUMP = ROOT / "tests" / "golden" / "plan" / "tag-bump.preview.json"


@pytest.mark.parametrize(
    ("old", "new", "policy", "words"),
    [
        ("42", "100", "numerical:asc", "Starts a release of podinfo 100 (newer than 42 by numerical:asc) while"),
        ("6.9.1", "1700000000", "numerical:asc", "Starts a release of podinfo 1700000000 (numerical:asc does not "),
        ("100", "42", "numerical:asc", "Starts a release of podinfo 42 (older than 100 by numerical:asc) while"),
    ],
)
def test_canary_plan_orders_a_new_tag_by_the_stacks_policy(capsys, tmp_path, old, new, policy, words):
    # The captured preview of a tag bump under traffic, its tags replaced by the policy's.
    preview = tmp_path / "preview.json"
    tags = {"6.9.0": old, "6.9.1": new}
    preview.write_text(re.sub(r"podinfo:(6\.9\.[01])\b", lambda m: f"podinfo:{tags[m[1]]}", GOLDEN_BUMP.read_text()))
    stack = policy_stack(policy, "6.8.0", new, "ghcr.io/stefanprodan/podinfo", weight=10, namespace="plan")
    result = canary(capsys, "plan", "-C", project_dir(tmp_path / "project", stack), "--strict", "--preview", preview)
    assert result.code == EXIT_OK, result.err
    assert f"**{words}" in result.out
    assert ("goes back from" in result.out) == words.startswith(f"Starts a release of podinfo {new} (older")


# --- the rolled-back memory is exact for tags that share a prefix ------------------------------------------------------

MAIN = Policy("numerical:asc", "^main-[a-f0-9]+-(?P<ts>[0-9]+)", "$ts")


def test_a_rolled_back_tag_is_remembered_and_a_tag_it_prefixes_is_not_confused_with_it(capsys, repo, oci_registry):
    # A rolled back; B = A + "1" is a newer build (its time has one digit more) and must not inherit A's rollback.
    a, b = "main-abc123-1700000000", "main-abc123-17000000001"
    setup(repo, oci_registry, MAIN, [a], "6.9.1", "prefix-memory")
    assert watch(capsys, repo, oci_registry).code == EXIT_OK
    assert canary(capsys, "promote", "-C", repo.work, "--no-notify").code == EXIT_OK  # 0 -> 10 %
    rollback = canary(capsys, "rollback", "-C", repo.work, "--no-notify", "--reason", "test", "--timeout", "1")
    assert rollback.code == EXIT_OK, rollback.err
    assert repo.message().startswith(f"canary: roll back podinfo-canary {a} from 10% to 0%")
    # The rollback reads A as rolled back: the next promote refuses it, as the agent's judgment would.
    refused = canary(capsys, "promote", "-C", repo.work, "--no-notify")
    assert refused.code == EXIT_REFUSED and f"{a} was rolled back" in refused.err
    assert json.loads(canary(capsys, "status", "-C", repo.work, "--json").out)["next"]["action"] == "rolled-back"

    servers.push_tags(oci_registry, "acme/prefix-memory", [b])
    assert watch(capsys, repo, oci_registry).code == EXIT_OK
    assert value(repo, "canaryVersion") == b
    status = canary(capsys, "status", "-C", repo.work, "--json")
    assert status.code == EXIT_OK, status.err
    assert json.loads(status.out)["next"]["action"] == "promote"  # A's was "rolled-back"
    assert canary(capsys, "promote", "-C", repo.work, "--no-notify").code == EXIT_OK  # B starts its release


def test_the_rollback_subject_match_is_exact(tmp_path):
    # gitops.rolled_back on a history where a tag with A as a prefix was rolled back after A was set.
    a = "main-abc123-1700000000"
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    for key, setting in (("user.name", "T"), ("user.email", "t@example.com"), ("commit.gpgsign", "false")):
        git(work, "config", key, setting)
    stack = work / "Pulumi.dev.yaml"
    stack.write_text(f"config:\n  istio-canary:canaryVersion: {a}\n  istio-canary:canaryWeight: 10\n")
    git(work, "add", ".")
    git(work, "commit", "-qm", "release A")
    stack.write_text(f"config:\n  istio-canary:canaryVersion: {a}\n  istio-canary:canaryWeight: 0\n")
    git(work, "commit", "-qam", f"canary: roll back podinfo-canary {a}1 from 10% to 0% (someone's hand-made subject)")
    assert gitops.rolled_back(work, stack, "podinfo-canary", a, "istio-canary:canaryVersion:") is None
    assert gitops.rolled_back(work, stack, "podinfo-canary", a + "1", "istio-canary:canaryVersion:") is not None
