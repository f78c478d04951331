"""Verifying presented credentials against the client and the method it registered."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.hashers import identify_hasher

from .. import constants
from ..conf import ciba_settings
from ..endpoints import audiences
from ..errors import InvalidClient
from ..jose import JoseError, client_keys, first_use, verify
from .clients import load_client
from .credentials import SECRET_METHODS, Credentials, read_credentials
from .secret import check_secret, pay_for_unknown_client


def verify_credentials(credentials: Credentials, client: Any, request: Any) -> Any:
    """Check ``credentials`` against ``client`` and its registered method; return the client.

    ``request`` (Django or oauthlib) tells which URLs count as this server in an assertion's
    ``aud``. Error texts never reveal whether the client id exists.
    """
    if client is None:
        pay_for_unknown_client(credentials.secret)
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


def poll_identity(authorization: str, params: Mapping[str, str]) -> tuple[str, str] | None:
    """``(client_id, fingerprint)`` of shared-secret credentials, for the poll fast path
    (``ciba.polling.prescreen``); ``None`` for anything else, which the full path handles."""
    try:
        credentials = read_credentials(authorization, params)
    except InvalidClient:
        return None
    if credentials is None or credentials.method not in SECRET_METHODS or not credentials.client_id:
        return None
    return credentials.client_id, credentials.fingerprint()


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
