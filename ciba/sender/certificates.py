"""The client's TLS certificate as the TLS terminator forwards it (RFC 8705).

Django never sees the TLS handshake: nginx, Envoy or a load balancer terminates it and
forwards the client certificate in a header (``MTLS_CERT_HEADER``), in one of the formats
terminators use (``MTLS_CERT_HEADER_FORMAT``): nginx's ``$ssl_client_escaped_cert``
(URL-escaped PEM), Envoy's ``X-Forwarded-Client-Cert`` (the ``Cert`` of the last element),
or base64 DER. The header is believed only from ``TRUSTED_PROXIES``; from anyone else it is
exactly what it looks like, a claim the sender made up, and it is ignored.

Whether the certificate chains to a trusted CA is the terminator's verdict
(``MTLS_CERT_VERIFY_HEADER``, nginx's ``$ssl_client_verify``): ``tls_client_auth`` needs
``SUCCESS``; ``self_signed_tls_client_auth`` does not, because its trust is the key the client
registered. Thumbprints (``x5t#S256``) are over the certificate's DER, so a certificate is
the same certificate in any forwarding format.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..conf import ciba_settings
from ..proxies import from_trusted_proxy, meta_of

logger = logging.getLogger("ciba.sender")

#: A forwarded certificate chain larger than this is not a client certificate (nginx's default
#: header buffer is 8 KiB; a few chained certificates fit well within 16 KiB).
MAX_HEADER_LENGTH = 16 * 1024
FORMATS = ("escaped-pem", "xfcc", "der-base64")
VERIFIED = "SUCCESS"


@dataclass(frozen=True)
class PresentedCertificate:
    """A client certificate forwarded by a trusted proxy, with the proxy's chain verdict."""

    certificate: x509.Certificate
    chain_verified: bool

    @cached_property
    def x5t_s256(self) -> str:
        """RFC 8705 §3.1: base64url SHA-256 of the DER certificate, the ``cnf`` member."""
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")

    def matches_names(self, client: Any) -> bool:
        """RFC 8705 §2.1.2: the one name the ``tls_client_auth`` client registered is the
        certificate's subject DN, or one of its subjectAltName entries of that type."""
        cert = self.certificate
        if client.tls_client_auth_subject_dn:
            try:
                registered = x509.Name.from_rfc4514_string(client.tls_client_auth_subject_dn)
            except ValueError:
                return False
            return _normalised(registered) == _normalised(cert.subject)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        if client.tls_client_auth_san_dns:
            return client.tls_client_auth_san_dns.lower() in {
                name.lower() for name in san.get_values_for_type(x509.DNSName)
            }
        if client.tls_client_auth_san_uri:
            return client.tls_client_auth_san_uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if client.tls_client_auth_san_ip:
            try:
                wanted = ipaddress.ip_address(client.tls_client_auth_san_ip)
            except ValueError:
                return False
            return wanted in san.get_values_for_type(x509.IPAddress)
        if client.tls_client_auth_san_email:
            return client.tls_client_auth_san_email.lower() in {
                name.lower() for name in san.get_values_for_type(x509.RFC822Name)
            }
        return False

    def matches_key(self, jwks: list[Mapping[str, Any]]) -> bool:
        """RFC 8705 §2.2: the certificate's public key is one of the client's registered keys."""
        public = self.certificate.public_key()
        for jwk in jwks:
            if _same_key(public, jwk):
                return True
        return False


def presented_certificate(request: Any) -> PresentedCertificate | None:
    """The client certificate of a Django, DRF or oauthlib request, or ``None``.

    ``None`` when mTLS is not configured, when the request did not come through a trusted
    proxy, when no certificate was presented, or when the header cannot be read (logged: a
    terminator sending something unreadable is a deployment error worth seeing). Read once
    per request: client authentication and the token binding both ask.
    """
    found = getattr(request, _READ, _UNREAD)
    if found is _UNREAD:
        found = _presented(request)
        setattr(request, _READ, found)
    return found


