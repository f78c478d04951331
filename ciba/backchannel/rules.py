"""CIBA §7.1: what makes an authentication request valid, one small rule per requirement.

``validate(params, client=..., http_request=...)`` turns the form parameters of an
authenticated client's request into a frozen ``NewRequest``, or raises the ``ciba.errors``
error the spec names. Each rule is a plain function of its inputs, so it is tested without
HTTP (tests/test_backchannel_rules.py); the order of ``validate`` is the order in which a
client learns about its mistakes: the request's shape first, then who it is for, then
whether this server will ask them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.http import QueryDict
from oauth2_provider.scopes import get_scopes_backend

from .. import constants, profile
from ..conf import ciba_settings
from ..endpoints import backchannel_endpoint_urls
from ..errors import (
    AccessDenied,
    InvalidBindingMessage,
    InvalidRequest,
    InvalidScope,
    InvalidUserCode,
    MissingUserCode,
)
from ..sender import bindings
from .request_object import REQUEST_PARAMETERS, parameters_from_request_object

HINTS = ("login_hint", "login_hint_token", "id_token_hint")
#: Parameter names an error description may repeat: ours, never what a client made up.
KNOWN_PARAMETERS = frozenset(
    (
        *REQUEST_PARAMETERS,
        "request",
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    )
)
#: The largest requested_expiry stored as asked (it is then capped by MAX_EXPIRES_IN).
MAX_REQUESTED_EXPIRY = 2**31 - 1
_B64TOKEN = re.compile(constants.B64TOKEN_PATTERN)
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class NewRequest:
    """A validated authentication request, ready to be stored (``services.create_request``)."""

    client: Any
    user: Any
    hint_kind: str
    scopes: tuple[str, ...]
    acr_values: str
    acr_essential: bool
    binding_message: str
    client_notification_token: str
    requested_expiry: int | None
    expires_in: int
    interval: int
    dpop_jkt: str = ""
    cert_x5t_s256: str = ""

    def create_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``services.create_request`` for this request."""
        return {
            "expires_in": self.expires_in,
            "client": self.client,
            "user": self.user,
            "hint_kind": self.hint_kind,
            "scope": " ".join(self.scopes),
            "acr_values": self.acr_values,
            "acr_essential": self.acr_essential,
            "binding_message": self.binding_message,
            "client_notification_token": self.client_notification_token,
            "requested_expiry": self.requested_expiry,
            "interval": self.interval,
            "dpop_jkt": self.dpop_jkt,
            "cert_x5t_s256": self.cert_x5t_s256,
        }


def validate(params: Mapping[str, str], *, client: Any, http_request: Any) -> NewRequest:
    """Apply every rule to the single-valued form ``params`` of ``client``'s request."""
    params = signed_request(params, client=client, http_request=http_request)
    scopes = scope(params, client=client)
    hint_kind, hint = one_hint(params)
    notification_token = client_notification_token(params, client=client)
    expires_in = requested_expiry(params)
    message = binding_message(params, client=client)
    acr_values, acr_essential = acr(params)
    resolver = ciba_settings.USER_RESOLVER_CLASS()
    user = resolver.resolve(client=client, http_request=http_request, **{hint_kind: hint})
    user_code(params, user=user, client=client)
    ciba_settings.REQUEST_POLICY_CLASS().check(client=client, user=user, scopes=scopes, acr_values=acr_values)
    binding = sender_binding(params, client=client, http_request=http_request)
    return NewRequest(
        client=client,
        user=user,
        hint_kind=hint_kind,
        scopes=tuple(scopes),
        acr_values=acr_values,
        acr_essential=acr_essential,
        binding_message=message,
        client_notification_token=notification_token,
        requested_expiry=seconds(params["requested_expiry"]) if "requested_expiry" in params else None,
        expires_in=expires_in,
        interval=ciba_settings.DEFAULT_INTERVAL,
        dpop_jkt=binding.jkt if binding is not None else "",
        cert_x5t_s256=binding.x5t_s256 if binding is not None else "",
    )


def single_valued(data: QueryDict | Mapping[str, str]) -> dict[str, str]:
    """RFC 6749 §3.1: no parameter may be repeated; and none may hold a NUL, which PostgreSQL
    could not even store. (A body DRF did not parse, such as an empty one, is a plain dict.)"""
    lists = list(data.lists()) if isinstance(data, QueryDict) else [(k, [v]) for k, v in data.items()]
    repeated = [key for key, values in lists if len(values) > 1]
    if repeated:
        raise InvalidRequest(f"A parameter is repeated{_names(repeated)}.")
    params = {key: values[0] for key, values in lists}
    bad = [key for key, value in params.items() if "\x00" in key or "\x00" in value]
    if bad:
        raise InvalidRequest(f"A parameter contains a NUL character{_names(bad)}.")
    return params


