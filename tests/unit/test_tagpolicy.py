"""Image tag policies: Flux's choices (properties over each kind), the range cases the issue names, Go's float and
template rules, the floor `newest` puts under the running tag, and every malformed policy refused with a message.
Flux's own test tables are in test_flux_cases.py; the Go libraries themselves judge a corpus in
tests/integration/test_flux_reference.py."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from istio_canary.release.gosyntax import parse_float
from istio_canary.release.semver import parse_version
from istio_canary.release.tagpolicy import NoTagError, PolicyError, TagPolicy, scanned

PARTS = st.integers(min_value=0, max_value=12)
PRE = st.sampled_from(["", "-rc.1", "-rc.2", "-rc.10", "-beta", "-beta.2", "-alpha.1.x", "-0"])
TAGS_ = st.builds(lambda a, b, c, p, v: f"{v}{a}.{b}.{c}{p}", PARTS, PARTS, PARTS, PRE, st.sampled_from(["", "v"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(TAGS_, max_size=25, unique=True), st.booleans())
def test_semver_star_picks_the_first_tag_of_highest_precedence(tags, prereleases):
    policy = TagPolicy.parse("semver:*", prereleases=prereleases)
    allowed = [t for t in tags if prereleases or "-" not in t]
    best = None
    for t in allowed:  # Flux: a later tag replaces the best only when strictly greater
        if best is None or parse_version(t).compare(parse_version(best)) > 0:
            best = t
    assert policy.latest(tags) == best


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
        ("semver:6.x", False, "6.9.0", "6.9.1"),
        ("semver:6.9.x", False, "6.9.0", "6.9.1"),
        ("glob:6.9.*", False, "6.9.0", "6.9.1"),
        ("semver:>=6.9.1 <7", False, "6.9.0", "6.9.1"),
        ("semver:>=6.9.1 <6.10.0", True, "6.9.1", "6.10.0-rc.10"),  # rc.N numerically: rc.10 after rc.2
        ("semver:>=6.9.1, <6.10.0", True, "6.9.1", "6.10.0-rc.10"),  # the comma form
        ("semver:<7", True, "6.10.0-rc.10", "7.0.0-rc.1"),  # Flux: `<7` is `<7.0.0`, and 7.0.0-rc.1 is below it
        ("semver:>=6.10.0-rc.0 <6.10.0", False, "6.9.1", "6.10.0-rc.10"),  # the alternative names one: opted in
        ("semver:>=6.10.0-rc.0 <6.10.0 || 5.x", False, "5.0.0", "6.10.0-rc.10"),
        ("semver:>=6.9.0 <6.10.0 || 6.10.0-rc.1", False, "6.9.0", "6.10.0-rc.1"),  # not rc.2: no opt-in there
        ("semver:5.x || 6.8.x", False, "5.0.0", "6.8.0"),
        ("semver:6.0 - 6.9", False, "6.8.0", "6.9.1"),
        ("semver:6.9.1", False, "6.9.0", "6.9.1"),
        ("semver:6.x", False, "6.9.1", None),
    ],
)
def test_ranges_and_pre_releases(policy, prereleases, current, expected):
    assert TagPolicy.parse(policy, prereleases=prereleases).newest(TAGS, current) == expected


@pytest.mark.parametrize(
    ("range_", "tags", "expected"),
    [
        # A pre-release in one alternative opens pre-releases in that alternative only.
        (">=0.1 || 2.1.0-rc.1", ["0.2.0", "2.1.0-rc.1", "3.3.2-rc.2"], "2.1.0-rc.1"),
        (">=0.1 || 2.1.0-rc.1", ["0.2.0", "3.3.2-rc.2"], "0.2.0"),
        ("^1.x-0", ["1.2.0-rc.1", "1.1.0", "2.0.0-rc.1"], "1.2.0-rc.1"),  # Flux's release-candidate example
        ("!=4.1", ["4.0.9", "4.1.0", "4.1.7"], "4.0.9"),  # != on a partial version excludes the whole minor
        ("~*", ["0.0.1", "3.0.0"], "3.0.0"),
        (">*", ["0.0.0", "1.0.0"], "1.0.0"),
        ("1.0 - 1.2 >1.1", ["1.0.5", "1.1.9", "1.2.3", "1.3.0"], "1.2.3"),  # a hyphen range with another comparator
        ("=>1.2, =<1.4", ["1.1.0", "1.4.9", "1.5.0"], "1.4.9"),  # `=<1.4` is `<=1.4.x`
        (">=2025.1.1", ["v2025.07.03", "v2025.06.30", "2024.12.31"], "v2025.07.03"),  # leading-zero CalVer
        ("*", ["1.2", "1.2.3.4", "01.2.3"], "01.2.3"),  # three parts needed; leading zeros read
    ],
)
def test_flux_grammar(range_, tags, expected):
    assert TagPolicy.parse(f"semver:{range_}").latest(tags) == expected


def test_the_first_of_equal_versions_wins_and_extraction_returns_the_whole_tag():
    policy = TagPolicy.parse("semver:*")
    assert policy.latest(["v6.9.1", "6.9.1", "v6.9.0"]) == "v6.9.1"
    assert policy.newest(["v6.9.1", "6.9.1"], "6.9.1") is None  # equal precedence is not newer
    extracting = TagPolicy.parse("semver:6.x", r"^app-(?P<v>.+)$", "${v}")
    assert extracting.newest(["app-6.9.1", "6.9.5", "app-7.0.0", "app-latest"], "app-6.9.0") == "app-6.9.1"
    assert TagPolicy.parse("semver:*", "^(v)?([0-9.]+)$", "$2").newest(["v1.2.3"], "1.0.0") == "v1.2.3"
    # Two tags with one extracted value: the later one in the listing stands for it (Flux's map).
    assert TagPolicy.parse("numerical:asc", r"-([0-9]+)$", "$1").latest(["a-5", "b-5", "c-4"]) == "b-5"


def test_numerical_fails_like_flux_on_a_value_that_is_not_a_number():
    policy = TagPolicy.parse("numerical:asc")
    assert policy.latest(["10", "9", "1e3", "0x1p4"]) == "1e3"
    for bad in ["latest", "inf", "NaN", "1e400", "1__0"]:
        with pytest.raises(NoTagError, match=f"tag '{bad}'.*not a finite number"):
            policy.latest(["10", bad])
        with pytest.raises(NoTagError):
            policy.newest(["10", bad], "9")
    assert TagPolicy.parse("numerical:asc", "^[0-9]+$").latest(["10", "latest", "9"]) == "10"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1_000", 1000.0),
        ("0x1_0p0", 16.0),
        ("1.5e3_0", 1.5e30),
        (".5", 0.5),
        ("5.", 5.0),
        ("+1", 1.0),
        ("-0", -0.0),
        ("0X1P-2", 0.25),
        ("1e-400", 0.0),
        ("01", 1.0),
        ("1.7976931348623157e308", 1.7976931348623157e308),
    ],
)
def test_go_float_syntax(text, value):
    assert parse_float(text) == value


@pytest.mark.parametrize(
    "text", ["1__0", "_1", "1_", "0x10", "1e", "1e+", ".", "0x", "0b101", "00x1p0", "1 ", "\u0661", "+nan", "1e400"]
)
def test_go_float_refusals(text):
    assert parse_float(text) is None


def test_extract_follows_go_expand():
    policy = TagPolicy.parse("alphabetical:asc", r"^(?P<a>[a-z]+)-(?P<b>[0-9]+)?", "$$${a}:$b.$0$")
    assert policy.value("xy-12") == "$xy:12.xy-12$"
    assert policy.value("xy-") == "$xy:.xy-$"  # an unmatched group is empty
    assert TagPolicy.parse("alphabetical:asc", r"^(?<ts>[0-9]+)", "$ts").value("17-x") == "17"  # Go's (?<name>)


def test_newest_uses_the_running_tag_as_a_floor_where_the_policy_reads_it():
    semver = TagPolicy.parse("semver:6.x")
    assert semver.newest(["6.8.0"], "6.9.0") is None  # no downgrade, listed or not
    assert semver.newest(["6.8.0"], "latest") == "6.8.0"  # a running tag the policy cannot read is no floor
    numbers = TagPolicy.parse("numerical:desc")
    assert numbers.newest(["5", "7"], "6") == "5"
    assert numbers.newest(["7"], "6") is None
    stamps = TagPolicy.parse("alphabetical:asc")
    timestamps = ["2026-12-01T10-00-00Z", "2026-12-02T10-00-00Z"]
    assert stamps.newest(timestamps, "6.9.1") == "2026-12-02T10-00-00Z"  # 6.9.1 is not listed: no floor
    assert stamps.newest([*timestamps, "6.9.1"], "6.9.1") is None  # listed: Flux itself picks 6.9.1


def test_an_empty_order_is_asc_as_flux_defaults_it():
    assert str(TagPolicy.parse("numerical:")) == "numerical:asc"
    assert TagPolicy.parse("alphabetical:").latest(["a", "b"]) == "b"


def test_reads_and_compare_follow_the_policy_scheme():
    numbers = TagPolicy.parse("numerical:asc", r"^main-[a-f0-9]+-(?P<ts>[0-9]+)$", "$ts")
    assert numbers.reads("main-abc123-1700000000")
    assert not numbers.reads("6.9.1") and not numbers.reads("main-zz-1")
    assert numbers.compare("main-a-2", "main-b-10") == -1
    assert numbers.compare("main-a-2", "latest") is None
    assert TagPolicy.parse("numerical:desc").compare("2", "10") == 1
    assert TagPolicy.parse("semver:6.x").reads("7.0.0")  # outside the range, still a version it orders


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("semv:6.x",), "semver:<range>"),
        (("6.x",), "semver:<range>"),
        (("semver:",), "not comparators"),
        (("semver:>=6.15.0 <7 ||",), "not comparators"),
        (("semver:>>6",), "not comparators"),
        (("semver:1|2",), "is not a version"),
        (("semver:" + "1 " * 300,), "at most 512"),
        (("semver:" + "||".join(["1"] * 33),), "at most 32"),
        (("glob:",), "glob:<pattern>"),
        (("glob:6.9.[0-9]",), "glob:<pattern>"),
        (("numerical:up",), "numerical:asc or numerical:desc"),
        (("alphabetical:ASC",), "alphabetical:asc"),  # the CRD's enum is lower case
        (("numerical:asc", "^main-("), "not a Go .RE2. regular expression: missing \\)"),
        (("numerical:asc", "^(?=main)"), "not a Go .RE2. regular expression"),  # no lookahead in Go either
        (("numerical:asc", "x" * 257), "at most 256"),
        (("numerical:asc", "", "$ts"), "needs a tag filter"),
        (("numerical:asc", "^main-(?P<x>[0-9]+)", "$ts"), "no group named ts"),
        (("numerical:asc", "^main-([0-9]+)", "$2"), "has 1 group"),
        (("numerical:asc", "^main-([0-9]+)", "$1x"), "no group named 1x"),  # Go reads `$1x` as the name 1x
    ],
)
def test_bad_policies_are_refused_with_the_reason(args, message):
    with pytest.raises(PolicyError, match=message.replace("$", r"\$").replace("|", r"\|")):
        TagPolicy.parse(*args)


def test_a_hostile_filter_runs_in_linear_time():
    # Python's backtracking engine needs about 2**40 steps for this; RE2 answers at once.
    policy = TagPolicy.parse("alphabetical:asc", r"^(a|a)*(a|a)*b$")
    assert policy.latest(["a" * 40 + "c"] * 50) is None


def test_signature_tags_are_dropped_before_any_policy_as_flux_s_image_repository_does():
    listing = ["1700000000", "sha256-" + "a" * 64 + ".sig", "1700000500", "v1.sig.x"]
    assert scanned(listing) == ["1700000000", "1700000500", "v1.sig.x"]
    assert TagPolicy.parse("alphabetical:asc").latest(scanned(listing)) == "v1.sig.x"
    assert TagPolicy.parse("numerical:asc", "^[0-9]+$").latest(scanned(listing)) == "1700000500"
