"""Shape steps before real users (canaryPreSteps: mirror, header): each renders the right VirtualService and
reads back the same, a shape step changes only the VirtualService, the planner walks mirror -> header -> weights,
and bad step lists are refused naming the key."""

from __future__ import annotations

import re

import pytest

from istio_canary.release import steps
from istio_canary.release.settings import ConfigError, parse
from istio_canary.routers import router

GCP = {"project": "acme-prod", "region": "europe-west1"}
SHAPED = {"canaryPreSteps": '["mirror:25", "header"]', "canaryMatch": "header:x-canary=always"}


def http(program, **config):
    return program(**config).one("VirtualService", "podinfo").inputs["spec"]["http"]


def test_the_mirror_step_copies_gas_traffic_and_users_stay_on_ga(program):
    (route,) = http(program, **SHAPED, canaryShape="mirror")
    assert [(r["destination"]["subset"], r["weight"]) for r in route["route"]] == [("ga", 100), ("canary", 0)]
    assert route["mirror"] == {"host": "podinfo.test.svc.cluster.local", "subset": "canary", "port": {"number": 9898}}
    assert route["mirrorPercentage"] == {"value": 25.0}


def test_the_header_step_routes_matching_requests_to_the_canary_only(program):
    chosen, rest = http(program, **SHAPED, canaryShape="header")
    assert chosen["match"] == [{"headers": {"x-canary": {"exact": "always"}}}]
    assert [(r["destination"]["subset"], r["weight"]) for r in chosen["route"]] == [("canary", 100)]
    assert [(r["destination"]["subset"], r["weight"]) for r in rest["route"]] == [("ga", 100), ("canary", 0)]
    assert "mirror" not in rest


def test_a_cookie_is_matched_inside_the_cookie_header(program):
    chosen, _ = http(program, canaryPreSteps='["header"]', canaryMatch="cookie:canary=always", canaryShape="header")
    pattern = re.compile(chosen["match"][0]["headers"]["cookie"]["regex"])
    assert pattern.fullmatch("canary=always") and pattern.fullmatch("a=1; canary=always; b=2")
    assert not pattern.fullmatch("notcanary=always") and not pattern.fullmatch("canary=alwaysx")


@pytest.mark.parametrize("shape", ["", "mirror", "header"])
def test_the_live_shape_reads_back_as_written(program, shape):
    service = program(**SHAPED, canaryShape=shape).one("VirtualService", "podinfo").inputs
    assert router().read(service) == (shape, 0)
    weighted = program(**SHAPED, canaryWeight=60).one("VirtualService", "podinfo").inputs
    assert router().read(weighted) == ("", 60)


def _by_name(run) -> dict[str, dict]:
    return {f"{r.typ}::{r.name}": r.inputs for r in run.resources if r.custom}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"canaryShape": ""}, {"canaryShape": "mirror"}),
        ({"canaryShape": "mirror"}, {"canaryShape": "header"}),
        ({"canaryShape": "header"}, {"canaryShape": "", "canaryWeight": 10}),
    ],
)
def test_every_shape_step_changes_only_the_virtual_service(program, before, after):
    old, new = _by_name(program(**SHAPED, **before)), _by_name(program(**SHAPED, **after))
    assert old.keys() == new.keys()
    assert [key for key in old if old[key] != new[key]] == [
        "kubernetes:networking.istio.io/v1:VirtualService::podinfo-virtualservice"
    ]


def test_the_planner_walks_mirror_header_then_the_weights():
    walk, weight, shape = [], 0, ""
    for _ in range(6):
        step = steps.next_step(weight, (10, 60, 100), "6.8.0", "6.9.0", shapes=("mirror", "header"), shape=shape)
        walk.append((step.describe(), step.needs_analysis))
        if step.action != steps.PROMOTE:
            break
        weight, shape = step.to, step.shape
    assert walk == [("mirror", False), ("header", True), ("10", True), ("60", True), ("100", True), ("finish", True)]


def test_a_rolled_back_version_is_not_mirrored_again_without_force():
    step = steps.next_step(0, (10, 60, 100), "6.8.0", "6.9.0", True, shapes=("mirror",))
    assert (step.action, step.shape) == (steps.ROLLED_BACK, "mirror")


@pytest.mark.parametrize(
    ("config", "key", "rule"),
    [
        ({"canaryPreSteps": '["shadow"]'}, "canaryPreSteps", "shapes mirror"),
        ({"canaryPreSteps": '["header", "mirror"]', "canaryMatch": "header:x=1"}, "canaryPreSteps", "mirror first"),
        ({"canaryPreSteps": '["mirror", "mirror"]'}, "canaryPreSteps", "shapes mirror"),
        ({"canaryPreSteps": '["mirror:0"]'}, "canaryPreSteps", "1-100"),
        ({"canaryPreSteps": '["mirror:150"]'}, "canaryPreSteps", "1-100"),
        ({"canaryPreSteps": '["header:50"]', "canaryMatch": "header:x=1"}, "canaryPreSteps", "shapes mirror"),
        ({"canaryPreSteps": '["header"]'}, "canaryMatch", "header step needs it"),
        ({"canaryPreSteps": '["header"]', "canaryMatch": "header:X-Canary=1"}, "canaryMatch", "lowercase name"),
        ({"canaryShape": "mirror"}, "canaryShape", "a shape of canaryPreSteps (none)"),
        ({"canaryPreSteps": '["mirror"]', "canaryShape": "mirror", "canaryWeight": "10"}, "canaryShape", "at 0%"),
        ({"canarySteps": '["mirror", 10, 100]'}, "canarySteps", "increasing whole numbers"),
    ],
)
def test_bad_shape_steps_are_refused_naming_the_key(config, key, rule):
    with pytest.raises(ConfigError) as error:
        parse(config, GCP)
    assert f"istio-canary:{key}: " in str(error.value)
    assert rule in str(error.value)


@pytest.mark.parametrize(
    ("checks", "problem"),
    [
        ('[{"url": "ftp://ready.example.com/"}]', "url must be an http(s) URL"),
        ('[{"url": "https://bot:s3cret@ready.example.com/"}]', "without user info"),
        ('[{"url": "http://ready.example.com/", "status": 99}]', "status must be an HTTP status"),
        ('[{"url": "http://ready.example.com/", "timeout": 0}]', "timeout must be seconds"),
        ('[{"url": "http://ready.example.com/", "steps": ["40"]}]', "steps must name steps of this stack"),
        ('[{"url": "http://ready.example.com/", "method": "POST"}]', "is not allowed; expected a list of {url"),
        ('"http://ready.example.com/"', "expected a list of {url"),
    ],
)
def test_bad_acceptance_checks_are_refused_naming_the_item(checks, problem):
    with pytest.raises(ConfigError) as error:
        parse({"canaryAcceptance": checks}, GCP)
    assert "istio-canary:canaryAcceptance" in str(error.value) and problem in str(error.value)
    assert "s3cret" not in str(error.value)


def test_acceptance_checks_are_read_with_their_defaults():
    settings = parse(
        {
            "canaryPreSteps": '["mirror"]',
            "canaryAcceptance": '[{"url": "http://a.test/ready", "steps": ["mirror", 10]}]',
        },
        GCP,
    )
    (check,) = settings.release.acceptance
    assert (check.url, check.status, check.timeout_s, check.steps) == (
        "http://a.test/ready",
        200,
        5.0,
        ("mirror", "10"),
    )
    assert check.gates("mirror") and check.gates("10") and not check.gates("60")
