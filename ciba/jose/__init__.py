"""JOSE for CIBA: verifying JWTs that clients sign (client assertions, request objects, login
hint tokens) and that this server signed (ID tokens presented back as ``id_token_hint``), the
key sets they are checked against, and single-use ``jti`` records."""

from .jws import JoseError, header_of, unverified_claims, verify
from .keys import client_keys, server_keys, validate_public_jwks
from .replay import LEEWAY, first_use

__all__ = [
    "LEEWAY",
    "JoseError",
    "client_keys",
    "first_use",
    "header_of",
    "server_keys",
    "unverified_claims",
    "validate_public_jwks",
    "verify",
]
