"""Image tag policies: each kind's choice against the `semver` library's own comparison (properties), ranges,
pre-releases, filters with extraction, and every malformed policy refused with a message."""

from __future__ import annotations

from decimal import Decimal

import pytest
import semver
from hypothesis import given, settings
from hypothesis import strategies as st

from stacks.tagpolicy import PolicyError, TagPolicy, parse_range

PARTS = st.integers(min_value=0, max_value=12)
PRE = st.sampled_from([None, "rc.1", "rc.2", "rc.10", "beta", "beta.2", "alpha.1.x", "0"])
VERSIONS = st.builds(semver.Version, PARTS, PARTS, PARTS, PRE)


def tag(v: semver.Version) -> str:
    return str(v)


@settings(max_examples=300, deadline=None)
@given(st.lists(VERSIONS, max_size=25), VERSIONS, st.booleans())
def test_semver_picks_the_library_maximum_above_current(versions, current, prereleases):
    policy = TagPolicy.parse("semver:*", prereleases=prereleases)
    allowed = [v for v in versions if prereleases or not v.prerelease]
    above = [v for v in allowed if v.compare(current) > 0]
    best = None  # the maximum by the library's own precedence (compare), not by our key
    for v in above:
        if best is None or v.compare(best) > 0:
            best = v
    picked = policy.newest([tag(v) for v in versions], tag(current))
    if best is None:
        assert picked is None
    else:
        assert picked is not None and semver.Version.parse(picked).compare(best) == 0


@settings(max_examples=400, deadline=None)
@given(VERSIONS.filter(lambda v: not v.prerelease), st.sampled_from([">=", ">", "<=", "<", "==", "!="]), VERSIONS)
def test_a_full_comparator_agrees_with_the_library_match(candidate, op, bound):
    bound = bound.replace(prerelease=None)
    policy = TagPolicy.parse(f"semver:{op}{bound}")
    assert (policy.key(tag(candidate)) is not None) == candidate.match(f"{op}{bound}")


@settings(max_examples=300, deadline=None)
@given(VERSIONS, st.integers(0, 12), st.integers(0, 12))
def test_x_ranges_tilde_and_caret_mean_what_they_say(v, major, minor):
    def allowed(policy: str) -> bool:
        return TagPolicy.parse(policy, prereleases=True).key(tag(v)) is not None

    release = v.replace(prerelease=None)
    in_major = v.major == major and not (v.prerelease and release == semver.Version(major, 0, 0))
    assert allowed(f"semver:{major}.x") == in_major
    in_minor = (v.major, v.minor) == (major, minor) and not (v.prerelease and release == semver.Version(major, minor))
    assert allowed(f"semver:{major}.{minor}.x") == in_minor
    assert allowed(f"semver:~{major}.{minor}.0") == in_minor
    # npm's caret: the left-most non-zero part stays fixed (^0.0.0 allows 0.0.0 alone).
    if major > 0:
        ceiling = semver.Version(major + 1, 0, 0, "0")
    elif minor > 0:
        ceiling = semver.Version(0, minor + 1, 0, "0")
    else:
        ceiling = semver.Version(0, 0, 1, "0")
    caret = v.compare(semver.Version(major, minor, 0)) >= 0 and v.compare(ceiling) < 0
    assert allowed(f"semver:^{major}.{minor}.0") == caret


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 10**12), max_size=20), st.integers(0, 10**12), st.sampled_from(["asc", "desc"]))
def test_numerical_orders_extracted_numbers(numbers, current, order):
    policy = TagPolicy.parse(f"numerical:{order}", r"^main-[a-f0-9]+-(?P<ts>[0-9]+)$", "$ts")
    tags = [f"main-abc{n % 7}-{n}" for n in numbers] + ["latest", "pr-9-99999999999999", "main-zz-1"]
    above = [n for n in numbers if (n > current if order == "asc" else n < current)]
    picked = policy.newest(tags, f"main-0-{current}")
    if not above:
        assert picked is None
    else:
        want = max(above) if order == "asc" else min(above)
        assert picked is not None and Decimal(picked.rsplit("-", 1)[1]) == want


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("0123456789-:TZ", min_size=1, max_size=20), max_size=20), st.sampled_from(["asc", "desc"]))
def test_alphabetical_is_plain_string_order(values, order):
    policy = TagPolicy.parse(f"alphabetical:{order}", "^ts-", "")
    tags = [f"ts-{value}" for value in values] + ["other"]
    picked = policy.newest(tags, "nothing-matches-current")
    if not values:
        assert picked is None
    else:
        assert picked == (max(tags[:-1]) if order == "asc" else min(tags[:-1]))


