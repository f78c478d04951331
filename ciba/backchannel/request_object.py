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
    "resource",  # RFC 8707 §2: the resources the tokens are for
)
#: Members that carry JSON rather than text: passed on as their JSON text, read by their rule.
_JSON_CLAIMS = ("request_context", "authorization_details", "claims")
_STRING_CLAIMS = tuple(
    p for p in REQUEST_PARAMETERS if p not in ("requested_expiry", "resource", *_JSON_CLAIMS)
)
#: What a signed request is besides its parameters: the JWT claims §7.1.1 requires, and
#: ``client_id``, which request objects often repeat (it must then be the ``iss``).
ENVELOPE_CLAIMS = ("iss", "aud", "exp", "iat", "nbf", "jti", "client_id")
#: Members this server does not implement that an error description may name: parameters of
#: other OAuth and OpenID endpoints, never a name only the client made up.
_FOREIGN_PARAMETERS = frozenset(
    (
        "response_type",
        "response_mode",
        "redirect_uri",
        "state",
        "nonce",
        "prompt",
        "max_age",
        "display",
        "ui_locales",
        "claims_locales",
        "registration",
        "request",
        "request_uri",
        "code_challenge",
        "code_challenge_method",
        "sub",
        "purpose",
        "grant_type",
        "audience",
    )
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
    if "client_id" in claims and claims["client_id"] != claims["iss"]:
        raise InvalidRequest("request: the client_id claim is not the iss.")
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
    """The parameters a verified request carries, as the form would carry them: text, and the
    JSON members as their JSON text. A member this server does not implement is refused, never
    dropped: a client that signed it believes it was honoured (an ``authorization_details`` the
    user never saw, say)."""
    unknown = [name for name in claims if name not in REQUEST_PARAMETERS and name not in ENVELOPE_CLAIMS]
    if unknown:
        named = sorted(name for name in unknown if name in _FOREIGN_PARAMETERS)
        which = f": {', '.join(named)}" if named else ""
        raise InvalidRequest(
            f"request: the signed request holds members this server does not implement{which}."
        )
    params: dict[str, str] = {}
    for name in _STRING_CLAIMS:
        if name in claims:
            if not isinstance(claims[name], str):
                raise InvalidRequest(f"request: the {name} claim must be a string.")
            if "\x00" in claims[name]:
                raise InvalidRequest(f"request: the {name} claim contains a NUL character.")
            if not _encodable(claims[name]):
                raise InvalidRequest(f"request: the {name} claim is not valid Unicode text.")
            params[name] = claims[name]
    if "requested_expiry" in claims:
        value = claims["requested_expiry"]
        # §7.1.1: "MUST accept either" a JSON number or a string.
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise InvalidRequest("request: requested_expiry must be a number or a string.")
        params["requested_expiry"] = str(value)
    for name in _JSON_CLAIMS:
        # An object or array (or its JSON text), checked by its rule exactly as the form's text.
        if name in claims:
            value = claims[name]
            params[name] = value if isinstance(value, str) else _json_text(value)
    if "resource" in claims:
        # RFC 8707 §2: one URI or several; passed on as the JSON array ``single_valued`` makes
        # of a repeated form parameter.
        value = claims["resource"]
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidRequest("request: resource must be a string or an array of strings.")
        params["resource"] = _json_text(values)
    return params


def _json_text(value: Any) -> str:
    """``value`` as compact JSON text (a non-finite number a JWT decoder let through becomes
    ``Infinity``/``NaN`` text, which the strict readers of each rule refuse)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _encodable(text: str) -> bool:
    """No lone surrogate (a JSON ``\\ud800`` escape decodes to one): neither PostgreSQL nor a
    device could store or show it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
