"""Pulumi mocks, set once per process, and helpers that run the program under them (testkit/mocks.py), with
the fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testkit.mocks import (  # noqa: F401 - the tests import them from here
    BASE_CONFIG,
    DEPENDENCIES,
    GCP,
    GKE_ENDPOINT,
    INGRESS_IP,
    MOCKS,
    PROJECT,
    STACK,
    Mocks,
    Program,
    Registered,
    config,
    run_program,
    unsecret,
)


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    MOCKS.resources.clear()
    DEPENDENCIES.clear()
    yield
    MOCKS.resources.clear()


@pytest.fixture
def program() -> Callable[..., Program]:
    """Run the program with config overrides (keys without prefix)."""

    def run(gcp: dict[str, Any] | None = None, **overrides: Any) -> Program:
        return run_program(config(**overrides), gcp)

    return run
