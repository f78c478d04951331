"""The consent API: the user sees and decides their own CIBA requests (CIBA §8).

Paths and rules are fixed in shared/design.md: someone else's or an unknown request is 404,
a request that is no longer pending is 409 with its state and nothing changes.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import services
from ..backends.policy import StepUpRequired
from ..conf import ciba_settings
from ..models import AuthenticationRequest
from ..permissions import IsConsentingUser
from ..poll_state import PollStateUnavailable
from ..serializers import ApprovalSerializer, AuthenticationRequestSerializer

State = AuthenticationRequest.State

CONFLICT = inline_serializer(
    "RequestNotPending",
    {
        "error": serializers.CharField(),
        "error_description": serializers.CharField(),
        "state": serializers.CharField(),
    },
)
STEP_UP = inline_serializer(
    "StepUpRequired", {"error": serializers.CharField(), "error_description": serializers.CharField()}
)


class ConsentAuthenticationMixin:
    authentication_classes = [OAuth2Authentication, SessionAuthentication]
    permission_classes = [IsConsentingUser]


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
        responses={200: AuthenticationRequestSerializer, 403: STEP_UP, 409: CONFLICT},
        summary="Approve a pending request",
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, auth_req_id: str | None = None) -> Response:
        ar = self.get_object()
        if (conflict := self._not_pending(ar)) is not None:
            return conflict
        approval = ApprovalSerializer(data=request.data)
        approval.is_valid(raise_exception=True)
        try:
            acr = ciba_settings.APPROVAL_POLICY_CLASS().authorize(
                http_request=request, auth_request=ar, user=request.user
            )
            services.approve(ar, user=request.user, scopes=approval.validated_data.get("scopes"), acr=acr)
        except StepUpRequired as exc:
            return Response({"error": "step_up_required", "error_description": exc.detail}, status=403)
        except services.InvalidApproval as exc:
            return Response({"scopes": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        except services.NotPending as exc:
            return self._conflict(exc.state)
        except PollStateUnavailable:
            return self._unavailable()
        return Response(self.get_serializer(ar).data)

    @extend_schema(
        request=None, responses={200: AuthenticationRequestSerializer, 409: CONFLICT}, summary="Deny"
    )
    @action(detail=True, methods=["post"])
    def deny(self, request: Request, auth_req_id: str | None = None) -> Response:
        ar = self.get_object()
        if (conflict := self._not_pending(ar)) is not None:
            return conflict
        try:
            services.deny(ar, user=request.user)
        except services.NotPending as exc:
            return self._conflict(exc.state)
        except PollStateUnavailable:
            return self._unavailable()
        return Response(self.get_serializer(ar).data)

    def _not_pending(self, ar: AuthenticationRequest) -> Response | None:
        state = ar.effective_state()
        return None if state == State.PENDING else self._conflict(state)

    @staticmethod
    def _unavailable() -> Response:
        # Nothing was decided (the transaction rolled back); the device may simply retry.
        return Response(
            {"error": "temporarily_unavailable", "error_description": "Try again in a moment."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )

    @staticmethod
    def _conflict(state: str) -> Response:
        return Response(
            {"error": "request_not_pending", "error_description": f"The request is {state}.", "state": state},
            status=status.HTTP_409_CONFLICT,
        )
