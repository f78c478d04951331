"""Sender-constrained tokens, under any profile: the forwarded client certificate (mTLS,
RFC 8705) and DPoP proofs (RFC 9449).

A certificate header that is never found, never believed or cannot be read fails every mTLS
client; a verdict header that is missing takes every certificate as CA-verified; a DPoP proof
accepted for too long, or signed with a shared secret, can be replayed or forged. Run by
``check_ciba_settings``.
"""

from __future__ import annotations

from django.core import checks

from .. import constants
from ..conf import ciba_settings
from ..sender import certificates
from .codes import Codes
from .values import as_list, is_number


def mtls_messages() -> list[checks.CheckMessage]:
    """The forwarded client certificate (RFC 8705), under any profile."""
    messages: list[checks.CheckMessage] = []
    header = ciba_settings.raw("MTLS_CERT_HEADER")
    fmt = ciba_settings.raw("MTLS_CERT_HEADER_FORMAT")
    verify_header = ciba_settings.raw("MTLS_CERT_VERIFY_HEADER")
    if fmt not in certificates.FORMATS:
        messages.append(
            checks.Error(
                f"The client certificate header format {fmt!r} is unknown, so no forwarded certificate "
                "could be read and every mTLS client would fail.",
                hint=f'Set CIBA["MTLS_CERT_HEADER_FORMAT"] to one of {", ".join(certificates.FORMATS)} '
                '("escaped-pem" for nginx\'s $ssl_client_escaped_cert, "xfcc" for Envoy).',
                id=Codes.MTLS_FORMAT,
            )
        )
    if header and not as_list(ciba_settings.raw("TRUSTED_PROXIES")):
        messages.append(
            checks.Error(
                "A client certificate header is configured but no proxy is trusted, so the header would "
                "never be believed and every mTLS client would fail.",
                hint='Set CIBA["TRUSTED_PROXIES"] to the addresses of your TLS terminator, '
                'e.g. ["127.0.0.1/32"].',
                id=Codes.MTLS_WITHOUT_TRUSTED_PROXIES,
            )
        )
    for key, value in (("MTLS_CERT_HEADER", header), ("MTLS_CERT_VERIFY_HEADER", verify_header)):
        if value and not (isinstance(value, str) and value.startswith("HTTP_")):
            messages.append(
                checks.Error(
                    f'CIBA["{key}"] = {value!r} is not a Django request.META key, so the header would '
                    "never be found.",
                    hint=f'Set CIBA["{key}"] to the header\'s META key: upper case, dashes as '
                    "underscores, prefixed with HTTP_ (nginx's X-SSL-Client-Cert is "
                    '"HTTP_X_SSL_CLIENT_CERT").',
                    id=Codes.MTLS_HEADER_NAME,
                )
            )
    if header and fmt != "xfcc" and not verify_header:
        messages.append(
            checks.Warning(
                "No certificate verdict header is configured, so every forwarded client certificate is "
                "taken as verified by a trusted CA for tls_client_auth. That is safe only if the TLS "
                "terminator refuses unverified certificates (nginx: ssl_verify_client on or optional), "
                "which makes self_signed_tls_client_auth clients impossible.",
                hint="Forward the verdict (nginx: proxy_set_header X-SSL-Client-Verify $ssl_client_verify; "
                'with ssl_verify_client optional_no_ca) and set CIBA["MTLS_CERT_VERIFY_HEADER"] = '
                '"HTTP_X_SSL_CLIENT_VERIFY".',
                id=Codes.MTLS_UNVERIFIED,
            )
        )
    base_url = ciba_settings.raw("MTLS_BASE_URL")
    if base_url and not (isinstance(base_url, str) and base_url.startswith("https://")):
        messages.append(
            checks.Error(
                f'CIBA["MTLS_BASE_URL"] = {base_url!r} is not an https URL: clients would be sent to '
                "endpoints without TLS, where no client certificate can be presented.",
                hint='Set CIBA["MTLS_BASE_URL"] to the https origin of the mTLS host, e.g. '
                '"https://mtls.login.example.com", or "" when the same URLs serve both.',
                id=Codes.MTLS_BASE_URL,
            )
        )
    return messages


#: RFC 9449 §11.1: a proof is fresh for seconds, not minutes; a longer window widens replay.
DPOP_PROOF_MAX_AGE_LIMIT = 300


def dpop_messages() -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    max_age, nonce_lifetime = (
        ciba_settings.raw("DPOP_PROOF_MAX_AGE"),
        ciba_settings.raw("DPOP_NONCE_LIFETIME"),
    )
    if not (is_number(max_age) and 0 < max_age <= DPOP_PROOF_MAX_AGE_LIMIT) or not (
        is_number(nonce_lifetime) and nonce_lifetime > 0
    ):
        messages.append(
            checks.Error(
                "DPoP lifetimes must be positive seconds, with DPOP_PROOF_MAX_AGE at most "
                f"{DPOP_PROOF_MAX_AGE_LIMIT}: a proof accepted for longer can be replayed for longer.",
                hint='Fix CIBA["DPOP_PROOF_MAX_AGE"] (default 60) and CIBA["DPOP_NONCE_LIFETIME"] '
                "(default 300).",
                id=Codes.DPOP_LIFETIMES,
            )
        )
    bad_algs = [
        a
        for a in as_list(ciba_settings.raw("DPOP_SIGNING_ALGS"))
        if a not in constants.ASYMMETRIC_JWS_ALGORITHMS
    ]
    if bad_algs:
        messages.append(
            checks.Error(
                f"DPoP proof algorithms {bad_algs!r} are not asymmetric JWS algorithms; RFC 9449 §4.2 "
                "forbids 'none' and shared-secret signatures (anyone could forge the proof).",
                hint='Limit CIBA["DPOP_SIGNING_ALGS"] to values such as "PS256", "ES256", "RS256", "EdDSA".',
                id=Codes.DPOP_ALGS,
            )
        )
    return messages
