"""The tag-policy keys and the version keys: canaryTagPolicy, gaTagPolicy, the shared filter, extract and
pre-release switch, and canaryVersion/gaVersion checked against the policies that order them.
"""

from __future__ import annotations

from istio_canary.release.config_reader import PROJECT, Reader
from istio_canary.release.model import (
    AppSettings,
)
from istio_canary.release.rules import (
    FULL_VERSION,
    glob_can_match_release,
    shown,
    version_tag_problem,
)
from istio_canary.release.tagpolicy import PolicyError, TagPolicy


def read_tag_policies(reader: Reader) -> tuple[TagPolicy, TagPolicy | None, bool]:
    """canaryTagPolicy and the optional gaTagPolicy, both with the shared tag filter, extract and pre-release rule,
    and whether all of them were read as written (a refused one is replaced by semver:*, which says nothing)."""
    errors = len(reader.errors)
    tag_filter, extract = reader.text("imageTagFilter"), reader.text("imageTagExtract")
    prereleases = reader.boolean("imagePrereleases")
    try:
        TagPolicy.parse("alphabetical:asc", tag_filter, extract)  # the filter and extract alone, on their own keys
    except PolicyError as exc:
        key, value = ("imageTagExtract", extract) if "extract" in str(exc) else ("imageTagFilter", tag_filter)
        reader.errors.append(f"{PROJECT}:{key}: {shown(value)} is refused: {exc}")
        tag_filter, extract = "", ""
    policies: list[TagPolicy | None] = []
    for key in ("canaryTagPolicy", "gaTagPolicy"):
        text = reader.text(key)
        if key == "gaTagPolicy" and not text:
            policies.append(None)
            continue
        try:
            policy = TagPolicy.parse(text, tag_filter, extract, prereleases)
        except PolicyError as exc:
            reader.errors.append(f"{PROJECT}:{key}: {shown(text)} is refused: {exc}")
            policy = TagPolicy.parse("semver:*")
        if policy.kind == "glob" and not glob_can_match_release(policy.argument):
            reader.fail(key, text, "a glob that matches some release tag such as 6.9.* (pre-releases never match)")
        policies.append(policy)
    return policies[0] or TagPolicy.parse("semver:*"), policies[1], len(reader.errors) == errors


# The versions every stack held before it could choose another policy: any semver release, pre-releases too.
SEMVER_RELEASES = TagPolicy.parse("semver:*", prereleases=True)


def _orders(policy: TagPolicy, tag: str) -> bool:
    """Does `policy` order `tag` as a version (range bounds aside)? A semver or glob one also wants three numbers in
    the tag: Flux reads `6.9` as 6.9.0, but such a tag follows the 6.9 line as it moves."""
    return policy.reads(tag) and (policy.kind not in ("semver", "glob") or FULL_VERSION.search(tag) is not None)


def _scheme(policy: TagPolicy, extracted: bool) -> str:
    """What a tag `policy` orders looks like, in words with an example."""
    part = "the extracted part being " if extracted else ""
    if policy.kind in ("semver", "glob"):
        return f"{part}a version such as 6.15.0, v6.15.0 or 6.16.0-rc.1"
    if policy.kind == "numerical":
        return f"{part}a number such as 1700000000"
    return "any tag"


def _policy_words(reader: Reader, policies: list[tuple[str, TagPolicy]]) -> str:
    """`canaryTagPolicy numerical:asc with imageTagFilter '^main-...' and imageTagExtract '$ts' (its extracted part a
    number such as 1700000000)`: the policies that might order a key, and the filter they share."""
    tag_filter, extract = reader.text("imageTagFilter"), reader.text("imageTagExtract")
    names = " or ".join(f"{key} {policy}" for key, policy in policies)
    if not tag_filter:
        shared = "without imageTagFilter"
    else:
        shared = f"with imageTagFilter {tag_filter!r}" + (f" and imageTagExtract {extract!r}" if extract else "")
        shared += " matching it"
    schemes = "; ".join(dict.fromkeys(_scheme(policy, bool(tag_filter and extract)) for _, policy in policies))
    return f"{names} orders, {shared} ({schemes})"


def check_versions(reader: Reader, app: AppSettings, canary_tags: TagPolicy, ga_tags: TagPolicy | None) -> None:
    """canaryVersion and gaVersion against the policies that produce them (not against semver).

    canaryVersion: a tag canaryTagPolicy orders (watch-images wrote it), a semver release (the scheme of every stack
    before it chose another policy; a person may pick one as with a range), or gaVersion's tag (no release has started
    since the stack changed policy: a line switches scheme in one commit). gaVersion: a tag gaTagPolicy or
    canaryTagPolicy orders (a finished release made the canary's tag GA), or, while GA still runs a tag of an earlier
    policy, a tag with a digit in it (no policy of the stack can order it any more; `v` or `stable` is a typo).
    Either: never `latest`, and a tag the pods can carry as their `version` label.
    """
    policies = [("gaTagPolicy", ga_tags)] if ga_tags is not None else []
    plain_semver = canary_tags.kind in ("semver", "glob") and not reader.text("imageTagFilter")
    release = "" if plain_semver else "a semver release such as 6.15.0 (the scheme the stack may have just left), "
    rules = {
        "canaryVersion": ([("canaryTagPolicy", canary_tags)], f"{release}or gaVersion's tag {app.ga_version}"),
        "gaVersion": (
            [*policies, ("canaryTagPolicy", canary_tags)],
            "or, while GA still runs a tag of an earlier policy, one with a digit in it",
        ),
    }
    values = {"canaryVersion": app.canary_version, "gaVersion": app.ga_version}
    for key, (ordering, otherwise) in rules.items():
        value = values[key]
        problem = version_tag_problem(value)
        if problem is None:
            if any(_orders(policy, value) for _, policy in ordering):
                continue
            if key == "canaryVersion" and (value == app.ga_version or _orders(SEMVER_RELEASES, value)):
                continue
            if key == "gaVersion" and any(char.isdigit() for char in value):
                continue
        why = f" ({problem})" if problem else ""
        reader.fail(key, value, f"a released image tag that {_policy_words(reader, ordering)}, {otherwise}{why}")
