"""Throwaway certificates for the local control plane, made with the `cryptography` library.

One CA signs the API server's serving certificate (127.0.0.1, the `kubernetes` Service IP and names) and an
admin client certificate (O=system:masters, which the API server's bootstrap RBAC binds to cluster-admin);
a separate key pair signs service-account tokens. Every key is ECDSA P-256: kube-apiserver, Go's TLS,
Python's ssl and the ES256 service-account signer all take it, and it is made in well under a millisecond
(an RSA-2048 key takes tens). Private keys are written 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from .common import SERVICE_IP, USER_NAME, ControlPlaneError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError as err:  # pragma: no cover - depends on the venv
    raise ControlPlaneError(
        "the local control plane needs the `cryptography` package: .venv/bin/pip install cryptography==50.0.2"
    ) from err

VALID_FOR = datetime.timedelta(days=30)
CA_NAME = "istio-canary-local-ca"
SERVER_IPS = ("127.0.0.1", SERVICE_IP)
SERVER_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files in one directory."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    sa_key: Path
    sa_pub: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _usage(*, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a little clock skew
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, subject: x509.Name, usage: x509.ObjectIdentifier
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and a certificate for it signed by the CA, for one extended key usage (server or client auth)."""
    key = _key()
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        sans = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS] + [x509.DNSName(d) for d in SERVER_DNS]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(path: Path, data: bytes, *, private: bool = False) -> Path:
    """Write a PEM file; a private key is created 0600 (never readable by others, not even for a moment)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(directory: Path) -> Pki:
    """CA, API server serving cert, admin client cert and service-account key pair as PEM files in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_subject = _name(CA_NAME)
    ca_cert = (
        _builder(ca_subject, ca_subject, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key, server_cert = _leaf(ca_key, ca_cert, _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH)
    client_key, client_cert = _leaf(
        ca_key, ca_cert, _name(USER_NAME, organization="system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH
    )
    sa_key = _key()
    sa_pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write(directory / "ca.key", _key_pem(ca_key), private=True)
    return Pki(
        ca=_write(directory / "ca.crt", _cert_pem(ca_cert)),
        server_cert=_write(directory / "server.crt", _cert_pem(server_cert)),
        server_key=_write(directory / "server.key", _key_pem(server_key), private=True),
        client_cert=_write(directory / "admin.crt", _cert_pem(client_cert)),
        client_key=_write(directory / "admin.key", _key_pem(client_key), private=True),
        sa_key=_write(directory / "sa.key", _key_pem(sa_key), private=True),
        sa_pub=_write(directory / "sa.pub", sa_pub),
    )