def _names(keys: list[str]) -> str:
    """The known names among ``keys``, for a description (a client's own names are not repeated)."""
    known = sorted(k for k in set(keys) if k in KNOWN_PARAMETERS)
    return f": {', '.join(known)}" if known else ""


def signed_request(params: Mapping[str, str], *, client: Any, http_request: Any) -> Mapping[str, str]:
    """§7.1.1: the parameters of a signed request are the claims of its ``request`` JWT; a
    client that registered a signing algorithm may send nothing else."""
    if "request" in params:
        return parameters_from_request_object(params["request"], params, client, http_request)
    if client.backchannel_authentication_request_signing_alg:
        raise InvalidRequest("This client registered a signing algorithm and must send a signed request.")
    if profile.signed_requests_required():
        raise InvalidRequest("This server accepts signed authentication requests only (FAPI-CIBA).")
    return params


def sender_binding(params: Mapping[str, str], *, client: Any, http_request: Any) -> bindings.Binding | None:
    """RFC 9449 §10, RFC 8705 §3: the key (DPoP proof or ``dpop_jkt``) or certificate this
    request is made with; push tokens are bound to it. Checked last, so a refused request
    never spends a proof's ``jti``."""
    return bindings.for_backchannel_request(
        http_request, client, params, backchannel_endpoint_urls(http_request)
    )


def scope(params: Mapping[str, str], *, client: Any) -> list[str]:
    """§7.1: ``openid`` is REQUIRED, so a scope without it is a missing required value
    (``invalid_request``); every scope must be one the client may ask for (``invalid_scope``);
    the consent scope is never granted through CIBA."""
    scopes = params.get("scope", "").split()
    if "openid" not in scopes:
        raise InvalidRequest("scope must contain openid (CIBA section 7.1).")
    if not all(_SCOPE_TOKEN.fullmatch(s) for s in scopes):
        raise InvalidScope("scope holds characters RFC 6749 section 3.3 does not allow.")
    available = set(get_scopes_backend().get_available_scopes(application=client))
    if any(s not in available for s in scopes):
        raise InvalidScope("scope names a value this server does not offer to this client.")
    if ciba_settings.CONSENT_SCOPE in scopes:
        # A token with the consent scope approves CIBA requests; a client must never obtain
        # one through CIBA itself.
        raise InvalidScope(f"The {ciba_settings.CONSENT_SCOPE} scope cannot be requested through CIBA.")
    return list(dict.fromkeys(scopes))


def one_hint(params: Mapping[str, str]) -> tuple[str, str]:
    """§7.1: exactly one of ``login_hint``, ``login_hint_token`` and ``id_token_hint``."""
    present = [h for h in HINTS if params.get(h)]
    if len(present) != 1:
        raise InvalidRequest("Send exactly one of login_hint, login_hint_token and id_token_hint.")
    return present[0], params[present[0]]


def client_notification_token(params: Mapping[str, str], *, client: Any) -> str:
    """§7.1: required of ping and push clients, a bearer token of at most 1024 characters
    (RFC 6750 b64token); a poll client's is ignored, as it is never called back."""
    token = params.get("client_notification_token", "")
    if not client.receives_notifications:
        return ""
    if not token:
        raise InvalidRequest("client_notification_token is required for ping and push clients.")
    if len(token) > constants.CLIENT_NOTIFICATION_TOKEN_MAX_LENGTH:
        raise InvalidRequest("client_notification_token is longer than 1024 characters.")
    if not _B64TOKEN.fullmatch(token):
        raise InvalidRequest("client_notification_token is not a valid bearer token (RFC 6750 section 2.1).")
    return token


def requested_expiry(params: Mapping[str, str]) -> int:
    """§7.1: a positive whole number of seconds; the server may shorten it (``MAX_EXPIRES_IN``)."""
    if "requested_expiry" not in params:
        return ciba_settings.DEFAULT_EXPIRES_IN
    return min(seconds(params["requested_expiry"]), ciba_settings.MAX_EXPIRES_IN)


