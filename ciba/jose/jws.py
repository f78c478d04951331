"""Verifying JWS-signed JWTs with the algorithm pinned by the caller; the one place that knows
which algorithm names this server verifies and with which keys.

PyJWT knows the polymorphic ``EdDSA`` only. RFC 9864 deprecates it for the fully-specified
``Ed25519`` and ``Ed448``, which clients now send (openid-client signs DPoP proofs with
``Ed25519``): this module registers both on its own ``PyJWS`` (never on PyJWT's global one),
each verifying with a key on its own curve only. Every carrier of a client-signed JWT (client
assertions, signed requests, login hint tokens, DPoP proofs) verifies through ``decode`` and
``load_key``, so a name is understood everywhere or nowhere.
"""

from __future__ import annotations

from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey, Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm, get_default_algorithms

from ..constants import CLOCK_LEEWAY as LEEWAY
from ..constants import HMAC_JWS_ALGORITHMS, JWS_KEY_TYPES


class _OneCurveEdDSA(OKPAlgorithm):
    """EdDSA restricted to one curve (RFC 9864 §2.2): PyJWT's ``EdDSA`` verifies with a key on
    either curve, a fully-specified name with a key on its own curve only."""

    def __init__(self, *key_types: type) -> None:
        super().__init__()
        self._key_types = key_types

    def prepare_key(self, key: Any) -> Any:
        prepared = super().prepare_key(key)
        if not isinstance(prepared, self._key_types):
            raise jwt.InvalidKeyError("The key is not on the curve the algorithm names.")
        return prepared


_FULLY_SPECIFIED = {
    "Ed25519": _OneCurveEdDSA(Ed25519PublicKey, Ed25519PrivateKey),
    "Ed448": _OneCurveEdDSA(Ed448PublicKey, Ed448PrivateKey),
}
#: Verifies signatures: PyJWT's algorithms, and the names PyJWT lacks (a PyJWT that learns
#: them keeps its own).
_JWS = jwt.PyJWS()
for _name, _algorithm in _FULLY_SPECIFIED.items():
    if _name not in _JWS.get_algorithms():
        _JWS.register_algorithm(_name, _algorithm)
#: PyJWT checks no claim of a token whose signature it was told not to verify, unless asked.
_CLAIM_CHECKS = dict.fromkeys(
    ("verify_exp", "verify_nbf", "verify_iat", "verify_aud", "verify_iss", "verify_sub", "verify_jti"), True
)


class JoseError(Exception):
    """A JWT or key problem; the message says what, and is safe to return to the client."""


def header_of(token: str) -> dict[str, Any]:
    if not isinstance(token, str) or token.count(".") != 2:
        if isinstance(token, str) and token.count(".") == 4:
            raise JoseError("Encrypted JWTs are not supported; send a signed JWT.")
        raise JoseError("Not a signed JWT (JWS compact serialisation).")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise JoseError("The JWT header cannot be read.") from None
    if not isinstance(header.get("alg"), str):
        raise JoseError("The JWT header has no alg.")
    return header


