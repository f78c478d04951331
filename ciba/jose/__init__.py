"""JOSE for CIBA: verifying JWTs that clients sign (client assertions, request objects, login
hint tokens) and that this server signed (ID tokens presented back as ``id_token_hint``), and
the key sets they are checked against. Single-use ``jti`` records are ``ciba.replay``."""

from .jws import LEEWAY, JoseError, decode, header_of, key_fits, load_key, unverified_claims, verify
from .keys import client_keys, server_keys, strong_enough, validate_public_jwks, weak_keys

__all__ = [
    "LEEWAY",
    "JoseError",
    "client_keys",
    "decode",
    "header_of",
    "key_fits",
    "load_key",
    "server_keys",
    "strong_enough",
    "unverified_claims",
    "validate_public_jwks",
    "verify",
    "weak_keys",
]
