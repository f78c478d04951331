"""Verifying presented credentials against the client and the method it registered, under the
failed-authentication guard (``guard``), which needs to know which checks are expensive."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.hashers import identify_hasher

from .. import constants
from ..conf import ciba_settings
from ..endpoints import audiences
from ..errors import InvalidClient, TooManyFailedAuthentications
from ..jose import JoseError, client_keys, header_of, verify
from ..jose.keys import JWKS_CACHE_SECONDS
from ..profile import assertion_algs, client_auth_methods
from ..replay import first_use
from ..sender.certificates import presented_certificate
from .clients import load_client
from .credentials import CLIENT_ID_ONLY, SECRET_METHODS, Credentials, read_credentials
from .guard import attempt, client_address
from .secret import (
    check_secret,
    is_slow,
    pay_for_unknown_client,
    recently_verified,
    unknown_client_is_slow,
    upgrade_secret,
)

logger = logging.getLogger("ciba.client_auth")


def verify_credentials(credentials: Credentials, client: Any, request: Any) -> Any:
    """Check ``credentials`` against ``client`` and its registered method; return the client.

    ``request`` (Django, DRF or oauthlib) tells which URLs count as this server in an
    assertion's ``aud``, and where the request came from. Every failure reads the same,
    "Client authentication failed.", whether the id exists, which method it registered or
    why its assertion was refused (the reason is logged), so ids and methods cannot be probed.
    Failures are counted per (id, address) and per address (``guard``); a cheap check always
    runs, an expensive one (a slow hash, a ``jwks_uri`` fetch) only within the guard's limits.
    """
    registered = getattr(client, "token_endpoint_auth_method", constants.AUTH_CLIENT_SECRET_BASIC)
    uses_secret = (
        client is not None and credentials.method == registered and credentials.method in SECRET_METHODS
    )
    if uses_secret and recently_verified(credentials.secret, client.client_secret):
        upgrade_secret(client, credentials.secret)  # one HMAC and one UPDATE, once
        return client  # a slow hash verified lately: no hash, no counter
    address = client_address(request)
    counted = attempt(credentials.client_id, address, expensive=_expensive(credentials, client, registered))
    try:
        _verify(credentials, client, registered, request)
    except InvalidClient as exc:
        retry_after = counted.failed()
        logger.info(
            "Client authentication failed for %r from %s: %s", credentials.client_id[:80], address, exc
        )
        if retry_after:
            raise TooManyFailedAuthentications(retry_after=retry_after) from None
        raise InvalidClient("Client authentication failed.") from None
    except BaseException:
        counted.succeeded()  # not a failed authentication: only let the next check in
        raise
    counted.succeeded()
    if uses_secret:
        upgrade_secret(client, credentials.secret)
    return client


def _verify(credentials: Credentials, client: Any, registered: str, request: Any) -> None:
    if client is None:
        pay_for_unknown_client(credentials.secret)
        raise InvalidClient("unknown client id")
    if registered not in client_auth_methods():
        raise InvalidClient(f"the client registered {registered}, which this server does not accept now")
    if credentials.method == CLIENT_ID_ONLY and registered in constants.MTLS_AUTH_METHODS:
        _verify_certificate(client, registered, request)
        return
    if credentials.method != registered:
        raise InvalidClient(f"used {credentials.method}; the client registered {registered}")
    if credentials.method in SECRET_METHODS:
        if not credentials.secret or not check_secret(credentials.secret, client.client_secret):
            raise InvalidClient("wrong client secret")
        return
    _verify_assertion(credentials, client, request)


def _expensive(credentials: Credentials, client: Any, registered: str) -> bool:
    """Whether checking these credentials may cost a password hash or a ``jwks_uri`` fetch."""
    if client is None:
        return bool(credentials.secret) and unknown_client_is_slow()
    if registered not in client_auth_methods():
        return False
    if credentials.method == CLIENT_ID_ONLY and registered == constants.AUTH_SELF_SIGNED_TLS_CLIENT_AUTH:
        return not _keys_held(client)
    if credentials.method != registered:
        return False
    if credentials.method in SECRET_METHODS:
        return is_slow(client.client_secret)
    if credentials.method == constants.AUTH_PRIVATE_KEY_JWT:
        return not _keys_held(client)
    return False


#: (client pk, jwks_uri) → until when this process knows its key set is in the cache (or that
#: its last fetch failed, which is remembered too): a check with those keys fetches nothing.
_KEYS_SEEN: dict[tuple[Any, str], float] = {}


def _keys_held(client: Any) -> bool:
    if client.jwks or not client.jwks_uri:
        return True
    return _KEYS_SEEN.get((client.pk, client.jwks_uri), 0.0) > time.monotonic()


def _client_keys(client: Any, kid: Any = None) -> list[Any]:
    """``jose.client_keys``, noting when the key set (or its failure) is cached (``_keys_held``).
    ``kid``: the key the JWT names; one the cached set lacks makes ``jose`` fetch the set again,
    at most once per ``JWKS_REFETCH_MIN_INTERVAL`` (the client rotated its keys)."""
    try:
        keys = client_keys(client, kid=kid)
    except JoseError:
        _note_keys(client, ciba_settings.JWKS_FAILURE_CACHE_SECONDS)
        raise
    _note_keys(client, JWKS_CACHE_SECONDS)
    return keys


def _note_keys(client: Any, seconds: float) -> None:
    if client.jwks_uri and not client.jwks:
        if len(_KEYS_SEEN) >= 1024:
            _KEYS_SEEN.clear()
        # A little less than the cache keeps it: another process may have fetched it earlier.
        _KEYS_SEEN[(client.pk, client.jwks_uri)] = time.monotonic() + seconds * 0.8


def _verify_certificate(client: Any, registered: str, request: Any) -> None:
    """RFC 8705 §2: the certificate the TLS terminator forwarded identifies the client."""
    certificate = presented_certificate(request)
    if certificate is None:
        raise InvalidClient(f"{registered}, but no client certificate was presented")
    if registered == constants.AUTH_TLS_CLIENT_AUTH:
        if not certificate.chain_verified:
            raise InvalidClient("tls_client_auth, but the certificate does not chain to a trusted CA")
        if not certificate.matches_names(client):
            raise InvalidClient("tls_client_auth, but the certificate's names are not the registered one")
        return
    try:
        keys = _client_keys(client)
    except JoseError as exc:
        raise InvalidClient(str(exc)) from None
    if not certificate.matches_key(keys):
        raise InvalidClient("self_signed_tls_client_auth, but the certificate's key is not registered")


def authenticate_client(request: Any, params: Mapping[str, str]) -> Any:
    """Authenticate the client of a Django request whose form parameters are ``params``."""
    credentials = read_credentials(request.META.get("HTTP_AUTHORIZATION", ""), params)
    if credentials is None:
        raise InvalidClient("Client authentication is required.")
    return verify_credentials(credentials, load_client(credentials.client_id), request)


def poll_identity(authorization: str, params: Mapping[str, str]) -> tuple[str, str] | None:
    """``(client_id, fingerprint)`` of shared-secret credentials, for the poll fast path
    (``ciba.oauth.prescreen``); ``None`` for anything else, which the full path handles."""
    try:
        credentials = read_credentials(authorization, params)
    except InvalidClient:
        return None
    if credentials is None or credentials.method not in SECRET_METHODS or not credentials.client_id:
        return None
    return credentials.client_id, credentials.fingerprint()


def _verify_assertion(credentials: Credentials, client: Any, request: Any) -> None:
    algs = assertion_algs(client)
    if not algs:
        registered = client.token_endpoint_auth_signing_alg or "no algorithm"
        raise InvalidClient(f"the client registered {registered}, which is not accepted under the profile")
    if credentials.method == constants.AUTH_CLIENT_SECRET_JWT:
        try:
            identify_hasher(client.client_secret)
            raise InvalidClient("client_secret_jwt, but the secret is stored hashed (fix the client)")
        except ValueError:
            keys: list[Any] = [client.client_secret.encode()]
    else:
        try:
            keys = _client_keys(client, kid=header_of(credentials.assertion).get("kid"))
        except JoseError as exc:
            raise InvalidClient(str(exc)) from None
    try:
        claims = verify(
            credentials.assertion,
            keys,
            algorithms=algs,
            audience=audiences(request),
            issuer=client.client_id,
            require=("iss", "sub", "aud", "exp", "jti"),
        )
    except JoseError as exc:
        raise InvalidClient(f"client_assertion: {exc}") from None
    exp = claims["exp"]
    # A bool is an int, and an int may be too large for float arithmetic (exp = 10**400).
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not -(2**53) < exp < 2**53:
        raise InvalidClient("client_assertion exp is not a usable number.")
    if exp - time.time() > ciba_settings.CLIENT_ASSERTION_MAX_LIFETIME:
        raise InvalidClient("client_assertion lives too long (exp too far in the future).")
    if not isinstance(claims["jti"], str) or not first_use(
        "client_assertion", client.client_id, claims["jti"], exp
    ):
        raise InvalidClient("client_assertion jti has been used before.")