def seconds(raw: str) -> int:
    """``requested_expiry`` as a whole number from 1 to ``MAX_REQUESTED_EXPIRY``, or
    ``invalid_request``. The length is checked before ``int()``: Python refuses to convert
    more than 4,300 digits (``ValueError``), and converting a long string costs quadratic time,
    so a 5,000-digit value must be refused as text, never parsed."""
    significant = raw.lstrip("0")
    if (
        not raw.isascii()
        or not raw.isdigit()
        or len(significant) > len(str(MAX_REQUESTED_EXPIRY))
        or not 0 < int(significant or "0") <= MAX_REQUESTED_EXPIRY
    ):
        raise InvalidRequest(
            f"requested_expiry must be a whole number of seconds from 1 to {MAX_REQUESTED_EXPIRY}."
        )
    return int(significant)


def binding_message(params: Mapping[str, str], *, client: Any) -> str:
    """§7.1: what both devices show; checked by ``BINDING_MESSAGE_VALIDATOR_CLASS``."""
    message = params.get("binding_message")
    if message is None:
        if ciba_settings.BINDING_MESSAGE_REQUIRED:
            raise InvalidBindingMessage("binding_message is required by this server.")
        return ""
    return ciba_settings.BINDING_MESSAGE_VALIDATOR_CLASS().validate(message=message, client=client)


def acr(params: Mapping[str, str]) -> tuple[str, bool]:
    """§7.1 ``acr_values`` (voluntary, in order of preference) and, per OIDC Core §5.5.1.1, an
    essential ``acr`` asked for through ``claims``; returns the values and whether they are
    essential. An essential requirement this server cannot meet at all (none of its values in
    ``ACR_VALUES_SUPPORTED``) is refused before anyone is asked: OIDC Core treats it as a failed
    authentication, which §13 names ``access_denied``."""
    values = plain_text("acr_values", params.get("acr_values", "")).split()
    requirement = _acr_claim(params.get("claims"))
    if requirement is None:
        return " ".join(values), False
    essential, claimed = requirement
    if not essential:
        return " ".join(values or claimed), False
    supported = set(ciba_settings.ACR_VALUES_SUPPORTED)
    if not supported.intersection(claimed):
        raise AccessDenied("This server cannot meet the essential acr the request asks for.")
    return " ".join(claimed), True


def _acr_claim(raw: str | None) -> tuple[bool, list[str]] | None:
    """``claims.id_token.acr`` as (essential, values); ``None`` when it does not ask for acr."""
    if raw is None:
        return None
    try:
        claims = json.loads(raw)
    except (ValueError, RecursionError):  # a document nested thousands deep is no claims request
        raise InvalidRequest("claims is not a JSON object.") from None
    id_token = claims.get("id_token", {}) if isinstance(claims, dict) else None
    if not isinstance(id_token, dict):
        raise InvalidRequest("claims is not a JSON object of claim requests (OIDC Core 5.5).")
    requested = id_token.get("acr")
    if requested is None:
        return None
    if not isinstance(requested, dict):
        raise InvalidRequest("claims: id_token.acr must be an object or null.")
    values = requested.get("values", [requested["value"]] if "value" in requested else [])
    essential = requested.get("essential", False)
    if not isinstance(essential, bool) or not isinstance(values, list):
        raise InvalidRequest(
            "claims: id_token.acr has an essential that is not a boolean or values that are not a list."
        )
    if not all(isinstance(v, str) and v and not _CONTROL.search(v) and " " not in v for v in values):
        raise InvalidRequest("claims: each id_token.acr value must be a non-empty string without spaces.")
    if essential and not values:
        raise InvalidRequest("claims: an essential id_token.acr needs value or values.")
    return essential, values


def plain_text(name: str, value: str) -> str:
    """Values stored and shown as text hold no control characters."""
    if _CONTROL.search(value):
        raise InvalidRequest(f"{name} contains control characters.")
    return value


def user_code(params: Mapping[str, str], *, user: Any, client: Any) -> None:
    """§7.1.2: checked when the server supports user codes and the client registered them; a
    request without one is ``missing_user_code`` when the verifier requires one of this user."""
    if not (ciba_settings.USER_CODE_SUPPORTED and client.backchannel_user_code_parameter):
        return
    verifier = ciba_settings.USER_CODE_VERIFIER_CLASS()
    code = params.get("user_code")
    if not code:
        required = getattr(verifier, "required_for", None)
        if required is None or required(user=user, client=client):
            raise MissingUserCode("user_code is required for this client.")
        return
    if not verifier.verify(user=user, user_code=code, client=client):
        raise InvalidUserCode("user_code is not correct.")
