"""One `local` stack through the life of a canary, with the real Pulumi CLI against a local API server.

The tests run in file order and share one stack: create -> weight step -> canary tag bump -> git revert of a
promotion -> invalid weights -> API server crash mid-up -> engine killed mid-update -> engine killed mid-create
-> destroy.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from testkit.engine import (
    NAMESPACE,
    STACK,
    Kube,
    Project,
    Step,
    changes,
    namespace_objects,
    obj,
    process_tree,
    resource_versions,
    stack_objects,
    steps,
)
from toolchain.controlplane import LocalControlPlane

IMAGE = "ghcr.io/stefanprodan/podinfo"
VS_TYPE = "kubernetes:networking.istio.io/v1:VirtualService"
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
# Everything the `local` stack creates, as (kind, metadata.name).
EXPECTED = {
    ("Namespace", NAMESPACE),
    ("Deployment", "podinfo-ga"),
    ("Deployment", "podinfo-canary"),
    ("Deployment", "podinfo-load"),
    ("Service", "podinfo"),
    ("DestinationRule", "podinfo"),
    ("VirtualService", "podinfo"),
    ("Gateway", "podinfo-gateway"),
    ("PeerAuthentication", "default"),
}


def split(kube: Kube) -> dict[str, int]:
    """The VirtualService's weights on the API server, by subset."""
    vs = obj(kube, "VirtualService", "podinfo")
    assert vs is not None, "VirtualService podinfo not on the API server"
    return {r["destination"]["subset"]: r.get("weight", 0) for r in vs["spec"]["http"][0]["route"]}


def image(kube: Kube, name: str) -> str:
    """The container image of a Deployment on the API server."""
    deployment = obj(kube, "Deployment", name)
    assert deployment is not None, f"Deployment {name} not on the API server"
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def errors(preview: dict) -> list[str]:
    """The error diagnostics of a `--json` preview."""
    return [d["message"] for d in preview.get("diagnostics", []) if d.get("severity") == "error"]


def pending_operations(project: Project) -> list[dict]:
    """The stack state's pending operations (what an interrupted engine leaves behind)."""
    return project.export()["deployment"].get("pending_operations") or []


def assert_converged(project: Project, kube: Kube) -> None:
    """State and API server agree: no pending operations, no orphaned or missing object."""
    assert pending_operations(project) == []
    assert namespace_objects(kube) == stack_objects(project.export()) == EXPECTED - {("Namespace", NAMESPACE)}


def test_preview_of_fresh_stack_lists_every_resource(project: Project, kube: Kube) -> None:
    """A fresh stack's preview creates exactly the app's objects and touches nothing on the server."""
    _, preview = project.preview()
    found = steps(preview)
    assert {s.op for s in found} == {"create"}, found
    assert {(s.kind, s.name) for s in found} == EXPECTED
    assert len(found) == len(EXPECTED), "a resource is registered twice"
    assert obj(kube, "Namespace", NAMESPACE) is None, "preview must not create anything"


