"""Verifying JWS-signed JWTs with the algorithm pinned by the caller."""

from __future__ import annotations

from typing import Any

import jwt

from ..constants import CLOCK_LEEWAY as LEEWAY


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


def verify(
    token: str,
    keys: list[Any],
    *,
    algorithms: list[str],
    audience: list[str] | None = None,
    issuer: str | None = None,
    require: tuple[str, ...] = (),
    verify_exp: bool = True,
) -> dict[str, Any]:
    """Verify signature and claims with PyJWT, trying the key named by ``kid`` (or each key).

    ``keys`` are public JWK dicts or raw HMAC secrets (bytes). The algorithm is pinned by
    the caller: the header's ``alg`` must be one of ``algorithms``, so an attacker cannot
    switch an RSA key to HMAC or to ``none``; a JWK that declares its own ``alg`` is used
    with that algorithm only.
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
                if candidate.get("alg", alg) != alg:
                    continue
                key: Any = jwt.PyJWK(candidate, algorithm=alg)
            else:
                key = candidate
            return jwt.decode(
                token, key, algorithms=[alg], audience=audience, issuer=issuer, options=options, leeway=LEEWAY
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
            raise JoseError("The JWT's aud does not name this server.") from None
        except jwt.InvalidIssuerError:
            raise JoseError("The JWT's iss is not the expected issuer.") from None
        except (jwt.InvalidKeyError, jwt.PyJWKError, TypeError, ValueError) as exc:
            last_error = exc
            continue
        except jwt.PyJWTError as exc:
            raise JoseError(f"The JWT is invalid ({type(exc).__name__}).") from None
    if last_error is None:
        raise JoseError("No registered key matches the JWT's kid.")
    raise JoseError("The JWT signature does not verify with the registered keys.")


def _candidates(keys: list[Any], kid: Any) -> list[Any]:
    """Keys named by ``kid``; failing that, keys without a kid (and raw HMAC secrets)."""
    if kid is None:
        return keys
    named = [k for k in keys if isinstance(k, dict) and k.get("kid") == kid]
    return named or [k for k in keys if not isinstance(k, dict) or "kid" not in k]
