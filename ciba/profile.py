"""The security profile switch, ``CIBA["PROFILE"]``: what each setting means under it.

With ``"fapi-ciba"`` (FAPI-CIBA ID1 on FAPI 1 Advanced) the endpoints narrow what they accept
here, at request time, whatever the other settings say: the system checks (``ciba.checks``)
report each contradiction at start-up, and this module makes sure a silenced check weakens
nothing. Every function answers for the profile in force now, so ``override_settings`` works.
"""

from __future__ import annotations

from typing import Any

from .conf import ciba_settings
from .constants import (
    ASSERTION_ALGORITHMS,
    ASYMMETRIC_JWS_ALGORITHMS,
    FAPI_ALGS,
    FAPI_AUTH_METHODS,
    MODE_PUSH,
    PROFILE_FAPI_CIBA,
    TOKEN_ENDPOINT_AUTH_METHODS,
)


def fapi() -> bool:
    """Whether the FAPI-CIBA profile is in force."""
    return ciba_settings.PROFILE == PROFILE_FAPI_CIBA


def _narrowed(values: list[str] | tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    return [value for value in values if value in allowed] if fapi() else list(values)


def request_signing_algs() -> list[str]:
    """Algorithms accepted for signed authentication requests (CIBA §7.1.1; FAPI: PS256, ES256)."""
    algs = [a for a in ciba_settings.REQUEST_SIGNING_ALGS if a in ASYMMETRIC_JWS_ALGORITHMS]
    return _narrowed(algs, FAPI_ALGS)


def jws_algs(algs: list[str] | tuple[str, ...]) -> list[str]:
    """Of ``algs``, those a client assertion or an ID token may use (FAPI 1 Advanced §8.6:
    PS256 and ES256 only)."""
    return _narrowed(algs, FAPI_ALGS)


def assertion_algs(client: Any) -> list[str]:
    """The algorithms ``client``'s JWT assertions may use now: the one it registered, or, when
    it registered none, every one its method allows (OIDC Registration §2), narrowed by the
    profile. HMAC only for ``client_secret_jwt``, asymmetric only for ``private_key_jwt``,
    never ``none`` (``CibaClientMixin.client_assertion_algs``)."""
    return jws_algs(client.client_assertion_algs)


def assertion_algs_supported() -> list[str]:
    """Every algorithm some client's assertions may use under the methods in force, as
    discovery publishes them (``token_endpoint_auth_signing_alg_values_supported``)."""
    methods = client_auth_methods()
    algs = [alg for method, family in ASSERTION_ALGORITHMS.items() if method in methods for alg in family]
    return jws_algs(algs)


def client_auth_methods() -> list[str]:
    """Client authentication methods accepted and advertised (FAPI: private_key_jwt and mTLS).

    The mTLS methods exist only where a TLS terminator forwards the certificate
    (``MTLS_CERT_HEADER``): advertising them otherwise would promise what cannot work.
    """
    methods = [
        m
        for m in TOKEN_ENDPOINT_AUTH_METHODS
        if m not in ("tls_client_auth", "self_signed_tls_client_auth") or ciba_settings.MTLS_CERT_HEADER
    ]
    return _narrowed(methods, FAPI_AUTH_METHODS)


def delivery_modes() -> list[str]:
    """Token delivery modes in force (FAPI-CIBA §5.2.2: push is not supported)."""
    modes = list(ciba_settings.DELIVERY_MODES)
    return [m for m in modes if m != MODE_PUSH] if fapi() else modes


def dpop_algs() -> list[str]:
    """Algorithms accepted for DPoP proofs (RFC 9449 §5.1; FAPI: PS256, ES256)."""
    algs = [a for a in ciba_settings.DPOP_SIGNING_ALGS if a in ASYMMETRIC_JWS_ALGORITHMS]
    return _narrowed(algs, FAPI_ALGS)


def signed_requests_required() -> bool:
    """FAPI-CIBA §5.2.2: authentication requests must be signed request objects."""
    return fapi()


def sender_constrained_tokens_required() -> bool:
    """FAPI 1 Advanced §5.2.2-5: every access token is bound (mTLS, or here also DPoP)."""
    return fapi()
