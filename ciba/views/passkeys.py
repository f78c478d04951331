"""The user's passkeys: enroll one, list, rename and remove them (docs/authentication.md).

Authenticated like the rest of the consent API (a session, or a token carrying the consent
scope; CSRF for a session), and limited to the caller's own passkeys: someone else's is 404,
as an unknown one. Enrollment is WebAuthn registration in two steps: the options for
``navigator.credentials.create`` (``registration-options``), then the credential it made,
verified by ``ciba.passkeys`` (user verification required). A passkey is never shown with its
key, its credential ID or the opaque user handle.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import passkeys
from ..models import Passkey
from .consent import ConsentAuthenticationMixin
from .openapi import OAUTH_ERROR
from .serializers import PasskeySerializer

PASSKEY_ID = OpenApiParameter("passkey_id", OpenApiTypes.UUID, OpenApiParameter.PATH)

#: What ``registration-options`` answers: the browser's ``navigator.credentials.create`` options.
REGISTRATION_OPTIONS = inline_serializer(
    "PasskeyRegistrationOptions",
    {
        "publicKey": serializers.JSONField(
            help_text="PublicKeyCredentialCreationOptionsJSON (WebAuthn Level 3): pass it to "
            "PublicKeyCredential.parseCreationOptionsFromJSON, then navigator.credentials.create."
        )
    },
)


class EnrollmentSerializer(serializers.Serializer):
    credential = serializers.JSONField(
        help_text="The new credential, as PublicKeyCredential.toJSON() gives it "
        "(RegistrationResponseJSON), made with the options of registration-options."
    )
    name = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="What the user calls it (e.g. the phone's name), to tell their passkeys apart.",
    )

    def validate_credential(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError(
                "The credential must be the object PublicKeyCredential.toJSON() gives."
            )
        return value


class RenameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, allow_blank=True)


@extend_schema(tags=["consent"])
@extend_schema_view(
    partial_update=extend_schema(
        parameters=[PASSKEY_ID],
        request=RenameSerializer,
        responses={200: PasskeySerializer, 400: OAUTH_ERROR},
        summary="Rename a passkey",
    ),
    destroy=extend_schema(parameters=[PASSKEY_ID], responses={204: None}, summary="Remove a passkey"),
    list=extend_schema(summary="The caller's passkeys"),
)
class PasskeyViewSet(
    ConsentAuthenticationMixin,
    mixins.ListModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The caller's passkeys, oldest first; ``disabled`` ones (a suspected clone) no longer
    approve anything and can only be removed."""

    serializer_class = PasskeySerializer
    lookup_field = "pk"
    lookup_url_kwarg = "passkey_id"
    lookup_value_regex = r"[0-9a-fA-F-]{32,36}"
    pagination_class = None
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        return Passkey.objects.filter(user=self.request.user).order_by("created_at")

    @extend_schema(
        request=EnrollmentSerializer,
        responses={201: PasskeySerializer, 400: OAUTH_ERROR},
        summary="Enroll a passkey",
        description="Verifies the credential made with the options of registration-options (user "
        "verification required) and keeps it. A credential that fails verification, or one more "
        "than PASSKEYS_PER_USER, is 400 invalid_authentication.",
    )
    def create(self, request: Request) -> Response:
        enrollment = EnrollmentSerializer(data=request.data)
        enrollment.is_valid(raise_exception=True)
        passkey = passkeys.enroll(
            request,
            request.user,
            enrollment.validated_data["credential"],
            name=enrollment.validated_data.get("name", ""),
        )
        return Response(self.get_serializer(passkey).data, status=201)

    def partial_update(self, request: Request, passkey_id: str | None = None) -> Response:
        passkey = self.get_object()
        rename = RenameSerializer(data=request.data)
        rename.is_valid(raise_exception=True)
        passkey.name = rename.validated_data["name"]
        passkey.save(update_fields=["name"])
        return Response(self.get_serializer(passkey).data)

    def perform_destroy(self, instance: Passkey) -> None:
        passkeys.remove(self.request.user, instance.pk)

    @extend_schema(
        request=inline_serializer("PasskeyRegistrationOptionsRequest", {}),
        responses={200: REGISTRATION_OPTIONS, 400: OAUTH_ERROR},
        summary="Options to enroll a passkey",
        description="WebAuthn creation options for the caller: a discoverable credential with user "
        "verification, excluding the passkeys already enrolled. The challenge is good for "
        "WEBAUTHN_CHALLENGE_SECONDS and for one enrollment.",
    )
    @action(detail=False, methods=["post"], url_path="registration-options")
    def registration_options(self, request: Request) -> Response:
        return Response(passkeys.registration_options(request, request.user))