def unverified_claims(token: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise JoseError("The JWT claims cannot be read.") from None
    if not isinstance(claims, dict):
        raise JoseError("The JWT claims are not a JSON object.")
    return claims


def key_fits(jwk: Any, alg: str) -> bool:
    """Whether the public JWK ``jwk`` is of the type and on a curve that ``alg`` signs with
    (``ciba.constants.JWS_KEY_TYPES``): an RSA key never verifies ES256, an Ed448 key never
    ``Ed25519`` (RFC 8725 §3.1: the key and the algorithm go together)."""
    requirement = JWS_KEY_TYPES.get(alg)
    if requirement is None or not isinstance(jwk, dict):
        return False
    kty, curves = requirement
    return jwk.get("kty") == kty and (not curves or jwk.get("crv") in curves)


def load_key(jwk: dict[str, Any], alg: str) -> Any:
    """The key of a public JWK, ready for ``decode`` with ``alg``; ``jwt.InvalidKeyError`` (or
    ``jwt.PyJWKError``) for a key that does not fit ``alg`` or cannot be loaded."""
    if not key_fits(jwk, alg):
        raise jwt.InvalidKeyError(f"The key cannot verify {alg}.")
    if alg in get_default_algorithms():
        return jwt.PyJWK(jwk, algorithm=alg)
    # A raw key: a PyJWK is bound to one of PyJWT's own names; the registered algorithm's
    # prepare_key checks the curve again when the signature is verified.
    try:
        return _JWS.get_algorithm_by_name(alg).from_jwk(jwk)
    except (TypeError, ValueError) as exc:  # as PyJWK reports a malformed member
        raise jwt.InvalidKeyError(f"Unable to construct key from JWK: {exc}") from exc


def decode(
    token: str,
    key: Any,
    *,
    alg: str,
    options: dict[str, Any] | None = None,
    audience: list[str] | None = None,
    issuer: str | None = None,
    leeway: float = 0,
) -> dict[str, Any]:
    """``jwt.decode`` for one algorithm, which may be a name only this module knows: the
    signature is verified by this module's ``PyJWS``, then the claims are read and checked by
    PyJWT as ``jwt.decode`` checks them (``options`` as there). Raises PyJWT's exceptions."""
    _JWS.decode_complete(token, key, algorithms=[alg])
    checks: Any = {**_CLAIM_CHECKS, **(options or {}), "verify_signature": False}
    return jwt.decode(token, options=checks, audience=audience, issuer=issuer, leeway=leeway)


def verify(
    token: str,
    keys: list[Any],
    *,
    algorithms: list[str],
    audience: list[str] | None = None,
    issuer: str | None = None,
    require: tuple[str, ...] = (),
    verify_exp: bool = True,
    audience_name: str = "this server",
) -> dict[str, Any]:
    """Verify signature and claims, trying the key named by ``kid`` (or each key) that fits.

    ``audience_name`` says who ``audience`` is, for the refusal of a JWT meant for someone else
    (an ID token presented back names a client, not this server).

    ``keys`` are public JWK dicts or raw HMAC secrets (bytes). The algorithms are pinned by
    the caller: the header's ``alg`` must be one of ``algorithms``, so an attacker cannot
    switch an RSA key to HMAC or to ``none``; a JWK is tried only for an algorithm of its type
    and curve (``key_fits``), a secret only for HMAC, and a JWK that declares its own ``alg``
    only with that algorithm.
    """
    header = header_of(token)
    alg = header["alg"]
    if alg not in algorithms:
        raise JoseError(f"The JWT must be signed with {' or '.join(algorithms)}.")
    candidates = _candidates(keys, header.get("kid"))
    options = {"require": list(require), "verify_exp": verify_exp, "verify_aud": audience is not None}
    last_error: Exception | None = None
    for candidate in candidates:
        try:
            if isinstance(candidate, dict):
                if candidate.get("alg", alg) != alg or not key_fits(candidate, alg):
                    continue
                key: Any = load_key(candidate, alg)
            elif alg in HMAC_JWS_ALGORITHMS:
                key = candidate
            else:
                continue
            return decode(
                token, key, alg=alg, audience=audience, issuer=issuer, options=options, leeway=LEEWAY
            )
        except jwt.InvalidSignatureError as exc:
            last_error = exc
            continue
        except jwt.ExpiredSignatureError:
            raise JoseError("The JWT has expired (exp).") from None
        except jwt.ImmatureSignatureError:
            raise JoseError("The JWT is not valid yet (nbf or iat in the future).") from None
        except jwt.MissingRequiredClaimError as exc:
            raise JoseError(f"The JWT lacks the {exc.claim} claim.") from None
        except jwt.InvalidAudienceError:
            raise JoseError(f"The JWT's aud does not name {audience_name}.") from None
        except jwt.InvalidIssuerError:
            raise JoseError("The JWT's iss is not the expected issuer.") from None
        except (jwt.InvalidKeyError, jwt.PyJWKError, TypeError, ValueError) as exc:
            last_error = exc
            continue
        except jwt.PyJWTError as exc:
            raise JoseError(f"The JWT is invalid ({type(exc).__name__}).") from None
    if last_error is None:
        raise JoseError(f"No registered key fits the JWT's kid and alg ({alg}).")
    raise JoseError("The JWT signature does not verify with the registered keys.")


def _candidates(keys: list[Any], kid: Any) -> list[Any]:
    """Keys named by ``kid``; failing that, keys without a kid (and raw HMAC secrets)."""
    if kid is None:
        return keys
    named = [k for k in keys if isinstance(k, dict) and k.get("kid") == kid]
    return named or [k for k in keys if not isinstance(k, dict) or "kid" not in k]
