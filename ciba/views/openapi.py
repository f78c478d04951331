"""OpenAPI descriptions of the protocol endpoints' bodies (drf-spectacular), kept apart from
the views so each view file holds only its HTTP handling."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

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
        "authorization_details": serializers.CharField(
            required=False, help_text="RFC 9396: a JSON array of objects, of types the client registered."
        ),
        "claims": serializers.CharField(required=False, help_text="OIDC Core §5.5: a JSON claims request."),
        "request_context": serializers.CharField(required=False, help_text="CIBA §7.1: a JSON object."),
        "resource": serializers.ListField(
            child=serializers.CharField(),
            required=False,
            help_text="RFC 8707: an absolute URI; may be repeated.",
        ),
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
CANCEL_REQUEST = inline_serializer(
    "BackchannelCancelRequest",
    {
        "auth_req_id": serializers.CharField(
            max_length=255, help_text="The auth_req_id of a pending request this client started."
        ),
    },
)
CANCEL_RESPONSE = inline_serializer(
    "BackchannelCancelResponse",
    {
        "auth_req_id": serializers.CharField(),
        "state": serializers.CharField(help_text="Always cancelled."),
    },
)
OAUTH_ERROR = inline_serializer(
    "OAuthError",
    {"error": serializers.CharField(), "error_description": serializers.CharField(required=False)},
)
REQUEST_NOT_PENDING = inline_serializer(
    "RequestNotPending",
    {
        "error": serializers.CharField(),
        "error_description": serializers.CharField(),
        "state": serializers.CharField(),
    },
)
STEP_UP_REQUIRED = inline_serializer(
    "StepUpRequired",
    {
        "error": serializers.CharField(help_text="step_up_required"),
        "error_description": serializers.CharField(),
        "level": serializers.CharField(
            required=False,
            help_text="The level approving needs: password, passkey or passkey_device_bound.",
        ),
        "methods": serializers.ListField(
            child=serializers.CharField(),
            required=False,
            help_text="The authentication.method values that reach it here, weakest first.",
        ),
        "acr": serializers.CharField(required=False, help_text="The acr that level achieves."),
    },
)
