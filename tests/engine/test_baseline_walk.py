"""The fresh baseline (analysisBaseline, issue 21) on the real engine and a real API server: `<app>-baseline` runs
gaVersion beside the canary with the canary's share (GA keeps the rest), each weight step is still one
VirtualService update whose revert previews as its exact inverse, and a new canaryVersion restarts the baseline
with it (both start fresh) and touches nothing else.

Its own project copy and namespace (`baseline`), so the shared `local` stack of test_engine_stack.py is untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from testkit.engine import Kube, Project, changes, only_update
from toolchain.controlplane import LocalControlPlane

NAMESPACE = "baseline"
VS_TYPE = "kubernetes:networking.istio.io/v1:VirtualService"
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
IMAGE = "ghcr.io/stefanprodan/podinfo"
APPS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
VS_PATH = f"/apis/networking.istio.io/v1/namespaces/{NAMESPACE}/virtualservices/podinfo"
DR_PATH = f"/apis/networking.istio.io/v1/namespaces/{NAMESPACE}/destinationrules/podinfo"
# canary weight -> the split the VirtualService must carry: the baseline gets min(w, 100 - w), GA the rest
WALK = [(10, {"ga": 80, "baseline": 10, "canary": 10}), (60, {"ga": 0, "baseline": 40, "canary": 60})]


def split(kube: Kube) -> dict[str, int]:
    service = kube.get(VS_PATH)
    assert service is not None, "VirtualService podinfo not on the API server"
    return {r["destination"]["subset"]: r.get("weight", 0) for r in service["spec"]["http"][0]["route"]}


def deployment(kube: Kube, subset: str) -> dict:
    found = kube.get(f"{APPS}/podinfo-{subset}")
    assert found is not None, f"Deployment podinfo-{subset} not on the API server"
    return found


def image(kube: Kube, subset: str) -> str:
    return deployment(kube, subset)["spec"]["template"]["spec"]["containers"][0]["image"]


def test_the_baseline_runs_ga_beside_the_canary_and_each_step_is_one_update(
    own_project: Callable[[str], Project], kube: Kube, control_plane: LocalControlPlane
) -> None:
    project = own_project("baseline-walk")
    for key, value in (
        ("namespace", NAMESPACE),
        ("loadGenerator", "false"),
        ("analysisJudge", "statistical"),
        ("analysisBaseline", "true"),
    ):
        project.config_set(key, value)
    project.git("commit", "-qam", "a fresh baseline beside the canary")
    try:
        project.up()
        assert image(kube, "baseline") == image(kube, "ga") == f"{IMAGE}:6.8.0"
        assert image(kube, "canary") == f"{IMAGE}:6.9.0"
        baseline = deployment(kube, "baseline")
        assert baseline["spec"]["selector"]["matchLabels"] == {"app": "podinfo", "release": "baseline"}
        assert baseline["spec"]["template"]["metadata"]["annotations"]["istio-canary/baseline-for"] == "6.9.0"
        rule = kube.get(DR_PATH) or {}
        assert {s["name"] for s in rule["spec"]["subsets"]} == {"ga", "baseline", "canary"}
        assert sum(split(kube).values()) == 100 and split(kube)["canary"] == 0

        for weight, expected in WALK:
            project.config_set("canaryWeight", str(weight))
            project.git("commit", "-qam", f"canary step: {weight}%")
            _, forward = project.preview()
            assert [(s.op, s.type, s.name) for s in changes(forward)] == [("update", VS_TYPE, "podinfo")], weight
            project.up()
            assert split(kube) == expected, weight
            project.git("revert", "--no-edit", "HEAD")
            _, back = project.preview()
            assert [(s.op, s.type, s.name) for s in changes(back)] == [("update", VS_TYPE, "podinfo")], weight
            assert only_update(back)["newState"]["inputs"]["spec"] == only_update(forward)["oldState"]["inputs"]["spec"]
            project.git("reset", "-q", "--hard", "HEAD~1")  # keep the step; its revert was only previewed

        uids = {subset: deployment(kube, subset)["metadata"]["uid"] for subset in ("ga", "baseline", "canary")}
        project.config_set("canaryVersion", "6.9.1")
        project.git("commit", "-qam", "a new canary version")
        _, bump = project.preview()
        assert sorted((s.op, s.type, s.name) for s in changes(bump)) == [
            ("update", DEPLOYMENT_TYPE, "podinfo-baseline"),
            ("update", DEPLOYMENT_TYPE, "podinfo-canary"),
        ]
        project.up()
        assert image(kube, "canary") == f"{IMAGE}:6.9.1"
        assert image(kube, "baseline") == image(kube, "ga") == f"{IMAGE}:6.8.0"  # still GA's version, fresh pods
        annotations = deployment(kube, "baseline")["spec"]["template"]["metadata"]["annotations"]
        assert annotations["istio-canary/baseline-for"] == "6.9.1"
        assert {s: deployment(kube, s)["metadata"]["uid"] for s in uids} == uids  # updated in place, not replaced
        assert split(kube) == WALK[-1][1]
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview", check=False)
        project.pulumi("stack", "rm", "--yes", "--force", check=False)
        # No namespace controller runs here: finish the delete, as test_engine_stack.py's destroy does for its own,
        # so no Terminating namespace of this test is left for another to find.
        control_plane.finalize_terminating_namespaces()
