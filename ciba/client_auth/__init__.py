"""Client authentication for the backchannel and token endpoints, in one place.

* ``credentials``: reading the one method a request uses (RFC 6749 §2.3, RFC 7523).
* ``verify``: checking them against the client and the method it registered (CIBA §7.1).
* ``secret``: constant-time secret checks, cheap for a secret verified lately.
* ``clients``: client rows kept per process, re-read whenever the client changes.
"""

from .clients import load_client
from .credentials import JWT_METHODS, SECRET_METHODS, Credentials, read_credentials
from .guard import client_address, record_failure, refuse_if_throttled
from .secret import check_secret, recently_verified
from .verify import authenticate_client, poll_identity, verify_credentials

__all__ = [
    "JWT_METHODS",
    "SECRET_METHODS",
    "Credentials",
    "authenticate_client",
    "check_secret",
    "client_address",
    "recently_verified",
    "record_failure",
    "refuse_if_throttled",
    "load_client",
    "poll_identity",
    "read_credentials",
    "verify_credentials",
]