def test_up_creates_objects_on_the_api_server(project: Project, kube: Kube) -> None:
    """`pulumi up` creates the app; read every object back from the API server."""
    project.up()

    namespace = obj(kube, "Namespace", NAMESPACE)
    assert namespace is not None
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
    assert namespace["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"  # the test-only transform

    assert image(kube, "podinfo-ga") == f"{IMAGE}:6.8.0"
    assert image(kube, "podinfo-canary") == f"{IMAGE}:6.9.0"
    for subset in ("ga", "canary"):
        deployment = obj(kube, "Deployment", f"podinfo-{subset}")
        assert deployment is not None
        assert deployment["spec"]["selector"]["matchLabels"] == {"app": "podinfo", "release": subset}
        assert deployment["spec"]["replicas"] == 2
    load = obj(kube, "Deployment", "podinfo-load")
    assert load is not None
    assert load["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "http://podinfo.test:9898/version"

    service = obj(kube, "Service", "podinfo")
    assert service is not None
    assert service["spec"]["selector"] == {"app": "podinfo"}
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("http", 9898)]

    rule = obj(kube, "DestinationRule", "podinfo")
    assert rule is not None
    assert rule["spec"]["host"] == "podinfo.test.svc.cluster.local"
    assert rule["spec"]["subsets"] == [
        {"name": "ga", "labels": {"release": "ga"}},
        {"name": "canary", "labels": {"release": "canary"}},
    ]
    assert split(kube) == {"ga": 100, "canary": 0}
    gateway = obj(kube, "Gateway", "podinfo-gateway")
    assert gateway is not None
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    assert [s["port"]["number"] for s in gateway["spec"]["servers"]] == [80]
    peer = obj(kube, "PeerAuthentication", "default")
    assert peer is not None and peer["spec"]["mtls"]["mode"] == "STRICT"
    assert_converged(project, kube)


def test_weight_change_updates_only_the_virtualservice(project: Project, kube: Kube) -> None:
    """`pulumi config set canaryWeight 60`: the preview is one in-place update; up gives 40/60."""
    before = resource_versions(kube)
    project.config_set("canaryWeight", "60")
    _, preview = project.preview()
    assert changes(preview) == [Step("update", VS_TYPE, "podinfo")]
    summary = preview["changeSummary"]
    assert summary.get("update") == 1 and not {"create", "delete", "replace"} & set(summary), summary

    project.up()
    assert split(kube) == {"ga": 40, "canary": 60}
    after = resource_versions(kube)
    assert {key for key in before if before[key] != after.get(key)} == {("VirtualService", "podinfo")}


def test_canary_tag_bump_updates_one_deployment_in_place(project: Project, kube: Kube) -> None:
    """`pulumi config set canaryVersion 6.9.1`: one Deployment updated in place, not replaced."""
    uid = obj(kube, "Deployment", "podinfo-canary")["metadata"]["uid"]  # type: ignore[index]
    before = resource_versions(kube)
    project.config_set("canaryVersion", "6.9.1")
    _, preview = project.preview()
    assert changes(preview) == [Step("update", DEPLOYMENT_TYPE, "podinfo-canary")]

    project.up()
    assert image(kube, "podinfo-canary") == f"{IMAGE}:6.9.1"
    assert image(kube, "podinfo-ga") == f"{IMAGE}:6.8.0"
    assert obj(kube, "Deployment", "podinfo-canary")["metadata"]["uid"] == uid  # type: ignore[index]
    after = resource_versions(kube)
    assert {key for key in before if before[key] != after.get(key)} == {("Deployment", "podinfo-canary")}


def test_git_revert_of_a_promotion_is_its_exact_inverse(project: Project, kube: Kube) -> None:
    """Commit a promotion to 100, up, `git revert` it: the preview undoes exactly that, up restores 40/60."""
    project.git("commit", "-q", "-m", "canary 6.9.1 at 60%", "--", f"Pulumi.{STACK}.yaml")
    project.config_set("canaryWeight", "100")
    project.git("commit", "-q", "-m", "promote canary to 100%", "--", f"Pulumi.{STACK}.yaml")
    _, forward = project.preview()
    project.up()
    assert split(kube) == {"ga": 0, "canary": 100}

    project.git("revert", "--no-edit", "HEAD")
    assert project.git("status", "--porcelain").stdout == ""
    _, back = project.preview()
    assert changes(back) == changes(forward) == [Step("update", VS_TYPE, "podinfo")]
    fwd = next(s for s in forward["steps"] if s["op"] == "update")
    rev = next(s for s in back["steps"] if s["op"] == "update")
    assert rev["newState"]["inputs"]["spec"] == fwd["oldState"]["inputs"]["spec"]
    assert rev["oldState"]["inputs"]["spec"] == fwd["newState"]["inputs"]["spec"]

    project.up()
    assert split(kube) == {"ga": 40, "canary": 60}


@contextmanager
def rejected_config(project: Project, kube: Kube) -> Iterator[None]:
    """Config edits inside are undone afterwards; the API server must not have moved (split stays 40/60)."""
    before = resource_versions(kube)
    try:
        yield
    finally:
        project.git("checkout", "--", f"Pulumi.{STACK}.yaml")
    assert resource_versions(kube) == before
    assert split(kube) == {"ga": 40, "canary": 60}


def test_invalid_weight_fails_naming_the_key_and_changes_nothing(project: Project, kube: Kube) -> None:
    """canaryWeight 101 and abc: preview and up fail naming canaryWeight; no object's resourceVersion moves."""
    with rejected_config(project, kube):
        project.config_set("canaryWeight", "101")
        run, preview = project.preview(check=False)
        assert run.returncode != 0
        # The program's ConfigError from istio_canary/release/config_reader.py, verbatim, as the engine's error diagnostic.
        assert any(
            "istio_canary.release.config_reader.ConfigError: invalid stack config:\n"
            "  istio-canary:canaryWeight: '101' is not allowed; expected a whole number from 0 to 100" in message
            for message in errors(preview)
        ), errors(preview)
        up = project.up(check=False)
        assert up.returncode != 0 and "istio-canary:canaryWeight: '101' is not allowed" in up.output

        project.config_set("canaryWeight", "abc")
        run, _ = project.preview(check=False)
        assert run.returncode != 0
        # Pulumi.yaml types canaryWeight as integer: the engine rejects it before the program runs (no JSON).
        assert (
            "error: validating stack config: "
            "Stack 'local' with configuration key 'canaryWeight' must be of type 'integer'" in run.output
        )


def test_misspelled_key_fails_instead_of_being_ignored(project: Project, kube: Kube) -> None:
    """`config set canaryWeigth 100` is not silently a no-op: the program names the unknown key; nothing moves."""
    with rejected_config(project, kube):
        project.config_set("canaryWeigth", "100")
        run, preview = project.preview(check=False)
        assert run.returncode != 0
        messages = errors(preview)
        assert any("istio-canary:canaryWeigth: unknown config key" in message for message in messages), messages


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _object_step(event: dict, kind: str) -> str:
    """The Pulumi name of a Kubernetes object whose update `kind` event this is ("" otherwise)."""
    meta = event.get(kind, {}).get("metadata", {})
    return _name(meta["urn"]) if meta.get("type", "").startswith("kubernetes:") and meta.get("op") == "update" else ""


def _up_and_crash(project: Project, when: Callable[[dict], bool], crash: Callable[[subprocess.Popen], None]) -> Crash:
    """Run `pulumi up --json --parallel 1` and call `crash(proc)` at the first engine event `when` accepts.

    --parallel 1 makes the engine apply one object at a time, so the crash lands between or inside steps with
    the rest of the change still to do.
    """
    argv = ["pulumi", "up", "--yes", "--skip-preview", "--json", "--parallel", "1", "--stack", STACK]
    proc = subprocess.Popen(
        argv, cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    crash_ = Crash()
    deadline = time.monotonic() + 120  # bounded: no event accepted by then fails the test
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            crash_.events.extend(_event(line))
            if crash_.events and when(crash_.events[-1]):
                crash_.at = crash_.events[-1]
                crash(proc)
                break
        crash_.code = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            _kill_tree(proc)
            proc.wait(30)
    while (line := lines.get(timeout=10)) is not None:
        crash_.events.extend(_event(line))
    assert crash_.at is not None, "up finished before the crash could be injected"
    return crash_


@dataclass
class Crash:
    """What happened to an `up` that was crashed."""

    code: int | None = None
    at: dict | None = None
    events: list[dict] = field(default_factory=list)

    @property
    def updated(self) -> list[str]:
        """Objects whose update finished."""
        return [name for e in self.events if (name := _object_step(e, "resOutputsEvent"))]

    @property
    def errors(self) -> list[str]:
        return [
            e["diagnosticEvent"]["message"].strip()
            for e in self.events
            if e.get("diagnosticEvent", {}).get("severity") == "error"
        ]


def _event(line: str) -> list[dict]:
    """An engine event from one line of `--json` output ([] for anything else)."""
    try:
        event = json.loads(line)
    except ValueError:
        return []
    return [event] if isinstance(event, dict) else []


def test_apiserver_crash_mid_up_converges_on_rerun(
    project: Project, kube: Kube, control_plane: LocalControlPlane
) -> None:
    """SIGKILL kube-apiserver during an up touching four objects, restart it, rerun up: the stack converges."""
    change = {"canaryWeight": "10", "gaVersion": "6.9.1", "loadRate": "10", "tlsCredentialName": "podinfo-tls"}
    for key, value in change.items():
        project.config_set(key, value)

    def crash(_: subprocess.Popen) -> None:
        control_plane.kill_apiserver()

    # The crash lands after the first object update finished: the rest of the change fails to connect.
    crashed = _up_and_crash(project, lambda e: bool(_object_step(e, "resOutputsEvent")), crash)
    print(f"apiserver crash: SIGKILL after {crashed.updated}; up exited {crashed.code}")
    print("apiserver crash: errors: " + " | ".join(m[:240] for m in crashed.errors))
    assert crashed.code == 1, "up must fail when the API server dies in the middle"
    # The program's order; the kill races the engine's next step, which (rarely) may still finish first.
    order = ["podinfo-ga", "podinfo-virtualservice", "podinfo-gateway", "podinfo-load"]
    assert 1 <= len(crashed.updated) < len(order) and crashed.updated == order[: len(crashed.updated)]
    assert any("connection refused" in m for m in crashed.errors)
    # The engine failed the step cleanly: nothing pending, no lock left behind.
    assert pending_operations(project) == []
    control_plane.restart_apiserver()  # same argv: same etcd, port and certificates
    # The server holds exactly the updates that finished.
    assert image(kube, "podinfo-ga") == f"{IMAGE}:6.9.1"
    vs_done = "podinfo-virtualservice" in crashed.updated
    assert split(kube) == ({"ga": 90, "canary": 10} if vs_done else {"ga": 40, "canary": 60})

    # The recovery: plain `pulumi up` again; no refresh or cancel is needed.
    rerun = project.up()
    print(f"apiserver crash: rerun up took {rerun.seconds:.1f}s")
    assert split(kube) == {"ga": 90, "canary": 10}
    load = obj(kube, "Deployment", "podinfo-load")
    assert load is not None and load["spec"]["template"]["spec"]["containers"][0]["command"][6] == "10"
    gateway = obj(kube, "Gateway", "podinfo-gateway")
    assert gateway is not None and [s["port"]["number"] for s in gateway["spec"]["servers"]] == [80, 443]
    assert_converged(project, kube)
    _, preview = project.preview()
    assert changes(preview) == [], "the stack did not converge: a preview after the rerun still has changes"


def _freeze_and_kill_engine(plane: LocalControlPlane) -> Callable[[subprocess.Popen], None]:
    """A crash: freeze kube-apiserver (SIGSTOP) so the step's request hangs, SIGKILL the CLI with its
    plugins, then let the API server run again."""
    apiserver = plane.apiserver
    assert apiserver is not None

    def crash(proc: subprocess.Popen) -> None:
        apiserver.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3)
            _kill_tree(proc)
        finally:
            apiserver.send_signal(signal.SIGCONT)

    return crash


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the CLI and every process under it, as a killed CI job would lose them all.

    Plugins (language host, program, provider) run in process groups of their own, so killing the CLI's
    group would leave them running; they are found through /proc instead.
    """
    for pid in process_tree(proc.pid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(30)


def _pending(project: Project) -> list[tuple[str, str]]:
    """(operation, Pulumi name) of each pending operation in the state."""
    return [(op["type"], _name(op["resource"]["urn"])) for op in pending_operations(project)]


def test_engine_killed_mid_step_leaves_lock_and_pending_operation(
    project: Project, kube: Kube, control_plane: LocalControlPlane
) -> None:
    """SIGKILL the CLI while a step is in flight: `pulumi cancel` clears the lock, `up` clears the pending op."""
    for key, value in {"canaryWeight": "20", "loadRate": "20", "gaVersion": "6.9.2"}.items():
        project.config_set(key, value)
    started: list[str] = []

    def second_update_starts(event: dict) -> bool:
        # One update finished, the next in flight: the engine has persisted a pending operation for it.
        if name := _object_step(event, "resourcePreEvent"):
            started.append(name)
        return len(started) == 2

    crashed = _up_and_crash(project, second_update_starts, _freeze_and_kill_engine(control_plane))
    in_flight = started[-1]
    ops = _pending(project)
    print(f"engine kill: in flight {in_flight}; exit {crashed.code}; pending operations {ops}")
    assert crashed.code == -signal.SIGKILL
    assert crashed.updated == ["podinfo-ga"] and in_flight == "podinfo-virtualservice"
    assert ops == [("updating", in_flight)]

    locked = project.up(check=False)
    assert locked.returncode != 0 and "currently locked" in locked.output and "pulumi cancel" in locked.output
    project.pulumi("cancel", "--yes")
    rerun = project.up()
    # The engine warns about the pending update and applies the change again (an update is idempotent).
    assert "1 pending operations from previous deployment" in rerun.output
    assert split(kube) == {"ga": 80, "canary": 20}
    assert image(kube, "podinfo-ga") == f"{IMAGE}:6.9.2"
    assert_converged(project, kube)
    _, preview = project.preview()
    assert changes(preview) == []


def test_engine_killed_mid_create_needs_clear_pending_creates(
    project: Project, kube: Kube, control_plane: LocalControlPlane
) -> None:
    """SIGKILL the CLI while a create is in flight: `up` converges but keeps the pending create until
    `pulumi refresh --clear-pending-creates`."""
    project.config_set("loadGenerator", "false")
    project.up()
    assert obj(kube, "Deployment", "podinfo-load") is None
    project.config_set("loadGenerator", "true")

    def create_starts(event: dict) -> bool:
        meta = event.get("resourcePreEvent", {}).get("metadata", {})
        return meta.get("type", "").startswith("kubernetes:") and meta.get("op") == "create"

    crashed = _up_and_crash(project, create_starts, _freeze_and_kill_engine(control_plane))
    assert crashed.code == -signal.SIGKILL
    assert _pending(project) == [("creating", "podinfo-load")]
    # Whether the frozen API server still got the request (and created the object) depends on timing.
    print(
        f"create kill: podinfo-load on the server after the kill: {obj(kube, 'Deployment', 'podinfo-load') is not None}"
    )

    project.pulumi("cancel", "--yes")
    rerun = project.up()
    assert "1 pending operations from previous deployment" in rerun.output
    assert obj(kube, "Deployment", "podinfo-load") is not None
    # The create is done, yet the engine keeps the pending create (and warns on every up) ...
    assert _pending(project) == [("creating", "podinfo-load")]
    # ... until it is cleared explicitly; a pending update, by contrast, is cleared by the next up.
    project.pulumi("refresh", "--clear-pending-creates", "--yes", "--skip-preview")
    assert_converged(project, kube)
    _, preview = project.preview()
    assert changes(preview) == []


def test_destroy_removes_what_up_created(project: Project, kube: Kube, control_plane: LocalControlPlane) -> None:
    """`pulumi destroy`: every object is deleted; the bare API server leaves the namespace Terminating."""
    project.pulumi("destroy", "--yes", "--skip-preview")
    assert namespace_objects(kube) == set()
    assert project.export()["deployment"].get("resources") in (None, [])

    # Finalizing a namespace is kube-controller-manager's job, which does not run here: the API server only
    # marks it for deletion, and skipAwait keeps the provider from waiting for it to go.
    namespace = obj(kube, "Namespace", NAMESPACE)
    assert namespace is not None
    assert namespace["metadata"].get("deletionTimestamp")
    assert namespace["status"]["phase"] == "Terminating"
    assert namespace["spec"]["finalizers"] == ["kubernetes"]
    # The namespace controller's last step (the namespace is empty) completes the delete.
    assert control_plane.finalize_terminating_namespaces() == [NAMESPACE]
    assert obj(kube, "Namespace", NAMESPACE) is None
