"""The FAPI-CIBA demo client's credentials, made with ``cryptography`` and written to a directory.

``ciba_demo_data --fapi`` registers a client as a FAPI-CIBA site registers one (PS256 signed
requests and ID tokens, certificate-bound tokens, mTLS or ``private_key_jwt``) and hands its
owner what a real client would hold: an RSA-2048 key pair, a client certificate, and for
``tls_client_auth`` the small demo CA that issued it, the file nginx trusts
(``ssl_client_certificate ca.crt``, docs/nginx-mtls.md).

Each run makes a new client key and certificate, as the command issues new client secrets;
the demo CA is kept when the directory already holds a usable one, so an nginx configured
with it goes on verifying the new certificate. Private keys are written with mode 0600 and
never printed. They are demo material: the CA key especially must never sign anything else.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwcrypto.jwk import JWK

from ciba.constants import AUTH_PRIVATE_KEY_JWT, AUTH_SELF_SIGNED_TLS_CLIENT_AUTH, AUTH_TLS_CLIENT_AUTH

CLIENT_ID = "demo-fapi"
AUTH_METHODS = (AUTH_TLS_CLIENT_AUTH, AUTH_PRIVATE_KEY_JWT, AUTH_SELF_SIGNED_TLS_CLIENT_AUTH)
ALG = "PS256"
ORGANIZATION = "CIBA Demo"
CA_NAME = "CIBA Demo Client CA"
CLIENT_NAME = "demo-fapi kiosk"
CA_DAYS = 5 * 365
CERT_DAYS = 365
#: A CA this close to its end is replaced rather than reused.
CA_MIN_REMAINING = datetime.timedelta(days=30)

CLIENT_KEY, CLIENT_CERT = "client.key", "client.crt"
CLIENT_JWKS, CLIENT_JSON = "client.jwks.json", "client.json"
CA_CERT, CA_KEY = "ca.crt", "ca.key"


@dataclass(frozen=True)
class Credentials:
    """A client's key pair and certificate, and the CA that issued it (``None``: self-signed)."""

    auth_method: str
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    ca_certificate: x509.Certificate | None
    ca_key: Any
    ca_reused: bool

    @property
    def kid(self) -> str:
        """The key's RFC 7638 thumbprint."""
        return self.public_jwk()["kid"]

    @property
    def subject_dn(self) -> str:
        """The certificate's subject DN in RFC 4514 form, as ``tls_client_auth_subject_dn``."""
        return self.certificate.subject.rfc4514_string()

    def public_jwk(self) -> dict[str, Any]:
        jwk = JWK.from_pyca(self.key.public_key())
        return {**jwk.export_public(as_dict=True), "kid": jwk.thumbprint(), "use": "sig", "alg": ALG}

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}


def make(auth_method: str, directory: Path) -> Credentials:
    """New client credentials for ``auth_method``; a demo CA from ``directory`` is reused.

    Nothing is written: :func:`write` does that once the client is registered.
    """
    if auth_method not in AUTH_METHODS:
        raise ValueError(f"auth_method is one of {', '.join(AUTH_METHODS)}, not {auth_method!r}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = _name(CLIENT_NAME)
    if auth_method == AUTH_SELF_SIGNED_TLS_CLIENT_AUTH:
        return Credentials(auth_method, key, _certificate(subject, key, None, None), None, None, False)
    existing = _existing_ca(directory)
    ca_certificate, ca_key = existing or _new_ca()
    certificate = _certificate(subject, key, ca_certificate, ca_key)
    return Credentials(auth_method, key, certificate, ca_certificate, ca_key, existing is not None)


def write(credentials: Credentials, directory: Path, summary: dict[str, Any]) -> dict[str, str]:
    """Write the credentials to ``directory`` (created mode 0700) and ``summary`` as
    ``client.json``, with the files' paths added under ``"files"``; returns those paths."""
    directory = Path(directory).resolve()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = {
        "private_key": directory / CLIENT_KEY,
        "certificate": directory / CLIENT_CERT,
        "jwks": directory / CLIENT_JWKS,
    }
    _write(files["private_key"], _private_pem(credentials.key), private=True)
    _write(files["certificate"], credentials.certificate.public_bytes(serialization.Encoding.PEM))
    _write(files["jwks"], json.dumps(credentials.jwks, indent=2).encode())
    if credentials.ca_certificate is not None:
        files["ca_certificate"] = directory / CA_CERT
        files["ca_private_key"] = directory / CA_KEY
        if not credentials.ca_reused:
            ca_pem = credentials.ca_certificate.public_bytes(serialization.Encoding.PEM)
            _write(files["ca_private_key"], _private_pem(credentials.ca_key), private=True)
            _write(files["ca_certificate"], ca_pem)
    paths = {name: str(path) for name, path in files.items()}
    _write(directory / CLIENT_JSON, json.dumps({**summary, "files": paths}, indent=2).encode())
    return {**paths, "client_json": str(directory / CLIENT_JSON)}


# --- certificates ------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    # Most significant first, so that RFC 4514 (which reverses the order) reads CN=...,O=...
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_ca() -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(CA_NAME)
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def _existing_ca(directory: Path) -> tuple[x509.Certificate, Any] | None:
    """The demo CA already in ``directory``, if its key matches and it has time left."""
    cert_path, key_path = Path(directory) / CA_CERT, Path(directory) / CA_KEY
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound):
        return None
    if not constraints.ca or key.public_key() != certificate.public_key():
        return None
    if certificate.not_valid_after_utc - _now() < CA_MIN_REMAINING:
        return None
    return certificate, key


def _certificate(
    subject: x509.Name, key: rsa.RSAPrivateKey, ca_certificate: x509.Certificate | None, ca_key: Any
) -> x509.Certificate:
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_certificate.subject if ca_certificate is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca_certificate is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    return builder.sign(ca_key if ca_certificate is not None else key, hashes.SHA256())


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


# --- files -------------------------------------------------------------------------------------


def _private_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace ``path`` whole (a reader never sees half a file); a private key is never,
    not even for a moment, readable by others."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
