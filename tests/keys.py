"""Keys and signed JWTs as a client would make them, for tests."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

_RSA: list[Any] = []


def rsa_key() -> rsa.RSAPrivateKey:
    """A fresh RSA key (2048 bits); generate a few per test module at most."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    else:
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    data.update(kid=kid, use="sig")
    return data


def sign(claims: dict[str, Any], key: Any, alg: str, kid: str | None = None) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def assertion_claims(client_id: str, aud: Any, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def request_object_claims(client_id: str, aud: Any, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "aud": aud,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "scope": "openid",
        "login_hint": "alice",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}
