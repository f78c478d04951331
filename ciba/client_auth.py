"""Client authentication for CIBA endpoints, with the method the client registered.

CIBA §7.1 requires the client to authenticate at the backchannel endpoint "using the
authentication method registered for its client_id"; the same rule serves the token
endpoint. Keeping it in one function means both endpoints accept and refuse exactly the
same credentials.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from django.http import HttpRequest
from oauth2_provider.models import get_application_model
from oauth2_provider.settings import oauth2_settings

from . import constants
from .errors import InvalidClient


def authenticate_client(request: HttpRequest, params: Mapping[str, str]) -> Any:
    """Return the authenticated application, or raise ``InvalidClient`` (401).

    The error text never says whether the client id exists; only the ``WWW-Authenticate``
    challenge differs, as RFC 6749 §5.2 requires for Basic.
    """
    basic = _basic_credentials(request)
    if "client_assertion" in params or "client_assertion_type" in params:
        raise InvalidClient("JWT client assertions (RFC 7523) are not accepted by this server yet.")
    if basic is not None:
        if "client_secret" in params:
            raise InvalidClient("Use exactly one client authentication method.")
        method = constants.AUTH_CLIENT_SECRET_BASIC
        client_id, secret = basic
        body_client_id = params.get("client_id")
        if body_client_id is not None and body_client_id != client_id:
            raise InvalidClient("client_id does not match the authenticated client.")
    elif "client_secret" in params:
        method = constants.AUTH_CLIENT_SECRET_POST
        client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
    else:
        raise InvalidClient("Client authentication is required.")

    client = get_application_model().objects.filter(client_id=client_id).first() if client_id else None
    validator = oauth2_settings.OAUTH2_VALIDATOR_CLASS()
    if client is None or not secret or not validator._check_secret(secret, client.client_secret):
        raise InvalidClient("Client authentication failed.")
    registered = getattr(client, "token_endpoint_auth_method", constants.AUTH_CLIENT_SECRET_BASIC)
    if registered != method:
        raise InvalidClient(f"This client must authenticate with {registered}.")
    return client


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("Malformed Basic credentials.") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("Malformed Basic credentials.")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)
