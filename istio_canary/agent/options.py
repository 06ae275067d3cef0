"""What one agent is told and what it keeps: its Options (`canary agent`'s flags, for one served stack at a
time) and the Memory of each stack it serves, kept from one pass to the next."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Options:
    """How one agent runs; see `canary agent --help`."""

    stack: str
    repo_url: str
    workdir: Path
    token: str | None
    api_url: str
    prometheus_url: str | None
    kube: Any  # kubernetes.client.ApiClient, or None: then Git is taken as live and there is no Lease
    identity: str
    lease_namespace: str | None
    dashboard_url: str = ""
    registry_url: str | None = None  # the image registry's base URL instead of the image's host (tests)
    lease_stack: str = ""  # whose Lease this agent holds: the stack it was started for ("" = `stack`)


@dataclass
class Memory:
    """What the loop keeps between iterations; only to avoid repeating a Slack notice, never to decide."""

    noticed: set[str] = field(default_factory=set)
    interval_s: float = 60.0  # analysisInterval of the last stack read (60 s until one has been read)
    lease_s: int = 180  # three of those intervals