TAGS = ["5.9.9", "6.8.0", "6.9.0", "6.9.1", "6.10.0-rc.1", "6.10.0-rc.2", "6.10.0-rc.10", "7.0.0-rc.1", "latest"]


@pytest.mark.parametrize(
    ("policy", "prereleases", "current", "expected"),
    [
        ("semver:6.x", False, "6.9.0", "6.9.1"),  # the seed's policy: unchanged
        ("semver:6.9.x", False, "6.9.0", "6.9.1"),
        ("glob:6.9.*", False, "6.9.0", "6.9.1"),
        ("semver:>=6.9.1 <7", False, "6.9.0", "6.9.1"),
        ("semver:>=6.9.1 <7", True, "6.9.1", "6.10.0-rc.10"),  # rc.N numerically: rc.10 after rc.2
        ("semver:>=6.9.1, <7", True, "6.9.1", "6.10.0-rc.10"),  # Flux/Masterminds' comma form
        ("semver:<7", True, "6.10.0-rc.10", None),  # a partial upper bound keeps 7.0.0-rc.1 out
        ("semver:<7.0.0", True, "6.10.0-rc.10", "7.0.0-rc.1"),  # a full one does not: semver orders it first
        ("semver:>=6.10.0-rc.0 <6.10.0", False, "6.9.1", "6.10.0-rc.10"),  # a range naming a pre-release opts in
        ("semver:5.x || 6.8.x", False, "5.0.0", "6.8.0"),
        ("semver:6.0 - 6.9", False, "6.8.0", "6.9.1"),
        ("semver:6.9.1", False, "6.9.0", "6.9.1"),
        ("semver:6.x", False, "6.9.1", None),
    ],
)
def test_ranges_and_pre_releases(policy, prereleases, current, expected):
    assert TagPolicy.parse(policy, prereleases=prereleases).newest(TAGS, current) == expected


def test_the_whole_tag_wins_and_v_spellings_prefer_plain():
    policy = TagPolicy.parse("semver:*")
    assert policy.newest(["v6.9.1", "6.9.1", "v6.9.0"], "6.9.0") == "6.9.1"
    extracting = TagPolicy.parse("semver:6.x", r"^app-(?P<v>.+)$", "${v}")
    assert extracting.newest(["app-6.9.1", "6.9.5", "app-7.0.0", "app-latest"], "app-6.9.0") == "app-6.9.1"
    assert TagPolicy.parse("semver:*", "^(v)?([0-9.]+)$", "$2").newest(["v1.2.3"], "1.0.0") == "v1.2.3"


def test_a_tag_that_is_not_a_version_never_wins_a_version_policy():
    policy = TagPolicy.parse("semver:*", prereleases=True)
    for bad in ["6.9", "06.9.1", "6.9.1-rc..1", "6.9.1-01", "6.9.1+build", "\uff16.9.1", "x" * 200]:
        assert policy.key(bad) is None, bad


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("semv:6.x",), "semver:<range>"),
        (("6.x",), "semver:<range>"),
        (("semver:",), "empty range"),
        (("semver:6.x.1",), "wildcard is followed"),
        (("semver:>=6.15.0 <7 ||",), "empty alternative"),
        (("semver:>>6",), "not a version comparator"),
        (("semver:6.x.x-rc.1",), "needs a full version"),
        (("semver:!=6",), "!= needs a full version"),
        (("semver:" + "1 " * 150,), "at most 200"),
        (("glob:",), "glob:<pattern>"),
        (("glob:6.9.[0-9]",), "glob:<pattern>"),
        (("numerical:up",), "numerical:asc or numerical:desc"),
        (("alphabetical:",), "alphabetical:asc"),
        (("numerical:asc", "^main-("), "not a regular expression"),
        (("numerical:asc", "", "$ts"), "needs a tag filter"),
        (("numerical:asc", "^main-(?P<x>[0-9]+)", "$ts"), "no group named ts"),
        (("numerical:asc", "^main-([0-9]+)", "$2"), "has 1 group"),
    ],
)
def test_bad_policies_are_refused_with_the_reason(args, message):
    with pytest.raises(PolicyError, match=message.replace("$", r"\$").replace("|", r"\|")):
        TagPolicy.parse(*args)


def test_range_parsing_is_bounded_and_reports_pre_release_names():
    assert parse_range(">=7.0.0-rc.0")[1] is True
    assert parse_range(">=7.0.0 <8")[1] is False
    assert len(parse_range("1.x || 2.x || 3.x")[0]) == 3
