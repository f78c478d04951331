"""Client authentication for the backchannel and token endpoints, in one place.

* ``credentials``: reading the one method a request uses (RFC 6749 §2.3, RFC 7523).
* ``verify``: checking them against the client and the method it registered (CIBA §7.1).
* ``secret``: constant-time secret checks, cheap for a secret verified lately.
* ``clients``: client rows kept per process, re-read whenever the client changes.
"""

from .clients import forget_client, load_client
from .credentials import JWT_METHODS, SECRET_METHODS, Credentials, read_credentials
from .guard import Attempt, attempt, client_address
from .secret import check_secret, pay_for_unknown_client, recently_verified
from .verify import authenticate_client, poll_identity, verify_credentials

__all__ = [
    "Attempt",
    "attempt",
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
    "verify_credentials",
]
