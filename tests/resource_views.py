"""A site's own API, protected the way docs/fapi.md tells sites to protect theirs."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ciba.authentication import SenderConstrainedAuthentication


class AccountsView(APIView):
    authentication_classes = [SenderConstrainedAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response({"user": request.user.get_username()})
