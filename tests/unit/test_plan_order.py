"""`canary plan`'s words for a new canary tag order it by the stack's own tag policy, not by semver: a build number
or a timestamp says "newer by numerical:asc", a step back says "older", and a tag of another scheme says so."""

from __future__ import annotations

from typing import Any

import pytest

from istio_canary import plan as plans
from istio_canary import plan_markdown
from istio_canary.release.settings import parse
from tests.unit.conftest import GCP, config

FILTER = {"imageTagFilter": "^main-[a-f0-9]+-(?P<ts>[0-9]+)", "imageTagExtract": "$ts"}


def words(old: str, new: str, weight: int = 0, **overrides: Any) -> tuple[str, str]:
    """(headline, Markdown) of a preview that moves the canary from `old` to `new`."""
    settings = parse(config(canaryVersion=new, canaryWeight=weight, gaVersion="6.8.0", **overrides), GCP)
    app, policy = settings.app, settings.release.canary_tags
    before = plans.Traffic("", weight, "6.8.0", old)
    after = plans.Traffic("", weight, "6.8.0", new)
    plan = plans.Plan(plans.NEW_VERSION, before, after, ())
    return plan_markdown.headline(plan, app, policy), plan_markdown.markdown(plan, app, "dev", policy=policy)


def test_a_semver_bump_reads_as_before():
    headline, _ = words("6.9.0", "6.9.1")
    assert headline == (
        "Starts a release of podinfo 6.9.1 (was 6.9.0): the canary Deployment changes, no user is sent to it yet."
    )


@pytest.mark.parametrize(
    ("old", "new", "policy", "extra", "phrase"),
    [
        ("42", "100", "numerical:asc", {}, "was 42, newer by numerical:asc"),  # not "100" < "42" as strings
        ("100", "42", "numerical:desc", {}, "was 100, newer by numerical:desc"),
        (
            "main-abc123-1700000000",
            "main-0a1b2c-1700000500",
            "numerical:asc",
            FILTER,
            "was main-abc123-1700000000, newer by numerical:asc",
        ),
        (
            "2025-07-01T08-00-00Z",
            "2025-07-03T10-00-00Z",
            "alphabetical:asc",
            {},
            "was 2025-07-01T08-00-00Z, newer by alphabetical:asc",
        ),
    ],
)
def test_a_bump_says_newer_by_the_policy_that_orders_it(old, new, policy, extra, phrase):
    headline, markdown = words(old, new, canaryTagPolicy=policy, **extra)
    assert f"({phrase})" in headline
    assert "older" not in markdown


@pytest.mark.parametrize(
    ("old", "new", "policy"),
    [("6.10.0", "6.9.1", "semver:6.x"), ("100", "42", "numerical:asc"), ("6.9.1", "6.8.0", "alphabetical:asc")],
)
def test_a_step_back_by_the_policy_is_named_and_warned_about(old, new, policy):
    headline, markdown = words(old, new, canaryTagPolicy=policy)
    assert f"older than {old} by {policy}" in headline
    assert "> [!WARNING]" in markdown
    assert f"goes back from {old}" in markdown


def test_a_tag_of_another_scheme_is_said_to_be_unordered():
    # The first bump after a switch from semver to numerical: 6.9.1 is no number.
    headline, _ = words("6.9.1", "main-abc123-1700000000", canaryTagPolicy="numerical:asc", **FILTER)
    assert "(was 6.9.1, which numerical:asc does not order)" in headline


def test_under_traffic_the_order_is_named_too():
    headline, _ = words("42", "100", weight=10, canaryTagPolicy="numerical:asc")
    assert headline.startswith("Starts a release of podinfo 100 (newer than 42 by numerical:asc) while the canary")


def test_without_a_policy_the_words_are_the_old_ones():
    settings = parse(config(canaryVersion="100", canaryTagPolicy="numerical:asc"), GCP)
    plan = plans.Plan(
        plans.NEW_VERSION, plans.Traffic("", 0, "6.14.0", "42"), plans.Traffic("", 0, "6.14.0", "100"), ()
    )
    assert plan_markdown.headline(plan, settings.app) == (
        "Starts a release of podinfo 100 (was 42): the canary Deployment changes, no user is sent to it yet."
    )
