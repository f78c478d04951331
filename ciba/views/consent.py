"""The consent API: the user sees and decides their own CIBA requests (CIBA §8).

Paths and rules are the consent API's contract (docs/integration.md, "The authentication
device"; the OpenAPI schema): someone else's or an unknown request is 404,
a request that is no longer pending is 409 with its state and nothing changes. Every refusal
is a ``ciba.errors`` error, rendered by ``CibaErrorMixin``. A request with RFC 9396
``authorization_details`` is approved only with the hash of what the device displayed.

An approval says how the user authenticated it (``authentication``: a passkey assertion over
this transaction, whose options ``authentication-options`` gives, or the password re-entered;
absent, a tap in the signed-in session). The approval policy (``APPROVAL_POLICY_CLASS``)
verifies it and decides whether it is enough (docs/authentication.md); a refusal leaves the
request pending.

The device app's bearer-token requests take DRF's first steps without its generic machinery
(``consent_initial``) and read the request with a statement compiled once (``get_object``):
issue 29, the approve request precedes every ping and push callback.
"""

from __future__ import annotations

from typing import Any

from django.db.models.query import MAX_GET_RESULTS
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import mixins, serializers, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import passkeys, services
from ..conf import ciba_settings
from ..errors import InvalidRequest, RequestNotPending
from ..models import AuthenticationRequest
from ..statements.select import Along, CompiledSelect, along
from . import consent_initial
from .openapi import OAUTH_ERROR, REQUEST_NOT_PENDING, STEP_UP_REQUIRED
from .parsers import PARSER_CLASSES, parse_error_for
from .permissions import IsConsentingUser
from .rendering import CibaErrorMixin
from .serializers import ApprovalSerializer, AuthenticationRequestSerializer, TransactionSerializer

State = AuthenticationRequest.State

#: What ``authentication-options`` answers: the browser's ``navigator.credentials.get`` options.
AUTHENTICATION_OPTIONS = inline_serializer(
    "PasskeyApprovalOptions",
    {
        "publicKey": serializers.JSONField(
            help_text="PublicKeyCredentialRequestOptionsJSON (WebAuthn Level 3): pass it to "
            "PublicKeyCredential.parseRequestOptionsFromJSON, then navigator.credentials.get."
        ),
        "transaction_digest": serializers.CharField(
            help_text="SHA-256 (hex) of the transaction the challenge is bound to: the request, its "
            "binding message, and the scopes and authorization_details approved."
        ),
    },
)


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

    #: The request row read with the caller's authentication (``initial``), for ``get_object``.
    _ahead: Along | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """DRF's first steps, a bearer-token request's without DRF's generic machinery
        (``consent_initial``); any other request's as DRF takes them. A request about one CIBA
        request has its row read in the bearer token's own statement (``statements.along``):
        one round trip fewer before an approval commits, so before its callback leaves
        (issue 29). ``get_object`` keeps the row only if it is the caller's."""
        lookup = kwargs.get(self.lookup_url_kwarg or self.lookup_field)
        if lookup is None or not self._compiled_lookup():
            self._first_steps(request, *args, **kwargs)
            return
        with along(_REQUEST_BY_ID, lookup) as self._ahead:
            self._first_steps(request, *args, **kwargs)

    def _first_steps(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if not consent_initial.initial(self, request, *args, **kwargs):
            super().initial(request, *args, **kwargs)

    def _compiled_lookup(self) -> bool:
        """Whether ``get_object`` is this class's own query (no subclass changed what it reads)."""
        own = type(self).get_queryset is AuthenticationRequestViewSet.get_queryset
        return own and not self.filter_backends

    def get_queryset(self) -> Any:
        own = AuthenticationRequest.objects.filter(user=self.request.user).select_related("client")
        if self.action == "list":
            own = own.filter(state=State.PENDING, expires_at__gt=timezone.now()).order_by("-created_at")
        return own

    def get_object(self) -> AuthenticationRequest:
        """DRF's ``get_object`` (the caller's own request by ``auth_req_id``), its ``SELECT``
        compiled once (``_OWN_REQUEST``), or the row read with the caller's authentication
        (``initial``) if it is the caller's; anything but the one row found (404) is DRF's."""
        if not self._compiled_lookup():
            return super().get_object()
        ahead, self._ahead = self._ahead, None  # used once: a second call reads the row again
        user_pk = self.request.user.pk
        if ahead is not None and ahead.rows is not None:
            found = [row for row in ahead.rows if user_pk is not None and row.user_id == user_pk]
        else:
            found = _OWN_REQUEST.fetch(user_pk, self.kwargs[self.lookup_url_kwarg or self.lookup_field])
        if len(found) != 1:
            return super().get_object()
        self.check_object_permissions(self.request, found[0])
        return found[0]

    @extend_schema(
        request=ApprovalSerializer,
        responses={
            200: AuthenticationRequestSerializer,
            400: OAUTH_ERROR,
            403: STEP_UP_REQUIRED,
            409: REQUEST_NOT_PENDING,
            503: OAUTH_ERROR,
        },
        summary="Approve a pending request",
        description="A request with authorization_details needs displayed_details_hash (the "
        "authorization_details_digest of what was shown); authorization_details approves fewer. "
        "The request's authentication member says what approving it needs: with no "
        "authentication object, the approval is a tap in the signed-in session; a stronger "
        "requirement answers 403 step_up_required (its level and methods say what to do) and the "
        "request stays pending. authentication carries a passkey assertion over the options of "
        "authentication-options (sent with the same scopes, authorization_details and "
        "displayed_details_hash), or the password re-entered; one that fails verification is 400 "
        "invalid_authentication and the request stays pending.",
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, auth_req_id: str | None = None) -> Response:
        ar = self._pending_object()
        approval = ApprovalSerializer(data=request.data)
        approval.is_valid(raise_exception=True)
        shown = _displayed_hash(ar, approval.validated_data)
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
            auth_time=achieved.auth_time,
            evidence=achieved.evidence,
        )
        return Response(self.get_serializer(ar).data)

    @extend_schema(
        request=TransactionSerializer,
        responses={200: AUTHENTICATION_OPTIONS, 400: OAUTH_ERROR, 409: REQUEST_NOT_PENDING, 503: OAUTH_ERROR},
        summary="Passkey options to approve a pending request",
        description="The WebAuthn options for approving this request with a passkey. The challenge "
        "is bound to the request, its binding message and what the approval will approve: send "
        "the same scopes, authorization_details and displayed_details_hash here and in approve. "
        "400 invalid_authentication when the user has no passkey to use.",
    )
    @action(detail=True, methods=["post"], url_path="authentication-options")
    def authentication_options(self, request: Request, auth_req_id: str | None = None) -> Response:
        ar = self._pending_object()
        transaction = TransactionSerializer(data=request.data)
        transaction.is_valid(raise_exception=True)
        shown = _displayed_hash(ar, transaction.validated_data)
        return Response(
            passkeys.approval_options(
                request,
                ar,
                request.user,
                scopes=transaction.validated_data.get("scopes"),
                authorization_details=transaction.validated_data.get("authorization_details"),
                displayed_details_hash=shown,
            )
        )

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

    @extend_schema(
        request=inline_serializer(
            "ReportRequest",
            {"block": serializers.BooleanField(required=False, default=False)},
        ),
        responses={
            200: AuthenticationRequestSerializer,
            400: OAUTH_ERROR,
            409: REQUEST_NOT_PENDING,
            503: OAUTH_ERROR,
        },
        summary="Report: I did not ask for this",
        description="Deny the request as deny does and record that the user did not ask for it; "
        "with block: true, the client that sent it may no longer send this user requests (its "
        "requests are refused with access_denied before anything reaches the user). The site's "
        "auth_request_reported signal fires after commit.",
    )
    @action(detail=True, methods=["post"])
    def report(self, request: Request, auth_req_id: str | None = None) -> Response:
        ar = self._pending_object()
        body = ReportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.report(ar, user=request.user, block=body.validated_data["block"])
        return Response(self.get_serializer(ar).data)

    def _pending_object(self) -> AuthenticationRequest:
        ar = self.get_object()
        state = ar.effective_state()
        if state != State.PENDING:
            raise RequestNotPending(state)
        return ar


