"""A test PKI for the mutual-TLS tests, made with ``cryptography`` when the tests run.

* ``Pki.ca``: the CA whose certificates nginx verifies (``ssl_client_certificate``);
  ``Pki.issue(...)`` makes client certificates signed by it.
* ``Pki.other_ca``: an unrelated CA; ``Pki.wrong(cn)`` is a certificate with the same subject
  as a good one, signed by it (nginx verdict ``FAILED:...``).
* ``Pki.self_signed(cn)``: for ``self_signed_tls_client_auth`` (RFC 8705 §2.2).
* ``Pki.server``: nginx's own certificate for 127.0.0.1 and localhost, RSA as the FAPI cipher
  suites (``ECDHE-RSA-...``) need, issued by ``Pki.server_ca`` (``Pki.server_ca_file``).

Every credential is written to the PKI's directory, so that nginx and ``requests`` can read it.
``public_jwk`` and ``x5t_s256`` are what a client registers and what a bound token carries.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.keys import public_jwk as _public_jwk

ORGANIZATION = "Test Shop"

#: The CIBA settings of a server behind nginx as docs/nginx-mtls.md configures it (and as
#: ``CIBA_TEST_MTLS=1`` sets tests/settings.py): the two headers, believed from 127.0.0.1.
MTLS_SETTINGS = {
    "TRUSTED_PROXIES": ["127.0.0.1/32"],
    "MTLS_CERT_HEADER": "HTTP_X_SSL_CLIENT_CERT",
    "MTLS_CERT_HEADER_FORMAT": "escaped-pem",
    "MTLS_CERT_VERIFY_HEADER": "HTTP_X_SSL_CLIENT_VERIFY",
}


def presenting(credential: Credential, verdict: str = "SUCCESS") -> dict[str, str]:
    """The request headers nginx sets for a connection that presented ``credential``, for the
    in-process tests (Django's test client calls from 127.0.0.1)."""
    return {"HTTP_X_SSL_CLIENT_CERT": credential.escaped_pem, "HTTP_X_SSL_CLIENT_VERIFY": verdict}


@dataclass(frozen=True)
class Credential:
    """A certificate and its private key, in memory and on disk."""

    certificate: x509.Certificate
    key: Any
    cert_path: Path
    key_path: Path

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def paths(self) -> tuple[str, str]:
        """``(cert, key)`` as ``requests`` takes them (``Session.cert``)."""
        return str(self.cert_path), str(self.key_path)

    @property
    def subject_dn(self) -> str:
        """The subject DN in RFC 4514 form, as ``tls_client_auth_subject_dn`` registers it."""
        return self.certificate.subject.rfc4514_string()

    @property
    def x5t_s256(self) -> str:
        return x5t_s256(self.certificate)

    @property
    def escaped_pem(self) -> str:
        """The certificate as nginx's ``$ssl_client_escaped_cert`` forwards it (URL-encoded PEM)."""
        return quote(self.cert_pem.decode(), safe="")

    def jwk(self, kid: str | None = None) -> dict[str, Any]:
        return public_jwk(self, kid)

    def __iter__(self):  # (cert PEM, key PEM, paths), as the brief's ``issue`` returns
        return iter((self.cert_pem, self.key_pem, self.paths))


def x5t_s256(certificate: x509.Certificate | Credential) -> str:
    """RFC 8705 §3.1: base64url (no padding) SHA-256 of the certificate's DER encoding."""
    if isinstance(certificate, Credential):
        certificate = certificate.certificate
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_jwk(credential: Credential, kid: str | None = None) -> dict[str, Any]:
    """The public JWK of the credential's key, for a ``self_signed_tls_client_auth`` client's
    ``jwks``; ``kid`` defaults to the certificate's ``x5t#S256``."""
    return _public_jwk(credential.key, kid or credential.x5t_s256)


def jwks(*credentials: Credential) -> dict[str, Any]:
    return {"keys": [public_jwk(c) for c in credentials]}


def _new_key(key_type: str) -> Any:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"key_type is 'ec' or 'rsa', not {key_type!r}")


