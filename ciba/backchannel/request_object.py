"""Signed authentication requests (CIBA §7.1.1): the parameters as claims of a client-signed JWT.

Every violation is ``invalid_request`` (§13 has no request-object error; the conformance
suite expects it, an ``iss`` naming another client included) with a description that says
what was wrong, except a ``client_id`` outside the JWT that differs from its ``iss``, which is
a client-authentication failure (``invalid_client``). Descriptions never repeat what the
client sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .. import profile
from ..conf import ciba_settings
from ..constants import FAPI_REQUEST_OBJECT_MAX_LIFETIME
from ..endpoints import audiences
from ..errors import InvalidClient, InvalidRequest
from ..jose import JoseError, client_keys, header_of, verify
from ..replay import first_use

#: Authentication request parameters: inside a signed request they may only be claims (§7.1.1).
REQUEST_PARAMETERS = (
    "scope",
    "client_notification_token",
    "acr_values",
    "login_hint_token",
    "id_token_hint",
    "login_hint",
    "binding_message",
    "user_code",
    "requested_expiry",
    "request_context",
    "authorization_details",
    "claims",
    "dpop_jkt",  # RFC 9449 §10: the key the tokens will be bound to
)
_STRING_CLAIMS = tuple(
    p
    for p in REQUEST_PARAMETERS
    if p not in ("requested_expiry", "request_context", "authorization_details", "claims")
)


def parameters_from_request_object(
    token: str, form: Mapping[str, str], client: Any, request: Any
) -> dict[str, str]:
    """Verify the ``request`` JWT of ``client`` and return the authentication parameters in it."""
    outside = [p for p in REQUEST_PARAMETERS if p in form]
    if outside:
        raise InvalidRequest(f"With a signed request, {', '.join(outside)} must be inside the JWT only.")
    registered = client.backchannel_authentication_request_signing_alg
    if not registered:
        raise InvalidRequest(
            "This client has not registered backchannel_authentication_request_signing_alg, "
            "so it may not send signed requests."
        )
    accepted = profile.request_signing_algs()
    try:
        alg = header_of(token)["alg"]
        if alg not in accepted:
            raise InvalidRequest(f"Signed requests must use one of {', '.join(accepted) or 'no algorithm'}.")
        if alg != registered:
            raise InvalidRequest(f"This client registered {registered} for signed requests.")
        claims = verify(
            token,
            client_keys(client, kid=header_of(token).get("kid")),
            algorithms=[registered],
            audience=audiences(request),
            require=("aud", "iss", "exp", "iat", "nbf", "jti"),
        )
    except JoseError as exc:
        raise InvalidRequest(f"request: {exc}") from None
    if claims["iss"] != client.client_id:
        raise InvalidRequest("request: iss is not the authenticated client.")
    if "client_id" in form and form["client_id"] != claims["iss"]:
        raise InvalidClient("client_id differs from the signed request's iss.")
    _check_lifetime(claims)
    if not isinstance(claims["jti"], str) or not first_use(
        "request_object", client.client_id, claims["jti"], claims["exp"]
    ):
        raise InvalidRequest("request: the jti has been used before.")
    return _as_parameters(claims)


def _check_lifetime(claims: dict[str, Any]) -> None:
    for name in ("exp", "nbf", "iat"):
        if isinstance(claims[name], bool) or not isinstance(claims[name], (int, float)):
            raise InvalidRequest(f"request: {name} must be a number.")
    # The lifetime is a limit on what the client wrote, not a clock comparison: no leeway.
    limit = ciba_settings.REQUEST_OBJECT_MAX_LIFETIME
    if profile.fapi():  # FAPI-CIBA §5.2.2: nbf and exp at most 60 minutes apart
        limit = min(limit, FAPI_REQUEST_OBJECT_MAX_LIFETIME)
    if claims["exp"] - claims["nbf"] > limit:
        raise InvalidRequest(f"request: exp - nbf exceeds {limit} seconds.")


def _as_parameters(claims: dict[str, Any]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name in _STRING_CLAIMS:
        if name in claims:
            if not isinstance(claims[name], str):
                raise InvalidRequest(f"request: the {name} claim must be a string.")
            if "\x00" in claims[name]:
                raise InvalidRequest(f"request: the {name} claim contains a NUL character.")
            params[name] = claims[name]
    if "requested_expiry" in claims:
        value = claims["requested_expiry"]
        # §7.1.1: "MUST accept either" a JSON number or a string.
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise InvalidRequest("request: requested_expiry must be a number or a string.")
        params["requested_expiry"] = str(value)
    if "claims" in claims:
        # OIDC Core §5.5: an object (or its JSON text); read by the acr rule like the form value.
        value = claims["claims"]
        params["claims"] = value if isinstance(value, str) else json.dumps(value)
    return params
