"""What a request presents to authenticate its client, read before anything is verified.

CIBA §7.1 requires the client to authenticate "using the authentication method registered
for its client_id" — ``client_secret_basic``, ``client_secret_post``, ``client_secret_jwt``
or ``private_key_jwt`` (RFC 7523) — at the backchannel endpoint, and the same rule serves the
token endpoint, so both read credentials here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from django.utils.crypto import salted_hmac

from .. import constants
from ..errors import InvalidClient
from ..jose import JoseError, header_of, unverified_claims

SECRET_METHODS = (constants.AUTH_CLIENT_SECRET_BASIC, constants.AUTH_CLIENT_SECRET_POST)
JWT_METHODS = (constants.AUTH_CLIENT_SECRET_JWT, constants.AUTH_PRIVATE_KEY_JWT)
#: The ``WWW-Authenticate`` challenge of a client that authenticated with HTTP Basic.
BASIC_CHALLENGE = 'Basic realm="ciba"'
#: A request naming its client by ``client_id`` alone: mutual TLS (RFC 8705 §2), whose
#: credential is the TLS certificate, is the only way such a CIBA client can authenticate.
CLIENT_ID_ONLY = "client_id_only"


@dataclass(frozen=True)
class Credentials:
    """What a request presented, before anything was verified."""

    method: str
    client_id: str
    secret: str = ""
    assertion: str = ""

    def fingerprint(self) -> str:
        """Which method, client and secret these are, unusable without ``SECRET_KEY``: what the
        shared poll state remembers of credentials the full path verified."""
        message = f"{self.method}\0{self.client_id}\0{self.secret}"
        return salted_hmac("ciba.poll-state", message, algorithm="sha256").hexdigest()


def read_credentials(authorization: str, params: Mapping[str, str]) -> Credentials | None:
    """Parse the one authentication method a request uses; ``None`` when it uses none.

    A bare ``client_id`` is ``CLIENT_ID_ONLY``: mutual TLS for a client that registered it
    (the certificate is checked in ``verify``), nothing at all for any other CIBA client.

    Using two methods at once is refused (RFC 6749 §2.3: "MUST NOT use more than one").
    """
    basic = _basic(authorization)
    assertion = params.get("client_assertion")
    assertion_type = params.get("client_assertion_type")
    used = [m for m, present in (("basic", basic), ("secret", "client_secret" in params)) if present]
    if assertion is not None or assertion_type is not None:
        used.append("assertion")
    if len(used) > 1:
        raise InvalidClient("Use exactly one client authentication method.")
    body_client_id = params.get("client_id")
    if body_client_id is not None and not _plausible_id(body_client_id):
        raise InvalidClient("Malformed client_id.")
    if basic is not None:
        client_id, secret = basic
        if body_client_id is not None and body_client_id != client_id:
            raise InvalidClient("client_id does not match the authenticated client.")
        return Credentials(constants.AUTH_CLIENT_SECRET_BASIC, client_id, secret=secret)
    if "client_secret" in params:
        return Credentials(
            constants.AUTH_CLIENT_SECRET_POST, body_client_id or "", secret=params["client_secret"]
        )
    if used:
        if assertion_type != constants.JWT_BEARER_ASSERTION_TYPE:
            raise InvalidClient(f"client_assertion_type must be {constants.JWT_BEARER_ASSERTION_TYPE}.")
        if not assertion:
            raise InvalidClient("client_assertion is empty.")
        try:
            claims = unverified_claims(assertion)
            header = header_of(assertion)
        except JoseError as exc:
            raise InvalidClient(f"client_assertion: {exc}") from None
        iss, sub = claims.get("iss"), claims.get("sub")
        if not isinstance(sub, str) or not sub or iss != sub or not _plausible_id(sub):
            raise InvalidClient(
                "client_assertion must have iss and sub equal to the client_id (RFC 7523 section 3)."
            )
        if body_client_id is not None and body_client_id != sub:
            raise InvalidClient("client_id does not match the client assertion.")
        method = (
            constants.AUTH_CLIENT_SECRET_JWT
            if header["alg"].startswith("HS")
            else constants.AUTH_PRIVATE_KEY_JWT
        )
        return Credentials(method, sub, assertion=assertion)
    if body_client_id:
        return Credentials(CLIENT_ID_ONLY, body_client_id)
    return None


def challenge(authorization: str | None) -> str | None:
    """The ``WWW-Authenticate`` challenge of a ``401 invalid_client`` answer, or ``None``.

    RFC 6749 §5.2: a client that authenticated in the ``Authorization`` header must be answered
    with the challenge of its scheme; of the methods this server accepts, only
    ``client_secret_basic`` uses that header. A client that authenticated in the body
    (``client_secret_post``, a JWT assertion) or with its TLS certificate (RFC 8705) used no
    HTTP authentication scheme, and a challenge would be a lie it cannot answer: relying
    parties such as openid-client then report the challenge and hide ``invalid_client``.
    """
    scheme = (authorization or "").split(" ", 1)[0]
    return BASIC_CHALLENGE if scheme.lower() == "basic" else None


def _basic(authorization: str) -> tuple[str, str] | None:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("Malformed Basic credentials.") from None
    client_id, sep, secret = decoded.partition(":")
    client_id = unquote_plus(client_id)  # RFC 6749 §2.3.1: both parts are form-urlencoded
    if not sep or not _plausible_id(client_id):
        raise InvalidClient("Malformed Basic credentials.")
    return client_id, unquote_plus(secret)


def _plausible_id(client_id: str) -> bool:
    """Client ids are at most 255 characters (DOT's column) without NUL (PostgreSQL refuses it)."""
    return len(client_id) <= 255 and "\x00" not in client_id
