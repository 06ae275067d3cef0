"""canaryVersion and gaVersion hold what the stack's tag policy produces, validated against that policy (not against
semver): every documented policy's tag can be each key, a line can change scheme in one commit, and a typo names the
key, the policy and the filter and says what would be accepted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from istio_canary.release.settings import ConfigError, parse
from istio_canary.stackfile import StackFile
from tests.unit.conftest import GCP, config

FILTER = "^main-[a-f0-9]+-(?P<ts>[0-9]+)"
NUMERICAL_TS = {"canaryTagPolicy": "numerical:asc", "imageTagFilter": FILTER, "imageTagExtract": "$ts"}


def versions(**overrides: Any) -> tuple[str, str]:
    settings = parse(config(**overrides), GCP)
    return settings.app.ga_version, settings.app.canary_version


def refusal(**overrides: Any) -> str:
    with pytest.raises(ConfigError) as error:
        parse(config(**overrides), GCP)
    return str(error.value)


# --- every policy's own tags land in both keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "extra", "tag"),
    [
        ("semver:6.x", {}, "6.16.0"),
        ("semver:>=6.15.0 <7", {}, "v6.15.1"),
        ("semver:6.x", {"imagePrereleases": True}, "6.16.0-rc.2"),
        ("glob:6.9.*", {}, "6.9.2"),
        ("semver:2025.x", {}, "v2025.07.03"),  # leading-zero CalVer: Flux reads it on purpose
        ("numerical:asc", {}, "1700000000"),
        ("numerical:desc", {}, "42"),
        ("numerical:asc", {"imageTagFilter": FILTER, "imageTagExtract": "$ts"}, "main-abc123-1700000000"),
        ("alphabetical:asc", {}, "2025-07-03T10-00-00Z"),
        ("alphabetical:desc", {}, "build-zulu"),
    ],
)
def test_a_tag_the_policy_orders_is_a_canary_version_then_a_ga_version(policy, extra, tag):
    # watch-images writes it as canaryVersion (GA still runs 6.14.0) ...
    assert versions(canaryTagPolicy=policy, gaVersion="6.14.0", canaryVersion=tag, **extra) == ("6.14.0", tag)
    # ... and a finished release makes it gaVersion too.
    assert versions(canaryTagPolicy=policy, gaVersion=tag, canaryVersion=tag, **extra) == (tag, tag)


def test_a_ga_tag_policy_of_its_own_lands_gaversion_and_canary_follows():
    # `watch-images --line ga` under gaTagPolicy numerical:asc while canaryTagPolicy is semver: canaryVersion follows
    # gaVersion (no release runs), though canaryTagPolicy cannot order a build number.
    assert versions(
        canaryTagPolicy="semver:6.x", gaTagPolicy="numerical:asc", gaVersion="1042", canaryVersion="1042"
    ) == (
        "1042",
        "1042",
    )


def test_a_line_switches_from_semver_to_numerical_in_one_commit():
    # The switch: both keys still hold the semver tag GA runs; no release has started under the new policy.
    assert versions(**NUMERICAL_TS, gaVersion="6.9.1", canaryVersion="6.9.1") == ("6.9.1", "6.9.1")
    # The first watch-images under it: the canary moves to the new scheme, GA keeps the old tag until a release.
    assert versions(**NUMERICAL_TS, gaVersion="6.9.1", canaryVersion="main-abc123-1700000000") == (
        "6.9.1",
        "main-abc123-1700000000",
    )


def test_a_policy_changed_while_a_semver_canary_waits_keeps_it():
    # canaryVersion 6.15.0 was staged under semver:6.x; the policy changes before its release starts.
    assert versions(**NUMERICAL_TS, gaVersion="6.14.0", canaryVersion="6.15.0") == ("6.14.0", "6.15.0")


def test_a_line_switches_back_from_a_filtered_scheme():
    assert versions(canaryTagPolicy="semver:6.x", gaVersion="main-abc123-1700000000", canaryVersion="6.16.0") == (
        "main-abc123-1700000000",
        "6.16.0",
    )


# --- typos: a clear error naming the key, the policy and the filter, saying what would be accepted -------------------


@pytest.mark.parametrize("typo", ["latest", "6.9.1 ", "v", "main", "6.9", " 6.9.1", "6..9", "6.9.1-", ""])
def test_a_canary_version_typo_under_semver_names_key_policy_and_what_would_do(typo):
    message = refusal(canaryTagPolicy="semver:6.x", gaVersion="6.14.0", canaryVersion=typo)
    assert f"istio-canary:canaryVersion: {typo!r} is not allowed" in message
    assert "canaryTagPolicy semver:6.x" in message
    assert "without imageTagFilter" in message
    assert "such as 6.15.0" in message  # what would be accepted
    assert "or gaVersion's tag 6.14.0" in message
    assert "istio-canary:gaVersion" not in message  # only canaryVersion is refused


@pytest.mark.parametrize("typo", ["latest", "6.9.1 ", "v", "main-abc123", "1700000000"])
def test_a_canary_version_typo_under_a_filter_names_the_filter_and_extract(typo):
    message = refusal(**NUMERICAL_TS, gaVersion="6.9.1", canaryVersion=typo)
    assert f"istio-canary:canaryVersion: {typo!r} is not allowed" in message
    assert "canaryTagPolicy numerical:asc" in message
    assert f"imageTagFilter {FILTER!r}" in message
    assert "imageTagExtract '$ts'" in message
    assert "a number" in message
    assert "a semver release such as 6.15.0" in message


@pytest.mark.parametrize("typo", ["latest", "6.9.1 ", "v", "stable", ""])
def test_a_ga_version_typo_is_refused(typo):
    message = refusal(canaryTagPolicy="semver:6.x", gaVersion=typo, canaryVersion="6.15.0")
    assert f"istio-canary:gaVersion: {typo!r} is not allowed" in message
    assert "canaryTagPolicy semver:6.x" in message
    assert "without imageTagFilter" in message


@pytest.mark.parametrize("typo", ["latest", "v"])
def test_the_same_typo_in_both_keys_is_refused(typo):
    # canaryVersion may equal gaVersion (a scheme switch); that must not let a typo in both through.
    message = refusal(canaryTagPolicy="semver:6.x", gaVersion=typo, canaryVersion=typo)
    assert f"istio-canary:gaVersion: {typo!r} is not allowed" in message


def test_latest_is_refused_even_where_alphabetical_order_would_read_it():
    message = refusal(canaryTagPolicy="alphabetical:asc", gaVersion="6.14.0", canaryVersion="latest")
    assert "istio-canary:canaryVersion: 'latest' is not allowed" in message
    assert "moves with every push" in message


def test_a_ga_tag_policy_is_named_in_the_ga_refusal():
    message = refusal(canaryTagPolicy="semver:6.x", gaTagPolicy="semver:~6.14", gaVersion="v", canaryVersion="6.15.0")
    assert "gaTagPolicy semver:~6.14 or canaryTagPolicy semver:6.x" in message


@pytest.mark.parametrize(
    "tag",
    [
        "x" * 64,  # the pods carry the tag as their `version` label: at most 63 characters
        "_build-1",  # an OCI tag, but a label value starts with a letter or digit
        "1700000000-",
    ],
)
def test_a_tag_the_cluster_could_not_label_is_refused(tag):
    message = refusal(canaryTagPolicy="alphabetical:asc", gaVersion="6.14.0", canaryVersion=tag)
    assert "istio-canary:canaryVersion" in message
    assert "at most 63" in message


def test_a_broken_policy_is_reported_once_not_as_a_version_error_too():
    message = refusal(canaryTagPolicy="numerical:up", gaVersion="6.14.0", canaryVersion="1700000000")
    assert "istio-canary:canaryTagPolicy" in message
    assert "canaryVersion" not in message


# --- the rollback's lenient reading never needs the filter ------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def stack_file(tmp_path: Path, **values: str) -> StackFile:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    lines = "".join(f"  istio-canary:{key}: {json.dumps(value)}\n" for key, value in values.items())
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  istio-canary:clusterMode: existing\n" + lines)
    return StackFile(tmp_path / "Pulumi.dev.yaml")


def test_a_release_under_a_filtered_policy_can_be_rolled_back(tmp_path):
    # `canary rollback` validates only the release keys (no imageTagFilter): the canary's tag is still a tag.
    stack = stack_file(
        tmp_path,
        **NUMERICAL_TS,
        gaVersion="main-abc123-1700000000",
        canaryVersion="main-def456-1700000100",
        canaryWeight="10",
    )
    assert stack.view().app.canary_version == "main-def456-1700000100"
    view, bad_weight = stack.rollback_view()
    assert (view.app.canary_version, bad_weight) == ("main-def456-1700000100", None)
    stack.set("canaryWeight", 0)
    assert stack.save(rollback=True)


def test_the_rollback_reading_still_refuses_a_tag_no_pod_can_carry(tmp_path):
    stack = stack_file(tmp_path, **NUMERICAL_TS, gaVersion="6.9.1", canaryVersion="main-" + "a" * 70, canaryWeight="10")
    with pytest.raises(ConfigError, match=r"istio-canary:canaryVersion: .* at most 63"):
        stack.rollback_view()


# --- the program: a numerical version is the canary Deployment's image tag (Pulumi mocks) -------------------------------


def test_a_numerical_canary_version_is_the_canary_deployments_image(program):
    # The switch from semver in one commit, then the first build the policy picked: only the canary's image moves.
    tag = "main-abc123-1700000000"
    before = program(**NUMERICAL_TS, gaVersion="6.9.1", canaryVersion="6.9.1")
    after = program(**NUMERICAL_TS, gaVersion="6.9.1", canaryVersion=tag)
    for run, canary_tag in ((before, "6.9.1"), (after, tag)):
        for name, expected in (("podinfo-ga", "6.9.1"), ("podinfo-canary", canary_tag)):
            template = run.one("Deployment", name).inputs["spec"]["template"]
            (container,) = template["spec"]["containers"]
            assert container["image"] == f"ghcr.io/stefanprodan/podinfo:{expected}"
            assert template["metadata"]["labels"]["version"] == expected  # Istio's destination_version
    old, new = ({f"{r.typ}::{r.name}": r.inputs for r in run.resources if r.custom} for run in (before, after))
    assert old.keys() == new.keys()
    assert [key for key in old if old[key] != new[key]] == ["kubernetes:apps/v1:Deployment::podinfo-canary"]
