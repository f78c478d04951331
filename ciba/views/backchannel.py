"""The backchannel authentication endpoint (CIBA §7): a client starts a CIBA request."""

from __future__ import annotations

import re
from typing import Any

from django.http import QueryDict
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.utils import extend_schema, inline_serializer
from oauth2_provider.scopes import get_scopes_backend
from rest_framework import serializers
from rest_framework.parsers import FormParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import constants, services
from ..client_auth import authenticate_client
from ..conf import ciba_settings
from ..errors import (
    InvalidBindingMessage,
    InvalidRequest,
    InvalidScope,
    InvalidUserCode,
    MissingUserCode,
    UnauthorizedClient,
)
from ..request_object import parameters_from_request_object
from ..tasks import enqueue_device_notification
from ..throttling import ClientRateThrottle
from .errors import ProtocolEndpointMixin

HINTS = ("login_hint", "login_hint_token", "id_token_hint")
_B64TOKEN = re.compile(constants.B64TOKEN_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: The largest requested_expiry stored as asked (it is then capped by MAX_EXPIRES_IN).
MAX_REQUESTED_EXPIRY = 2**31 - 1


BACKCHANNEL_REQUEST = inline_serializer(
    "BackchannelAuthenticationRequest",
    {
        "scope": serializers.CharField(help_text="Space-separated; must contain openid."),
        "login_hint": serializers.CharField(required=False),
        "login_hint_token": serializers.CharField(required=False),
        "id_token_hint": serializers.CharField(required=False),
        "binding_message": serializers.CharField(required=False),
        "acr_values": serializers.CharField(required=False),
        "client_notification_token": serializers.CharField(
            required=False, help_text="Required for ping and push."
        ),
        "user_code": serializers.CharField(required=False),
        "requested_expiry": serializers.IntegerField(required=False, min_value=1),
        "request": serializers.CharField(required=False, help_text="A signed request object (CIBA §7.1.1)."),
    },
)
BACKCHANNEL_RESPONSE = inline_serializer(
    "BackchannelAuthenticationResponse",
    {
        "auth_req_id": serializers.CharField(),
        "expires_in": serializers.IntegerField(),
        "interval": serializers.IntegerField(required=False),
    },
)
OAUTH_ERROR = inline_serializer(
    "OAuthError",
    {"error": serializers.CharField(), "error_description": serializers.CharField(required=False)},
)


@extend_schema(
    tags=["ciba"],
    summary="Start a CIBA request (CIBA §7); authenticate as the client",
    request={"application/x-www-form-urlencoded": BACKCHANNEL_REQUEST},
    responses={
        200: BACKCHANNEL_RESPONSE,
        400: OAUTH_ERROR,
        401: OAUTH_ERROR,
        403: OAUTH_ERROR,
        429: OAUTH_ERROR,
    },
)
@method_decorator(
    sensitive_post_parameters(
        "client_secret",
        "client_assertion",
        "client_notification_token",
        "user_code",
        "login_hint_token",
        "id_token_hint",
        "request",
    ),
    name="dispatch",
)
class BackchannelAuthenticationView(ProtocolEndpointMixin, APIView):
    """``POST /o/backchannel-authentication/`` → ``{auth_req_id, expires_in, interval}``.

    Only ``application/x-www-form-urlencoded`` bodies are parsed (§7.1); any other content
    type, a repeated parameter, or a wrong method is an OAuth ``invalid_request``, never
    DRF's ``{"detail": ...}``. Client authentication is done here rather than by DRF so
    that it can answer with the OAuth error shape and the registered-method rule.
    """

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    parser_classes = [FormParser]

    def throttle_client(self, request: Request, client: Any) -> None:
        """DRF throttling keyed on the authenticated client (known only after authentication)."""
        throttle = ClientRateThrottle()
        if not throttle.allow_client(client):
            self.throttled(request, throttle.wait())

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Validate and store a CIBA request; answer ``{auth_req_id, expires_in, interval}``."""
        params = _single_valued(request.data)
        client = authenticate_client(request._request, params)
        if (
            not client.is_ciba_client
            or client.backchannel_token_delivery_mode not in ciba_settings.DELIVERY_MODES
        ):
            raise UnauthorizedClient("This client is not registered for CIBA.")
        self.throttle_client(request, client)
        if "request" in params:
            params = parameters_from_request_object(params["request"], params, client, request._request)
        elif client.backchannel_authentication_request_signing_alg:
            raise InvalidRequest("This client registered a signing algorithm and must send a signed request.")

        scopes = _scopes(params, client)
        hint_kind, hint = _one_hint(params)
        notification_token = _notification_token(params, client)
        expires_in = _expires_in(params)
        binding_message = _binding_message(params, client)
        acr_values = _plain("acr_values", params.get("acr_values", ""))
        resolver = ciba_settings.USER_RESOLVER_CLASS()
        user = resolver.resolve(client=client, request=request._request, **{hint_kind: hint})
        _check_user_code(params, user, client)
        ciba_settings.REQUEST_POLICY_CLASS().check(
            client=client, user=user, scopes=scopes, acr_values=acr_values
        )

        mode = client.backchannel_token_delivery_mode
        # One INSERT is its own transaction: no BEGIN/COMMIT round trips around it (two of the
        # six database round trips of this request). Under ATOMIC_REQUESTS, or any outer
        # transaction, the after-commit work still waits for that commit.
        ar = services.create_request(
            expires_in=expires_in,
            client=client,
            user=user,
            hint_kind=hint_kind,
            scope=" ".join(scopes),
            acr_values=acr_values,
            binding_message=binding_message,
            client_notification_token=notification_token,
            requested_expiry=int(params["requested_expiry"]) if "requested_expiry" in params else None,
            interval=ciba_settings.DEFAULT_INTERVAL,
        )
        enqueue_device_notification(ar)
        body: dict[str, Any] = {"auth_req_id": ar.auth_req_id, "expires_in": expires_in}
        if mode in constants.TOKEN_ENDPOINT_MODES:
            # §7.3: interval only for clients that may poll.
            body["interval"] = ar.interval
        return Response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _single_valued(data: QueryDict) -> dict[str, str]:
    repeated = sorted(key for key, values in data.lists() if len(values) > 1)
    if repeated:
        raise InvalidRequest(f"Repeated parameter: {', '.join(repeated)}.")
    params = {key: values[0] for key, values in data.lists()}
    # No parameter of this endpoint may hold a NUL; PostgreSQL could not even store it.
    bad = sorted(key for key, value in params.items() if "\x00" in key or "\x00" in value)
    if bad:
        raise InvalidRequest(f"Parameter contains a NUL character: {', '.join(bad)}.")
    return params


def _scopes(params: dict[str, str], client: Any) -> list[str]:
    scopes = params.get("scope", "").split()
    if "openid" not in scopes:
        raise InvalidScope("scope must contain openid (CIBA §7.1).")
    available = set(get_scopes_backend().get_available_scopes(application=client))
    unknown = [s for s in scopes if s not in available]
    if unknown:
        raise InvalidScope(f"Unknown scope: {' '.join(unknown)}.")
    if ciba_settings.CONSENT_SCOPE in scopes:
        # A token with the consent scope approves CIBA requests; a client must never obtain
        # one through CIBA itself.
        raise InvalidScope(f"The {ciba_settings.CONSENT_SCOPE} scope cannot be requested through CIBA.")
    return list(dict.fromkeys(scopes))


def _one_hint(params: dict[str, str]) -> tuple[str, str]:
    present = [h for h in HINTS if params.get(h)]
    if len(present) != 1:
        raise InvalidRequest("Send exactly one of login_hint, login_hint_token and id_token_hint.")
    return present[0], params[present[0]]


def _notification_token(params: dict[str, str], client: Any) -> str:
    token = params.get("client_notification_token", "")
    if not client.receives_notifications:
        return ""  # poll clients get no callbacks; a token they send is ignored.
    if not token:
        raise InvalidRequest("client_notification_token is required for ping and push clients.")
    if len(token) > constants.CLIENT_NOTIFICATION_TOKEN_MAX_LENGTH:
        raise InvalidRequest("client_notification_token is longer than 1024 characters.")
    if not _B64TOKEN.match(token):
        raise InvalidRequest("client_notification_token is not a valid bearer token (RFC 6750 §2.1).")
    return token


def _expires_in(params: dict[str, str]) -> int:
    if "requested_expiry" not in params:
        return ciba_settings.DEFAULT_EXPIRES_IN
    raw = params["requested_expiry"]
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_REQUESTED_EXPIRY:
        raise InvalidRequest(
            f"requested_expiry must be a whole number of seconds from 1 to {MAX_REQUESTED_EXPIRY}."
        )
    return min(int(raw), ciba_settings.MAX_EXPIRES_IN)


def _binding_message(params: dict[str, str], client: Any) -> str:
    message = params.get("binding_message")
    if message is None:
        if ciba_settings.BINDING_MESSAGE_REQUIRED:
            raise InvalidBindingMessage("binding_message is required by this server.")
        return ""
    return ciba_settings.BINDING_MESSAGE_VALIDATOR_CLASS().validate(message, client)


def _plain(name: str, value: str) -> str:
    if _CONTROL.search(value):
        raise InvalidRequest(f"{name} contains control characters.")
    return value


def _check_user_code(params: dict[str, str], user: Any, client: Any) -> None:
    if not (ciba_settings.USER_CODE_SUPPORTED and client.backchannel_user_code_parameter):
        return
    code = params.get("user_code")
    if not code:
        raise MissingUserCode("user_code is required for this client.")
    if not ciba_settings.USER_CODE_VERIFIER_CLASS().verify(user, code, client):
        raise InvalidUserCode("user_code is not correct.")