#: ``get_object``'s query: ``get_queryset()`` of a detail action and ``QuerySet.get`` of
#: ``auth_req_id`` (its ``order_by()`` and its limit of ``MAX_GET_RESULTS`` rows).
_OWN_REQUEST = CompiledSelect(
    AuthenticationRequest,
    lambda requests, user_id, auth_req_id: (
        requests.filter(user=user_id)
        .select_related("client")
        .filter(auth_req_id=auth_req_id)
        .order_by()[:MAX_GET_RESULTS]
    ),
)

#: ``_OWN_REQUEST`` before the caller is known (``initial``): the row by ``auth_req_id``,
#: which ``get_object`` keeps only when its user is the caller.
_REQUEST_BY_ID = CompiledSelect(
    AuthenticationRequest,
    lambda requests, auth_req_id: (
        requests.select_related("client").filter(auth_req_id=auth_req_id).order_by()[:MAX_GET_RESULTS]
    ),
)


def _displayed_hash(ar: AuthenticationRequest, validated: dict[str, Any]) -> str | None:
    """The ``displayed_details_hash`` of an approval (or of its passkey options), required for a
    request with ``authorization_details``: an approval of details the user never saw is exactly
    what rich authorization requests exist to prevent."""
    shown = validated.get("displayed_details_hash")
    if ar.authorization_details and not shown:
        raise InvalidRequest(
            "This request has authorization_details: show authorization_details_display and "
            "send its authorization_details_digest as displayed_details_hash."
        )
    return shown


class ReportSerializer(serializers.Serializer):
    """The body of ``report``: ``{"block": true}`` also blocks the client; a JSON boolean only."""

    block = serializers.BooleanField(required=False, default=False)

    def validate_block(self, value: Any) -> bool:
        if not isinstance(self.initial_data.get("block", False), bool):
            raise serializers.ValidationError("block must be true or false.")
        return value
