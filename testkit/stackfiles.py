"""The stack file the release-tool tests and bench/bench_release.py write into their repositories."""

from __future__ import annotations

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