def _name(cn: str, organization: str | None) -> x509.Name:
    # Most significant first, so that RFC 4514 (which reverses the order) reads CN=...,O=...
    attributes = []
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attributes)


class Pki:
    """A fresh test PKI in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._serial = itertools.count(1)
        self.ca = self._ca("Test Client CA", "client-ca")
        self.other_ca = self._ca("Test Client CA", "other-ca")  # same name, other key: not trusted
        self.server_ca = self._ca("Test Server CA", "server-ca")
        self.server = self._leaf(
            "localhost",
            issuer=self.server_ca,
            organization=ORGANIZATION,
            san_dns=("localhost",),
            san_ip=("127.0.0.1",),
            key_type="rsa",
            server=True,
            stem="server",
        )

    # --- files -------------------------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        """The client CA bundle nginx trusts (``ssl_client_certificate``)."""
        return self.ca.cert_path

    @property
    def server_ca_file(self) -> Path:
        """What a client verifies nginx's certificate with."""
        return self.server_ca.cert_path

    # --- client certificates -------------------------------------------------------------

    def issue(
        self,
        cn: str,
        *,
        organization: str | None = ORGANIZATION,
        san_dns: Iterable[str] = (),
        san_uri: Iterable[str] = (),
        san_ip: Iterable[str] = (),
        san_email: Iterable[str] = (),
        key_type: str = "ec",
    ) -> Credential:
        """A client certificate signed by the trusted CA."""
        return self._leaf(
            cn,
            issuer=self.ca,
            organization=organization,
            san_dns=san_dns,
            san_uri=san_uri,
            san_ip=san_ip,
            san_email=san_email,
            key_type=key_type,
        )

    def wrong(self, cn: str, *, organization: str | None = ORGANIZATION, **names: Any) -> Credential:
        """Same subject as ``issue(cn)`` would give, issued by a CA nginx does not trust."""
        return self._leaf(cn, issuer=self.other_ca, organization=organization, **names)

    def self_signed(
        self, cn: str, key_type: str = "ec", *, organization: str | None = ORGANIZATION
    ) -> Credential:
        """A self-signed client certificate (RFC 8705 §2.2)."""
        return self._leaf(cn, issuer=None, organization=organization, key_type=key_type)

    # --- making certificates -----------------------------------------------------------------

    def _ca(self, cn: str, stem: str) -> Credential:
        key = _new_key("ec")
        name = _name(cn, ORGANIZATION)
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return self._write(stem, certificate, key)

    def _leaf(
        self,
        cn: str,
        *,
        issuer: Credential | None,
        organization: str | None,
        san_dns: Iterable[str] = (),
        san_uri: Iterable[str] = (),
        san_ip: Iterable[str] = (),
        san_email: Iterable[str] = (),
        key_type: str = "ec",
        server: bool = False,
        stem: str | None = None,
    ) -> Credential:
        key = _new_key(key_type)
        subject = _name(cn, organization)
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.certificate.subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
            )
        names: list[x509.GeneralName] = [
            *(x509.DNSName(n) for n in san_dns),
            *(x509.UniformResourceIdentifier(n) for n in san_uri),
            *(x509.IPAddress(ipaddress.ip_address(n)) for n in san_ip),
            *(x509.RFC822Name(n) for n in san_email),
        ]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(issuer.key if issuer else key, hashes.SHA256())
        stem = stem or f"{next(self._serial):03d}-{'self' if issuer is None else 'leaf'}-{cn}"
        return self._write(stem, certificate, key)

    def _write(self, stem: str, certificate: x509.Certificate, key: Any) -> Credential:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
        credential = Credential(
            certificate, key, self.directory / f"{safe}.crt", self.directory / f"{safe}.key"
        )
        credential.cert_path.write_bytes(credential.cert_pem)
        credential.key_path.write_bytes(credential.key_pem)
        credential.key_path.chmod(0o600)
        return credential
