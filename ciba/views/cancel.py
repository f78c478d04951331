"""The backchannel cancel endpoint: the client that started a CIBA request withdraws it.

An extension of this server, not part of CIBA Core 1.0 (which has no way for a client to
withdraw a request): discovery advertises it as ``backchannel_authentication_cancel_endpoint``.
A kiosk whose customer walked away should not leave a prompt on the customer's phone that
anyone standing there could still approve.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..backchannel import single_valued
from ..constants import AUTH_REQ_ID_PATTERN
from ..errors import InvalidGrant, InvalidRequest, RequestNotPending
from ..models import AuthenticationRequest
from .backchannel_hooks import ClientAuthentication, ClientRateThrottle
from .openapi import CANCEL_REQUEST, CANCEL_RESPONSE, OAUTH_ERROR
from .rendering import ProtocolEndpointMixin

State = AuthenticationRequest.State

_AUTH_REQ_ID = re.compile(AUTH_REQ_ID_PATTERN)

#: The one answer for an id this client cannot cancel because, for it, there is none: never
#: issued, or another client's (whose ids must not be probed through this endpoint).
UNKNOWN = "Unknown auth_req_id."


class CancelRateThrottle(ClientRateThrottle):
    """The backchannel endpoint's per-client rate (``BACKCHANNEL_THROTTLE_RATE``), counted
    apart: withdrawing requests must not spend the budget for starting them, nor the reverse."""

    scope = "ciba_backchannel_cancel"


@extend_schema(
    tags=["ciba"],
    summary="Withdraw a pending CIBA request (an extension of this server); authenticate as the client",
    description=(
        "Not part of CIBA Core 1.0: an extension of this server, advertised in discovery as "
        "backchannel_authentication_cancel_endpoint. The client that started a request withdraws "
        "it while it is pending: it becomes cancelled, polls for it get expired_token, no ping or "
        "push is sent, and the user's device removes the prompt. Client authentication as at the "
        "backchannel authentication endpoint. Cancelling a request this client already cancelled "
        "answers 200 again; an unknown id or another client's is invalid_grant, the same for both; "
        "a request that was approved, denied, expired or whose tokens were issued is invalid_grant "
        "naming its state."
    ),
    request={"application/x-www-form-urlencoded": CANCEL_REQUEST},
    responses={200: CANCEL_RESPONSE, 400: OAUTH_ERROR, 401: OAUTH_ERROR, 429: OAUTH_ERROR},
)
@method_decorator(
    sensitive_post_parameters("client_secret", "client_assertion", "auth_req_id"), name="dispatch"
)
class BackchannelCancelView(ProtocolEndpointMixin, APIView):
    """``POST /o/backchannel-authentication/cancel/`` with ``auth_req_id`` →
    ``{"auth_req_id": ..., "state": "cancelled"}``: the client withdraws its pending request.

    **An extension** (CIBA Core 1.0 has no cancel), advertised in discovery as
    ``backchannel_authentication_cancel_endpoint`` (and in ``mtls_endpoint_aliases`` when the
    server publishes them). The request becomes ``cancelled`` (reason ``client``) through
    ``services.cancel``: the client's polls for it then get ``expired_token``, no ping or push
    callback is sent for it, and ``auth_request_cancelled`` fires so the user's device drops
    the prompt.

    The client authenticates exactly as at the backchannel endpoint (``ClientAuthentication``:
    ``client_secret_basic``, ``client_secret_post``, ``client_secret_jwt``,
    ``private_key_jwt``, ``tls_client_auth``, ``self_signed_tls_client_auth``, whichever it
    registered and the profile allows) and is throttled per client at
    ``BACKCHANNEL_THROTTLE_RATE``, counted apart from the backchannel's. A DPoP proof is
    neither needed nor read: cancelling issues nothing to bind. Any authenticated client may
    call it (not only one still registered for CIBA): a client whose registration changed can
    still withdraw what it started, and can never reach another client's requests.

    Answers (``application/x-www-form-urlencoded`` bodies only, POST only, no repeated
    parameter, no NUL):

    * 200 ``{"auth_req_id", "state": "cancelled"}``: cancelled now, or already cancelled (by
      this client, or superseded by its newer request): idempotent, as RFC 7009 revocation.
    * 400 ``invalid_request``: ``auth_req_id`` missing, empty, or not of the §7.3 syntax
      this server issues (at most 255 characters of ``A-Z a-z 0-9 . _ -``); a repeated
      parameter, a NUL, another content type; 405 ``invalid_request`` for another method.
    * 400 ``invalid_grant`` "Unknown auth_req_id.": never issued, or another client's (the
      same answer for both, so ids cannot be probed across clients); also a request deleted
      after it finished (``expire_ciba_requests``).
    * 400 ``invalid_grant`` "The request is approved|denied|expired|issued; it can no longer
      be cancelled.": the user decided first, it expired, or its tokens were issued.
    * 401 ``invalid_client`` (429 with ``Retry-After`` after repeated failures), as at the
      backchannel endpoint; 429 ``access_denied`` over the client's rate.
    * 503 ``temporarily_unavailable`` when the database or the shared poll state is down
      (nothing was changed).
    """

    authentication_classes = [ClientAuthentication]
    # ClientAuthentication never lets an unauthenticated request through; no further check.
    permission_classes: list[Any] = []
    throttle_classes = [CancelRateThrottle]
    parser_classes = [FormParser]

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        params = single_valued(request.data)
        auth_req_id = params.get("auth_req_id", "")
        if not auth_req_id:
            raise InvalidRequest("auth_req_id is required.")
        if not _AUTH_REQ_ID.fullmatch(auth_req_id):
            raise InvalidRequest("auth_req_id is malformed.")
        ar = (
            AuthenticationRequest.objects.filter(auth_req_id=auth_req_id, client=request.auth)
            .select_related("client")
            .first()
        )
        if ar is None:
            raise InvalidGrant(UNKNOWN)
        state = ar.effective_state()
        if state == State.PENDING:
            try:
                services.cancel(ar, reason=AuthenticationRequest.CancelReason.CLIENT)
            except RequestNotPending as exc:  # decided, expired or cancelled meanwhile
                state = exc.state
            else:
                state = State.CANCELLED
        if state != State.CANCELLED:
            raise InvalidGrant(f"The request is {state}; it can no longer be cancelled.")
        return Response(
            {"auth_req_id": ar.auth_req_id, "state": State.CANCELLED.value},
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )
