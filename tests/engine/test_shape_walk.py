"""Steps before real users on the real engine and a real API server: walking canaryPreSteps [mirror, header] and
then the weights 10, 60, 100 is one VirtualService update per step, each typed as a user types it and committed,
the VirtualService on the API server has the step's shape afterwards, and a `git revert` of every step previews
as its exact inverse.

Its own project copy and namespace (`shapes`), so the shared `local` stack of test_engine_stack.py is untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from istio_canary.routers import router
from testkit.engine import Kube, Project, changes, only_update

NAMESPACE = "shapes"
VS_TYPE = "kubernetes:networking.istio.io/v1:VirtualService"
VS_PATH = f"/apis/networking.istio.io/v1/namespaces/{NAMESPACE}/virtualservices/podinfo"
# (what a person sets for the step, the shape and canary weight the VirtualService must then have)
WALK = [
    ({"canaryShape": "mirror"}, ("mirror", 0)),
    ({"canaryShape": "header"}, ("header", 0)),
    ({"canaryShape": "", "canaryWeight": "10"}, ("", 10)),
    ({"canaryWeight": "60"}, ("", 60)),
    ({"canaryWeight": "100"}, ("", 100)),
]


def test_the_shape_walk_is_one_virtualservice_update_per_step_and_every_revert_its_inverse(
    own_project: Callable[[str], Project], kube: Kube
) -> None:
    project = own_project("shape-walk")
    for key, value in (
        ("namespace", NAMESPACE),
        ("loadGenerator", "false"),
        ("canaryMatch", "header:x-canary=always"),
    ):
        project.config_set(key, value)
    project.pulumi("config", "set", "--path", "canaryPreSteps[0]", "mirror:50")
    project.pulumi("config", "set", "--path", "canaryPreSteps[1]", "header")
    project.git("commit", "-qam", "shape steps before real users")
    try:
        project.up()
        assert router().read(kube.get(VS_PATH) or {}) == ("", 0)
        for settings, (shape, weight) in WALK:
            for key, value in settings.items():
                project.config_set(key, value)
            project.git("commit", "-qam", f"canary step: {settings}")
            _, forward = project.preview()
            assert [(s.op, s.type, s.name) for s in changes(forward)] == [("update", VS_TYPE, "podinfo")], settings
            project.up()
            service = kube.get(VS_PATH) or {}
            assert router().read(service) == (shape, weight), settings
            if shape == "mirror":
                assert service["spec"]["http"][-1]["mirrorPercentage"] == {"value": 50}
            project.git("revert", "--no-edit", "HEAD")
            _, back = project.preview()
            assert [(s.op, s.type, s.name) for s in changes(back)] == [("update", VS_TYPE, "podinfo")], settings
            assert only_update(back)["newState"]["inputs"]["spec"] == only_update(forward)["oldState"]["inputs"]["spec"]
            assert only_update(back)["oldState"]["inputs"]["spec"] == only_update(forward)["newState"]["inputs"]["spec"]
            project.git("reset", "-q", "--hard", "HEAD~1")  # keep the step; its revert was only previewed
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview", check=False)
        project.pulumi("stack", "rm", "--yes", "--force", check=False)
