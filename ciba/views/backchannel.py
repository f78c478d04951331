"""The backchannel authentication endpoint (CIBA §7): a client starts a CIBA request.

HTTP only: DRF's hooks authenticate the client (``ClientAuthentication``), refuse clients not
registered for CIBA (``IsCibaClient``) and throttle per client; ``ciba.backchannel`` checks
the parameters; ``ciba.services`` stores the request and notifies the user's device.
"""

from __future__ import annotations

from typing import Any

from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import backchannel, constants, services
from .backchannel_hooks import ClientAuthentication, ClientRateThrottle, IsCibaClient
from .openapi import BACKCHANNEL_REQUEST, BACKCHANNEL_RESPONSE, OAUTH_ERROR
from .rendering import ProtocolEndpointMixin


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
    DRF's ``{"detail": ...}``.
    """

    authentication_classes = [ClientAuthentication]
    permission_classes = [IsCibaClient]
    throttle_classes = [ClientRateThrottle]
    parser_classes = [FormParser]

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        params = backchannel.single_valued(request.data, repeatable=backchannel.REPEATABLE)
        new = backchannel.validate(params, client=request.auth, http_request=request)
        ar = services.create_request(**new.create_kwargs())
        body: dict[str, Any] = {"auth_req_id": ar.auth_req_id, "expires_in": new.expires_in}
        if new.client.backchannel_token_delivery_mode in constants.TOKEN_ENDPOINT_MODES:
            body["interval"] = ar.interval  # §7.3: only for clients that may poll
        return Response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
