"""Client authentication for the backchannel and token endpoints, in one place.

CIBA §7.1 requires the client to authenticate "using the authentication method registered
for its client_id" — ``client_secret_basic``, ``client_secret_post``, ``client_secret_jwt``
or ``private_key_jwt`` (RFC 7523) — and the same rule serves the token endpoint (through
``CibaValidator.authenticate_client``), so both endpoints accept and refuse exactly the
same credentials.

Secrets stay hashed at rest (DOT stores them with the password hasher, PBKDF2 by default,
~180 ms per check on a 2-core machine). A client that polls every few seconds would pay
that on every request, so a *verified* secret is remembered for ``CLIENT_SECRET_CACHE_SECONDS``
under a cache key that is an HMAC (keyed with ``SECRET_KEY``) of the stored hash and the
presented secret. The trade-off, documented in docs/security.md: the cache never holds the
secret or anything that reveals it without ``SECRET_KEY``; rotating the secret changes the
stored hash and so invalidates the entry at once; a wrong secret is never cached and always
pays the full hash, which keeps guessing slow.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from django.contrib.auth.hashers import check_password, identify_hasher, make_password
from django.core.cache import cache
from django.utils.crypto import constant_time_compare, salted_hmac

from . import client_cache, constants
from .conf import ciba_settings
from .endpoints import audiences
from .errors import InvalidClient
from .jose import JoseError, client_keys, header_of, unverified_claims, verify
from .replay import first_use

SECRET_METHODS = (constants.AUTH_CLIENT_SECRET_BASIC, constants.AUTH_CLIENT_SECRET_POST)
JWT_METHODS = (constants.AUTH_CLIENT_SECRET_JWT, constants.AUTH_PRIVATE_KEY_JWT)


@dataclass(frozen=True)
class Credentials:
    """What a request presented, before anything was verified."""

    method: str
    client_id: str
    secret: str = ""
    assertion: str = ""


def read_credentials(authorization: str, params: Mapping[str, str]) -> Credentials | None:
    """Parse the one authentication method a request uses; ``None`` when it uses none.

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
                "client_assertion must have iss and sub equal to the client_id (RFC 7523 §3)."
            )
        if body_client_id is not None and body_client_id != sub:
            raise InvalidClient("client_id does not match the client assertion.")
        method = (
            constants.AUTH_CLIENT_SECRET_JWT
            if header["alg"].startswith("HS")
            else constants.AUTH_PRIVATE_KEY_JWT
        )
        return Credentials(method, sub, assertion=assertion)
    return None


def load_client(client_id: str) -> Any:
    if not client_id:
        return None
    return client_cache.load_client(client_id)


def verify_credentials(credentials: Credentials, client: Any, request: Any) -> Any:
    """Check ``credentials`` against ``client`` and its registered method; return the client.

    ``request`` (Django or oauthlib) tells which URLs count as this server in an assertion's
    ``aud``. Error texts never reveal whether the client id exists.
    """
    if client is None:
        if credentials.secret:
            check_password(credentials.secret, _dummy_hash())  # same cost as a real check
        raise InvalidClient("Client authentication failed.")
    registered = getattr(client, "token_endpoint_auth_method", constants.AUTH_CLIENT_SECRET_BASIC)
    if credentials.method != registered:
        raise InvalidClient(f"This client must authenticate with {registered}.")
    if credentials.method in SECRET_METHODS:
        if not credentials.secret or not check_secret(credentials.secret, client.client_secret):
            raise InvalidClient("Client authentication failed.")
        return client
    _verify_assertion(credentials, client, request)
    return client


def authenticate_client(request: Any, params: Mapping[str, str]) -> Any:
    """Authenticate the client of a Django request whose form parameters are ``params``."""
    credentials = read_credentials(request.META.get("HTTP_AUTHORIZATION", ""), params)
    if credentials is None:
        raise InvalidClient("Client authentication is required.")
    return verify_credentials(credentials, load_client(credentials.client_id), request)


def check_secret(provided: str, stored: str) -> bool:
    """Constant-time check of a client secret, with verified hashed secrets remembered briefly."""
    try:
        identify_hasher(stored)
    except ValueError:
        return constant_time_compare(provided, stored)
    ttl = ciba_settings.CLIENT_SECRET_CACHE_SECONDS
    key = "ciba:secret-ok:" + salted_hmac("ciba.client-secret", f"{stored}\0{provided}").hexdigest()
    if ttl and _verified_here(key):
        return True
    if ttl and cache.get(key):
        _remember_here(key, ttl)
        return True
    if not check_password(provided, stored):
        return False
    if ttl:
        cache.set(key, True, ttl)
        _remember_here(key, ttl)
    return True


#: Verified-secret keys this process has seen, with their monotonic expiry: the shared cache
#: is asked once per key and process, not on every request. The keys bind the stored hash,
#: so a rotated secret never matches an old entry.
_VERIFIED: dict[str, float] = {}


def _verified_here(key: str) -> bool:
    expiry = _VERIFIED.get(key)
    return expiry is not None and expiry > time.monotonic()


def _remember_here(key: str, ttl: int) -> None:
    if len(_VERIFIED) >= 4096:
        _VERIFIED.clear()
    _VERIFIED[key] = time.monotonic() + ttl


def _verify_assertion(credentials: Credentials, client: Any, request: Any) -> None:
    alg = client.client_assertion_alg
    if credentials.method == constants.AUTH_CLIENT_SECRET_JWT:
        try:
            identify_hasher(client.client_secret)
            raise InvalidClient("client_secret_jwt needs an unhashed client secret on the server.")
        except ValueError:
            keys: list[Any] = [client.client_secret.encode()]
    else:
        try:
            keys = client_keys(client)
        except JoseError as exc:
            raise InvalidClient(str(exc)) from None
    try:
        claims = verify(
            credentials.assertion,
            keys,
            algorithms=[alg],
            audience=audiences(request),
            issuer=client.client_id,
            require=("iss", "sub", "aud", "exp", "jti"),
        )
    except JoseError as exc:
        raise InvalidClient(f"client_assertion: {exc}") from None
    exp = claims["exp"]
    if not isinstance(exp, (int, float)) or exp - time.time() > ciba_settings.CLIENT_ASSERTION_MAX_LIFETIME:
        raise InvalidClient("client_assertion lives too long (exp too far in the future).")
    if not isinstance(claims["jti"], str) or not first_use(
        "client_assertion", client.client_id, claims["jti"], exp
    ):
        raise InvalidClient("client_assertion jti has been used before.")


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


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(make_password("ciba-unknown-client"))
    return _DUMMY[0]
