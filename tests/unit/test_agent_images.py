"""Which image lines the agent looks at in an interval: the pure part of istio_canary/agent/images.py."""

from __future__ import annotations

import pytest

from istio_canary.agent.images import branch_for, lines
from istio_canary.release.settings import parse
from istio_canary.stackfile import StackView

GCP = {"project": "acme-prod", "region": "europe-west1"}


def view(**config: object) -> StackView:
    settings = parse({key: str(value) for key, value in config.items()}, GCP, check_environment=False)
    return StackView(settings.app, settings.release, settings.layout)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, ("canary",)),
        ({"gaTagPolicy": "semver:~6.14"}, ("canary", "ga")),
        ({"canaryWeight": 10}, ()),  # users see the canary: a new version would change what is judged
        ({"canaryWeight": 100, "gaTagPolicy": "semver:~6.14"}, ()),
        ({"agentWatchImages": "false"}, ()),
    ],
)
def test_lines_watched_only_while_no_release_has_traffic(config, expected):
    assert lines(view(**config)) == expected


def test_one_branch_per_line_not_per_tag():
    assert branch_for("dev", "canary") == "canary/dev-image-canary"
    assert branch_for("dev", "ga") != branch_for("dev", "canary")
