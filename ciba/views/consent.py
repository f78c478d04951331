"""The consent API: the user sees and decides their own CIBA requests (CIBA §8).

Paths and rules are the consent API's contract (docs/integration.md, "The authentication
device"; the OpenAPI schema): someone else's or an unknown request is 404,
a request that is no longer pending is 409 with its state and nothing changes. Every refusal
is a ``ciba.errors`` error, rendered by ``CibaErrorMixin``. A request with RFC 9396
``authorization_details`` is approved only with the hash of what the device displayed.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import mixins, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import services
from ..conf import ciba_settings
from ..errors import InvalidRequest, RequestNotPending
from ..models import AuthenticationRequest
from .openapi import OAUTH_ERROR, REQUEST_NOT_PENDING
from .parsers import PARSER_CLASSES, parse_error_for
from .permissions import IsConsentingUser
from .rendering import CibaErrorMixin
from .serializers import ApprovalSerializer, AuthenticationRequestSerializer

State = AuthenticationRequest.State


class ConsentAuthenticationMixin(CibaErrorMixin):
    authentication_classes = [OAuth2Authentication, SessionAuthentication]
    permission_classes = [IsConsentingUser]
    # DOT's token check reads the body before anyone is authenticated (see .parsers).
    parser_classes = PARSER_CLASSES

    def handle_exception(self, exc: Exception) -> Response:
        """A body Django refused to read is this API's 400, not Django's HTML page."""
        return super().handle_exception(parse_error_for(exc) or exc)


@extend_schema(tags=["consent"])
class AuthenticationRequestViewSet(
    ConsentAuthenticationMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The caller's CIBA requests. The list shows those still pending and unexpired, newest first."""

    serializer_class = AuthenticationRequestSerializer
    lookup_field = "auth_req_id"
    lookup_value_regex = r"[A-Za-z0-9._-]{1,255}"
    pagination_class = None

    def get_queryset(self) -> Any:
        own = AuthenticationRequest.objects.filter(user=self.request.user).select_related("client")
        if self.action == "list":
            own = own.filter(state=State.PENDING, expires_at__gt=timezone.now()).order_by("-created_at")
        return own

    @extend_schema(
        request=ApprovalSerializer,
        responses={
            200: AuthenticationRequestSerializer,
            400: OAUTH_ERROR,
            403: OAUTH_ERROR,
            409: REQUEST_NOT_PENDING,
            503: OAUTH_ERROR,
        },
        summary="Approve a pending request",
        description="A request with authorization_details needs displayed_details_hash (the "
        "authorization_details_digest of what was shown); authorization_details approves fewer.",
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, auth_req_id: str | None = None) -> Response:
        ar = self._pending_object()
        approval = ApprovalSerializer(data=request.data)
        approval.is_valid(raise_exception=True)
        shown = approval.validated_data.get("displayed_details_hash")
        if ar.authorization_details and not shown:
            # The device must say what it displayed: an approval of details the user never saw
            # is exactly what rich authorization requests exist to prevent.
            raise InvalidRequest(
                "This request has authorization_details: show authorization_details_display and "
                "send its authorization_details_digest as displayed_details_hash."
            )
        achieved = services.Approval.of(
            ciba_settings.APPROVAL_POLICY_CLASS().authorize(
                http_request=request, auth_request=ar, user=request.user
            )
        )
        services.approve(
            ar,
            user=request.user,
            scopes=approval.validated_data.get("scopes"),
            acr=achieved.acr,
            amr=achieved.amr,
            authorization_details=approval.validated_data.get("authorization_details"),
            displayed_details_hash=shown,
        )
        return Response(self.get_serializer(ar).data)

    @extend_schema(
        request=None,
        responses={200: AuthenticationRequestSerializer, 409: REQUEST_NOT_PENDING, 503: OAUTH_ERROR},
        summary="Deny",
    )
    @action(detail=True, methods=["post"])
    def deny(self, request: Request, auth_req_id: str | None = None) -> Response:
        ar = self._pending_object()
        services.deny(ar, user=request.user)
        return Response(self.get_serializer(ar).data)

    def _pending_object(self) -> AuthenticationRequest:
        ar = self.get_object()
        state = ar.effective_state()
        if state != State.PENDING:
            raise RequestNotPending(state)
        return ar
