"""Verifying JWTs signed by clients (assertions, request objects, login hint tokens) and by
this server (ID tokens presented back as ``id_token_hint``)."""

from __future__ import annotations

import json
from typing import Any

import jwt
from django.core.cache import cache
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.utils import jwk_from_pem

from . import constants
from .http import OutboundError, get_json
from .replay import LEEWAY

JWKS_CACHE_SECONDS = 300


class JoseError(Exception):
    """A JWT or key problem; the message says what, and is safe to return to the client."""


def client_keys(client: Any) -> list[dict[str, Any]]:
    """The client's public signing JWKs, from ``jwks`` or (cached for 5 minutes) its ``jwks_uri``.

    Keys stay JWK dicts until a JWT is verified: only then is the algorithm known, and an
    RSA key may verify RS256 as well as PS256 unless the JWK itself declares an ``alg``.
    """
    if client.jwks:
        document = client.jwks
    elif client.jwks_uri:
        cache_key = f"ciba:jwks:{client.pk}:{client.jwks_uri}"
        document = cache.get(cache_key)
        if document is None:
            try:
                document = get_json(client.jwks_uri)
            except OutboundError as exc:
                raise JoseError(f"The client's jwks_uri could not be used: {exc}") from None
            cache.set(cache_key, document, JWKS_CACHE_SECONDS)
    else:
        raise JoseError("The client has registered no keys (jwks or jwks_uri).")
    entries = document.get("keys") if isinstance(document, dict) else None
    keys = [
        entry
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict) and entry.get("use", "sig") == "sig" and entry.get("kty") != "oct"
    ]
    if not keys:
        raise JoseError("The client's key set holds no usable signing key.")
    return keys


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
        raise JoseError(f"The JWT is signed with {alg}; expected {' or '.join(algorithms)}.")
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
            raise JoseError(f"The JWT is invalid: {exc}") from None
    if last_error is None:
        raise JoseError("No registered key matches the JWT's kid.")
    raise JoseError("The JWT signature does not verify with the registered keys.")


def _candidates(keys: list[Any], kid: Any) -> list[Any]:
    """Keys named by ``kid``; failing that, keys without a kid (and raw HMAC secrets)."""
    if kid is None:
        return keys
    named = [k for k in keys if isinstance(k, dict) and k.get("kid") == kid]
    return named or [k for k in keys if not isinstance(k, dict) or "kid" not in k]


def server_keys() -> list[dict[str, Any]]:
    """Public halves of this server's ID-token signing keys (active and inactive)."""
    keys = []
    pems = [oauth2_settings.OIDC_RSA_PRIVATE_KEY, *oauth2_settings.OIDC_RSA_PRIVATE_KEYS_INACTIVE]
    for pem in filter(None, pems):
        key = jwk_from_pem(pem)
        data = json.loads(key.export_public())
        data.update({"kid": key.thumbprint(), "alg": "RS256", "use": "sig"})
        keys.append(data)
    return keys


def asymmetric_algorithms() -> list[str]:
    return list(constants.ASYMMETRIC_JWS_ALGORITHMS)