_READ = "_ciba_presented_certificate"
_UNREAD = object()


def _presented(request: Any) -> PresentedCertificate | None:
    header = ciba_settings.MTLS_CERT_HEADER
    if not header:
        return None
    meta = meta_of(request)
    raw = meta.get(header)
    if not raw or not isinstance(raw, str):
        return None
    if not from_trusted_proxy(request):
        logger.warning(
            "A client certificate header came from %s, not a trusted proxy: ignored.",
            meta.get("REMOTE_ADDR", "?"),
        )
        return None
    certificate = parse(raw, ciba_settings.MTLS_CERT_HEADER_FORMAT)
    if certificate is None:
        logger.warning("The forwarded client certificate header could not be read: ignored.")
        return None
    verdict_header = ciba_settings.MTLS_CERT_VERIFY_HEADER
    verified = True if not verdict_header else str(meta.get(verdict_header, "")) == VERIFIED
    return PresentedCertificate(certificate, verified)


def parse(raw: str, fmt: str) -> x509.Certificate | None:
    """The leaf certificate in a forwarded header value, or ``None`` if it holds none."""
    if len(raw) > MAX_HEADER_LENGTH:
        return None
    try:
        if fmt == "xfcc":
            cert = _xfcc_cert(raw)
            return x509.load_pem_x509_certificate(unquote(cert).encode()) if cert else None
        if fmt == "der-base64":
            text = unquote(raw).strip()
            data = base64.b64decode(
                text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text or "_" in text else None
            )
            return x509.load_der_x509_certificate(data)
        pem = unquote(raw).strip()
        if not pem:
            return None
        return x509.load_pem_x509_certificate(pem.encode())
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        return None


def _xfcc_cert(raw: str) -> str:
    """The ``Cert`` of the last element of an X-Forwarded-Client-Cert value (the element the
    nearest proxy, ours, appended). Elements are comma-separated, pairs semicolon-separated,
    values optionally double-quoted with backslash escapes."""
    elements: list[dict[str, str]] = [{}]
    key, value, in_quotes, escaped, reading_key = "", "", False, False, True
    for ch in raw + ",":
        if in_quotes:
            if escaped:
                value += ch
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
            else:
                value += ch
        elif ch == '"' and not reading_key:
            in_quotes = True
        elif ch == "=" and reading_key:
            reading_key = False
        elif ch in ";,":
            if key.strip():
                elements[-1][key.strip().lower()] = value
            key, value, reading_key = "", "", True
            if ch == ",":
                elements.append({})
        elif reading_key:
            key += ch
        else:
            value += ch
    filled = [element for element in elements if element]
    return filled[-1].get("cert", "") if filled else ""


def _normalised(name: x509.Name) -> list[tuple[str, str]]:
    """A DN compared attribute by attribute, values case-insensitively (RFC 4517 caseIgnoreMatch
    is how directory names compare; certificate authorities vary their case)."""
    return [(attr.oid.dotted_string, str(attr.value).strip().lower()) for attr in name]


def _same_key(public: Any, jwk: Mapping[str, Any]) -> bool:
    try:
        if isinstance(public, rsa.RSAPublicKey) and jwk.get("kty") == "RSA":
            numbers = public.public_numbers()
            return _b64int(jwk["n"]) == numbers.n and _b64int(jwk["e"]) == numbers.e
        if isinstance(public, ec.EllipticCurvePublicKey) and jwk.get("kty") == "EC":
            numbers = public.public_numbers()
            curves = {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1"}
            return (
                curves.get(str(jwk.get("crv"))) == public.curve.name
                and _b64int(jwk["x"]) == numbers.x
                and _b64int(jwk["y"]) == numbers.y
            )
    except (KeyError, TypeError, ValueError, binascii.Error):
        return False
    return False


def _b64int(value: Any) -> int:
    if not isinstance(value, str):
        raise TypeError("not a base64url string")
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")
