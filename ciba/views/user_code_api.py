"""The user's own user code (CIBA §7.1.2): whether one is set, setting or changing it, removing it.

The code itself is never returned: it is stored hashed. Authenticated like the consent API
(a session, or a token carrying the consent scope).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import user_codes
from ..errors import InvalidRequest
from ..models import UserCode
from .consent import ConsentAuthenticationMixin
from .openapi import OAUTH_ERROR

STATE = inline_serializer(
    "UserCodeState",
    {
        "is_set": serializers.BooleanField(),
        "updated_at": serializers.DateTimeField(allow_null=True),
        "locked_until": serializers.DateTimeField(allow_null=True),
    },
)


class UserCodeInput(serializers.Serializer):
    # Length and characters are checked by ciba.user_codes, which says why in the error.
    user_code = serializers.CharField(trim_whitespace=False)


@extend_schema(tags=["devices"])
class UserCodeView(ConsentAuthenticationMixin, APIView):
    """``GET``/``PUT``/``DELETE /o/ciba/user-code/``: the caller's user code."""

    @extend_schema(responses={200: STATE}, summary="Whether the caller has a user code")
    def get(self, request: Request) -> Response:
        return Response(_state(UserCode.objects.filter(user=request.user).first()))

    @extend_schema(
        request=UserCodeInput, responses={200: STATE, 400: OAUTH_ERROR}, summary="Set or change it"
    )
    def put(self, request: Request) -> Response:
        data = UserCodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            row = user_codes.set_user_code(request.user, data.validated_data["user_code"])
        except user_codes.UnacceptableUserCode as exc:
            raise InvalidRequest(str(exc)) from None
        return Response(_state(row))

    @extend_schema(responses={204: None}, summary="Remove it")
    def delete(self, request: Request) -> Response:
        user_codes.clear_user_code(request.user)
        return Response(status=204)


def _state(row: Any) -> dict[str, Any]:
    """``locked_until``: until when some client that sent too many wrong codes for this user
    has its codes refused (others are not affected); the user learns someone is guessing."""
    return {
        "is_set": row is not None,
        "updated_at": row.updated_at if row else None,
        "locked_until": user_codes.locked_until(row.user_id) if row else None,
    }
