"""The router port's contract (istio_canary/routers/base.py), run on every registered router and on the in-memory
one (testkit/memory_router.py), registered through the same seam: every traffic shape at every weight, mirror
percent and match round-trips through the router's own objects (also as JSON, as a preview carries them); only the
route depends on the traffic; an empty or unreadable object reads as ("", None) and nothing makes read() raise;
check() refuses only with WrongShape; the kinds and the agent's RBAC rules are well-formed and read-only. With a
baseline (analysisBaseline) as a third subset, the route carries its share and still reads back as the canary's."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from istio_canary import routers
from istio_canary.release.jsonshape import WrongShape
from istio_canary.release.names import SUBSETS, subsets, traffic_split
from istio_canary.release.traffic import HEADER, MIRROR, WEIGHTS, Match
from istio_canary.routers.base import READ_VERBS, RoutedService, Router, route_of
from testkit import memory_router

SERVICE = RoutedService(
    name="podinfo",
    namespace="test",
    port=9898,
    public_host="podinfo.example.com",
    gateway="podinfo-gateway",
    subset_label="release",
    subsets=SUBSETS,
)
BASELINED = dataclasses.replace(SERVICE, subsets=subsets(baseline=True))
WEIGHT_STEPS = (0, 1, 50, 99, 100)
MIRROR_PERCENTS = (1, 25, 100)
MATCHES = tuple(Match.parse(text) for text in ("header:x-canary=always", "cookie:canary=always"))
NAMES = sorted({*routers.ROUTERS, memory_router.NAME})
TYPE_TOKEN = re.compile(r"kubernetes:[a-z0-9]([a-z0-9.-]*[a-z0-9])?/v[0-9]+((alpha|beta)[0-9]+)?:[A-Z][A-Za-z0-9]*")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
ROUTE_KEYS = st.sampled_from(["spec", "http", "route", "destination", "subset", "weight", "match", "mirror", "canary"])


@pytest.fixture(autouse=True)
def in_memory_router_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(routers.ROUTERS, memory_router.NAME, memory_router.InMemoryRouter())
    yield


@pytest.fixture(params=NAMES)
def router(request: pytest.FixtureRequest) -> Router:
    return routers.router(request.param)


def traffic_cases(shape: str) -> list[tuple[int, Match | None]]:
    """(mirror percent, match) pairs a shape is built with: each percent and each match (none but for header)."""
    matches = MATCHES if shape == HEADER else (None, *MATCHES)
    return [(percent, match) for percent in MIRROR_PERCENTS for match in matches]


@pytest.mark.parametrize("weight", WEIGHT_STEPS)
@pytest.mark.parametrize("shape", [WEIGHTS, MIRROR, HEADER])
def test_every_shape_and_weight_round_trips_through_the_routers_objects(router: Router, shape: str, weight: int):
    for percent, match in traffic_cases(shape):
        objects = router.objects(SERVICE, traffic_split(weight), shape, percent, match)
        route = route_of(router, objects)
        assert router.read(route) == (shape, weight), (percent, match)
        carried = json.loads(json.dumps(route))  # a preview's inputs and the live object are JSON
        router.check(carried, "steps[0].newState.inputs")
        assert router.read(carried) == (shape, weight), (percent, match)


def test_only_the_route_depends_on_the_traffic_and_there_is_one_object_per_kind(router: Router):
    baseline = router.objects(SERVICE, traffic_split(0), WEIGHTS, 100, None)
    assert router.route_kind in router.kinds
    assert [(obj["apiVersion"], obj["kind"]) for obj in baseline] == [
        (kind.api_version, kind.kind) for kind in router.kinds
    ]
    for obj in baseline:
        assert obj["metadata"] == {"name": SERVICE.name, "namespace": SERVICE.namespace}
        assert isinstance(obj["spec"], dict)
    others = [obj for obj in baseline if obj is not route_of(router, baseline)]
    for shape in (WEIGHTS, MIRROR, HEADER):
        for weight in WEIGHT_STEPS:
            for percent, match in traffic_cases(shape):
                objects = router.objects(SERVICE, traffic_split(weight), shape, percent, match)
                assert [obj for obj in objects if obj is not route_of(router, objects)] == others


@pytest.mark.parametrize("weight", WEIGHT_STEPS)
@pytest.mark.parametrize("shape", [WEIGHTS, MIRROR, HEADER])
def test_a_baseline_is_routed_its_share_and_the_route_still_reads_as_the_canarys(
    router: Router, shape: str, weight: int
):
    for percent, match in traffic_cases(shape):
        route = route_of(router, router.objects(BASELINED, traffic_split(weight, baseline=True), shape, percent, match))
        carried = json.loads(json.dumps(route))
        router.check(carried, "steps[0].newState.inputs")
        assert router.read(route) == router.read(carried) == (shape, weight), (percent, match)
        without = route_of(router, router.objects(SERVICE, traffic_split(weight), shape, percent, match))
        if traffic_split(weight, baseline=True)["baseline"]:  # the baseline's share is in the route, not dropped
            assert route != without, (percent, match)


def test_with_a_baseline_a_step_still_changes_only_the_route(router: Router):
    first = router.objects(BASELINED, traffic_split(0, baseline=True), WEIGHTS, 100, None)
    others = [obj for obj in first if obj is not route_of(router, first)]
    for weight in WEIGHT_STEPS:
        objects = router.objects(BASELINED, traffic_split(weight, baseline=True), WEIGHTS, 100, None)
        assert [obj for obj in objects if obj is not route_of(router, objects)] == others


def test_a_header_shape_needs_a_match(router: Router):
    with pytest.raises(ValueError, match="needs a match"):
        router.objects(SERVICE, traffic_split(0), HEADER, 100, None)


@pytest.mark.parametrize("unreadable", [None, {}, {"spec": None}, {"spec": {}}, "route", [], {"spec": "x"}, 42])
def test_an_empty_or_unreadable_object_reads_as_no_shape_and_no_weight(router: Router, unreadable: object):
    assert router.read(unreadable) == (WEIGHTS, None)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_read_never_raises_and_check_refuses_only_with_wrong_shape(data: st.DataObject):
    router = routers.router(data.draw(st.sampled_from(NAMES)))
    route = json.loads(json.dumps(route_of(router, router.objects(SERVICE, traffic_split(50), HEADER, 25, MATCHES[0]))))
    for _ in range(data.draw(st.integers(1, 4))):  # break the object where its router reads it
        spot = route
        while isinstance(spot, dict | list) and spot and data.draw(st.booleans()):
            spot = spot[data.draw(st.sampled_from(list(spot) if isinstance(spot, dict) else range(len(spot))))]
        if isinstance(spot, dict):
            spot[data.draw(ROUTE_KEYS)] = data.draw(JSON)
    shape, weight = router.read(route)
    assert shape in (WEIGHTS, MIRROR, HEADER) and (weight is None or isinstance(weight, int))
    try:
        router.check(route, "route")
    except WrongShape as refused:
        assert str(refused).startswith("route") and "\n" not in str(refused)


def test_the_kinds_are_kubernetes_types_pulumi_names(router: Router):
    for kind in router.kinds:
        assert TYPE_TOKEN.fullmatch(kind.type_token), kind
        assert re.fullmatch(r"[a-z][a-z0-9]*", kind.plural), kind
        assert kind.pulumi_name(SERVICE.name) == f"{SERVICE.name}-{kind.kind.lower()}"


def test_the_agents_rules_read_the_route_and_nothing_more(router: Router):
    rules = router.rbac_rules()
    assert rules
    for rule in rules:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        assert rule["apiGroups"] and all(isinstance(group, str) and group for group in rule["apiGroups"])
        assert rule["resources"] and all(isinstance(plural, str) and plural for plural in rule["resources"])
        assert rule["verbs"] and set(rule["verbs"]) <= set(READ_VERBS), rule
    kind = router.route_kind
    assert any(kind.group in rule["apiGroups"] and kind.plural in rule["resources"] for rule in rules)


def test_the_seam_defaults_to_istio_and_names_the_known_routers():
    assert routers.router() is routers.ROUTERS["istio"]
    with pytest.raises(KeyError, match="known: in-memory, istio"):
        routers.router("linkerd")
