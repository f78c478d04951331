"""``POST /o/ciba/login-hint-token/``: a new "show my code" ``login_hint_token`` for the caller.

The consent API's side of the device page's "show my code" (``ciba.hint_tokens``): a site's own
device app asks for a code for its signed-in user, shows it (a QR code), and a kiosk sends it
back as its ``login_hint_token``. Authenticated like the rest of the consent API (a session,
with CSRF, or a token carrying the consent scope). The endpoint exists only while
``CIBA["LOGIN_HINT_TOKEN_ISSUANCE"]`` is on: 404 otherwise, before authentication, as for a
path that is not routed.

How often a user may mint is ``ciba.hint_tokens``' rule (about one a second, sustained: 429
``access_denied`` with ``Retry-After`` beyond), not a throttle here: the device page mints
through the same function, and the rule is exact across processes without the cache.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import hint_tokens
from .consent import ConsentAuthenticationMixin
from .openapi import OAUTH_ERROR

ISSUED = inline_serializer(
    "LoginHintTokenIssued",
    {
        "login_hint_token": serializers.CharField(
            help_text="A compact JWS this server signed (typ login-hint+jwt): show it to the client "
            "(a QR code), which sends it as its login_hint_token. It holds an opaque single-use "
            "handle, no personal data."
        ),
        "expires_in": serializers.IntegerField(
            help_text="Seconds it stays valid (LOGIN_HINT_TOKEN_LIFETIME)."
        ),
        "expires_at": serializers.DateTimeField(help_text="When it expires (ISO 8601, UTC)."),
    },
)


class LoginHintTokenView(ConsentAuthenticationMixin, APIView):
    """``POST``: a new code for the caller; answered ``no-store`` (it is a bearer credential
    for starting a request, if only for two minutes)."""

    http_method_names = ["post", "options"]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if not hint_tokens.enabled():
            raise Http404  # not offered: as if not routed, whoever asks
        super().initial(request, *args, **kwargs)

    @extend_schema(
        tags=["devices"],
        request=inline_serializer("LoginHintTokenRequest", {}),
        responses={
            200: ISSUED,
            404: OpenApiResponse(description="LOGIN_HINT_TOKEN_ISSUANCE is off."),
            429: OpenApiResponse(
                OAUTH_ERROR, description="access_denied: too many codes at once; see Retry-After."
            ),
        },
        summary="Show my code: a login_hint_token for the caller",
        description="A short-lived (LOGIN_HINT_TOKEN_LIFETIME), single-use login_hint_token this "
        "server signed for the caller, for a kiosk to scan and send to the backchannel endpoint. "
        "A user holds at most three at once (a newer one replaces the oldest) and may ask for about "
        "one a second. 404 while LOGIN_HINT_TOKEN_ISSUANCE is off.",
    )
    def post(self, request: Request) -> Response:
        issued = hint_tokens.issue(request.user, request)
        return Response(
            {
                "login_hint_token": issued.token,
                "expires_in": issued.expires_in,
                "expires_at": issued.expires_at.isoformat().replace("+00:00", "Z"),
            },
            headers={"Cache-Control": "no-store"},
        )
