"""Client authentication for the backchannel and token endpoints, in one place.

* ``credentials``: reading the one method a request uses (RFC 6749 §2.3, RFC 7523).
* ``verify``: checking them against the client and the method it registered (CIBA §7.1).
* ``hashers``: the keyed client-secret hash (``ClientSecretHasher``) and the entropy rule.
* ``secret``: constant-time secret checks; slow hashes remembered, and upgraded on use.
* ``guard``: failure budgets per (id, address) and per address; the cap on expensive checks.
* ``clients``: client rows kept per process, re-read whenever the client changes.
"""

from .clients import forget_client, load_client
from .credentials import JWT_METHODS, SECRET_METHODS, Credentials, read_credentials
from .guard import Attempt, attempt, client_address
from .hashers import ClientSecretHasher, enough_entropy, estimated_secret_bits
from .secret import (
    check_secret,
    is_slow,
    pay_for_unknown_client,
    recently_verified,
    unknown_client_is_slow,
    upgrade_secret,
)
from .verify import authenticate_client, poll_identity, verify_credentials

__all__ = [
    "Attempt",
    "ClientSecretHasher",
    "attempt",
    "enough_entropy",
    "estimated_secret_bits",
    "is_slow",
    "pay_for_unknown_client",
    "JWT_METHODS",
    "SECRET_METHODS",
    "Credentials",
    "authenticate_client",
    "check_secret",
    "client_address",
    "recently_verified",
    "forget_client",
    "load_client",
    "poll_identity",
    "read_credentials",
    "unknown_client_is_slow",
    "upgrade_secret",
    "verify_credentials",
]
