"""The stack file the release-tool tests and bench/bench_release.py write into their repositories."""

from __future__ import annotations

import json

# A stack file as a person keeps it: comments, a quoted value, a list, release keys in their own order.
STACK_TEMPLATE = """\
# The dev stack's desired state. Every change here is a pull request.
config:
  # Placeholders: set your own with `pulumi config set gcp:project <id>`.
  gcp:project: change-me-gcp-project
  gcp:region: europe-west1
  istio-canary:clusterMode: gke
  istio-canary:namespace: {namespace}
  istio-canary:gaVersion: {ga}
  istio-canary:canaryVersion: "{canary}"  # quoted by hand; the tool writes the Pulumi form
  istio-canary:canarySteps:
    - 10
    - 60
    - 100
  istio-canary:analysisWindow: {window}
  # The traffic step: 0 -> 10 -> 60 -> 100.
  # Change it with `canary promote`; roll back with `git revert` or `canary rollback`.
  istio-canary:canaryWeight: {weight}
  istio-canary:canaryTagPolicy: {policy}  # which tags watch-images may pick
"""


def stack_text(
    namespace: str = "healthy",
    weight: object = 0,
    ga: str = "6.8.0",
    canary: str = "6.9.0",
    policy: str = "semver:6.x",
    window: str = "5m",
) -> str:
    """The test stack file with the given values."""
    return STACK_TEMPLATE.format(namespace=namespace, weight=weight, ga=ga, canary=canary, policy=policy, window=window)


def policy_stack(
    policy: str,
    ga: str,
    canary: str,
    image: str,
    tag_filter: str = "",
    extract: str = "",
    weight: object = 0,
    namespace: str = "healthy",
) -> str:
    """The test stack file under another tag policy, image, filter and extract (each value quoted as JSON, which
    YAML reads back as the same string: a filter holds `[`, `(` and `$`)."""
    text = stack_text(namespace=namespace, ga=json.dumps(ga), canary=canary, policy=json.dumps(policy), weight=weight)
    text += f"  istio-canary:image: {image}\n"
    for key, value in (("imageTagFilter", tag_filter), ("imageTagExtract", extract)):
        if value:
            text += f"  istio-canary:{key}: {json.dumps(value)}\n"
    return text
