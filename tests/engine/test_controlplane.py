"""toolchain/controlplane: the certificates verify, a real etcd + kube-apiserver start, serve the REST API to
our client certificate (and to no other), and always stop.

Each test starts its own control plane (not the session one) so it can check that the processes are
gone afterwards. A missing binary fails (run `make toolchain`), it never skips.
"""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from toolchain.controlplane import (
    CONTEXT_NAME,
    ISTIO_CRDS,
    USER_NAME,
    ControlPlaneError,
    KubeClient,
    LocalControlPlane,
    find_binary,
    make_pki,
    read_credentials,
)
from toolchain.controlplane.__main__ import main as cli


@pytest.fixture(scope="module")
def binaries() -> dict[str, str]:
    try:
        return {name: find_binary(name) for name in ("etcd", "kube-apiserver")}
    except ControlPlaneError as err:
        pytest.fail(str(err), pytrace=False)


def gone(pid: int) -> bool:
    """True when no process (not even a zombie) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_namespace_round_trip_and_processes_stop(binaries: dict[str, str], tmp_path: Path) -> None:
    with LocalControlPlane(tmp_path / "cp", etcd=binaries["etcd"], kube_apiserver=binaries["kube-apiserver"]) as cp:
        pids = cp.pids
        assert len(pids) == 2 and not any(gone(p) for p in pids)
        assert cp.server.startswith("https://127.0.0.1:")
        kubeconfig = cp.kubeconfig_path.read_text()
        assert CONTEXT_NAME in kubeconfig and cp.server in kubeconfig

        status, version = cp.request("GET", "/version")
        assert status == 200 and version["major"] == "1" and version["gitVersion"].startswith("v1."), version

        status, body = cp.request("POST", "/api/v1/namespaces", {"metadata": {"name": "cp-test"}})
        assert status == 201, body
        status, ns = cp.request("GET", "/api/v1/namespaces/cp-test")
        assert status == 200 and ns["metadata"]["name"] == "cp-test"

        # Istio CRDs: Established, and a VirtualService in the new namespace round-trips.
        names = cp.apply_crds(ISTIO_CRDS)
        assert "virtualservices.networking.istio.io" in names and len(names) == 4
        vs = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "podinfo", "namespace": "cp-test"},
            "spec": {"hosts": ["podinfo"], "http": [{"route": [{"destination": {"host": "podinfo"}, "weight": 100}]}]},
        }
        path = "/apis/networking.istio.io/v1/namespaces/cp-test/virtualservices"
        status, body = cp.request("POST", path, vs)
        assert status == 201, body
        status, got = cp.request("GET", f"{path}/podinfo")
        assert status == 200 and got["spec"] == vs["spec"]
        assert cp.apply_crds(ISTIO_CRDS) == names  # re-applying is an update, not an error

        # Without a controller-manager a deleted namespace would stay Terminating; the finalizer thread ends it.
        cp.request("DELETE", f"{path}/podinfo")
        status, _ = cp.request("DELETE", "/api/v1/namespaces/cp-test")
        assert status == 200
        deadline = time.monotonic() + 30
        while cp.request("GET", "/api/v1/namespaces/cp-test")[0] != 404:
            assert time.monotonic() < deadline, "namespace cp-test still present 30s after delete"
            time.sleep(0.5)

    assert all(gone(p) for p in pids), "etcd/kube-apiserver still running after the with block"
    assert cp.etcd is None and cp.apiserver is None


def test_failed_start_stops_etcd(binaries: dict[str, str], tmp_path: Path) -> None:
    """kube-apiserver dying at start raises with its log, and the etcd already started is stopped."""
    plane = LocalControlPlane(tmp_path / "cp", etcd=binaries["etcd"], kube_apiserver="/bin/false", ready_timeout=30)
    with pytest.raises(ControlPlaneError, match="kube-apiserver exited"):
        plane.start()
    assert plane.etcd is None and plane.apiserver is None


def test_restart_apiserver_keeps_data(binaries: dict[str, str], tmp_path: Path) -> None:
    """A crashed kube-apiserver comes back on the same port and etcd; objects survive; stop() stops it."""
    with LocalControlPlane(tmp_path / "cp", etcd=binaries["etcd"], kube_apiserver=binaries["kube-apiserver"]) as cp:
        status, body = cp.request("POST", "/api/v1/namespaces", {"metadata": {"name": "survivor"}})
        assert status == 201, body
        assert cp.apiserver is not None
        old_pid, server = cp.apiserver.pid, cp.server
        cp.kill_apiserver()
        with pytest.raises(OSError):
            cp.request("GET", "/readyz", timeout=2)
        cp.restart_apiserver()
        assert cp.apiserver is not None and cp.apiserver.pid != old_pid and cp.server == server
        assert cp.request("GET", "/api/v1/namespaces/survivor")[0] == 200
        pids = cp.pids
    assert all(gone(p) for p in pids)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificates_verify(tmp_path: Path) -> None:
    """The serving cert chains to the CA for 127.0.0.1 (RFC 5280 path validation), the admin cert is the CA's
    client cert for system:masters, private keys are 0600, and the service-account keys are a pair."""
    pki = make_pki(tmp_path / "pki")
    ca, server, client = _cert(pki.ca), _cert(pki.server_cert), _cert(pki.client_cert)
    store = Store([ca])
    for address in ("127.0.0.1", "10.0.0.1"):
        verifier = PolicyBuilder().store(store).build_server_verifier(x509.IPAddress(ipaddress.ip_address(address)))
        assert verifier.verify(server, [])[-1] == ca
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert {"localhost", "kubernetes.default.svc"} <= set(sans.get_values_for_type(x509.DNSName))
    PolicyBuilder().store(store).build_server_verifier(x509.DNSName("kubernetes.default.svc")).verify(server, [])

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    client.verify_directly_issued_by(ca)
    assert client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == USER_NAME
    usages = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.verification.VerificationError):  # a client cert is no serving cert
        verifier.verify(client, [])

    for key in (pki.server_key, pki.client_key, pki.sa_key, tmp_path / "pki" / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    sa_key = load_pem_private_key(pki.sa_key.read_bytes(), None)
    assert isinstance(sa_key, ec.EllipticCurvePrivateKey)
    assert load_pem_public_key(pki.sa_pub.read_bytes()) == sa_key.public_key()
    # A second PKI is a different CA: nothing of one verifies under the other.
    other = make_pki(tmp_path / "other")
    with pytest.raises(x509.verification.VerificationError):
        PolicyBuilder().store(Store([_cert(other.ca)])).build_server_verifier(
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        ).verify(server, [])


def test_client_certificate_and_service_account_keys_work_against_the_apiserver(
    binaries: dict[str, str], tmp_path: Path
) -> None:
    """Through the kubeconfig the API server sees our admin (system:masters); a certificate of another CA is
    refused; the service-account key pair signs tokens the API server accepts; `ready` follows the server."""
    kubeconfig = tmp_path / "cp" / "kubeconfig"
    assert cli(["ready", "--kubeconfig", str(kubeconfig)]) == 1  # no file yet
    with LocalControlPlane(tmp_path / "cp", etcd=binaries["etcd"], kube_apiserver=binaries["kube-apiserver"]) as cp:
        assert cp.pki is not None
        assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
        client = KubeClient.from_kubeconfig(kubeconfig)
        status, review = client.request(
            "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {"apiVersion": "authentication.k8s.io/v1"}
        )
        assert status == 201, review
        user = review["status"]["userInfo"]
        assert user["username"] == USER_NAME and "system:masters" in user["groups"], user

        other = make_pki(tmp_path / "other")
        stranger = KubeClient(cp.server, ca=cp.pki.ca, cert=other.client_cert, key=other.client_key)
        assert stranger.request("GET", "/api/v1/namespaces")[0] == 401

        status, body = client.request("POST", "/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "t"}})
        assert status == 201, body
        status, token = client.request(
            "POST", "/api/v1/namespaces/default/serviceaccounts/t/token", {"spec": {"expirationSeconds": 600}}
        )
        assert status == 201, token
        status, review = client.request(
            "POST", "/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": token["status"]["token"]}}
        )
        assert status == 201 and review["status"].get("authenticated") is True, review
        assert review["status"]["user"]["username"] == "system:serviceaccount:default:t"

        assert cli(["ready", "--kubeconfig", str(kubeconfig)]) == 0
        creds = read_credentials(kubeconfig)
        assert creds.server == cp.server and creds.ca == cp.pki.ca.read_bytes()
    assert cli(["ready", "--kubeconfig", str(kubeconfig)]) == 1  # stopped


def test_kubeconfig_with_certificate_files(tmp_path: Path) -> None:
    """read_credentials takes file references (relative to the kubeconfig) as well as embedded data."""
    pki = make_pki(tmp_path / "pki")
    config = {
        "clusters": [
            {"name": "c", "cluster": {"server": "https://127.0.0.1:1", "certificate-authority": "pki/ca.crt"}}
        ],
        "users": [{"name": "u", "user": {"client-certificate": str(pki.client_cert), "client-key": "pki/admin.key"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}, {"name": "y", "context": {}}],
        "current-context": "x",
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(config))
    creds = read_credentials(tmp_path / "kubeconfig")
    assert creds.ca == pki.ca.read_bytes() and creds.key == pki.client_key.read_bytes()
    with pytest.raises(ControlPlaneError, match="no context named 'z'"):
        read_credentials(tmp_path / "kubeconfig", "z")
