"""RFC 7662 introspection that tells a resource server what a token is bound to.

DOT's view answers ``active``, ``scope``, ``exp``, ``client_id`` and ``username``; a resource
server behind it must also learn the token's confirmation (RFC 8705 §3.2: ``cnf`` with
``x5t#S256``; RFC 9449 §6.2: ``cnf`` with ``jkt``) to enforce the binding itself, and the
token type, so a DPoP-bound token is not accepted as a bearer one.
"""

from __future__ import annotations

import hashlib
import json

from django.http import HttpResponse, JsonResponse
from oauth2_provider.views import IntrospectTokenView

from ..constants import DPOP_TOKEN_TYPE
from ..models import TokenBinding


class CibaIntrospectTokenView(IntrospectTokenView):
    """DOT's introspection plus ``cnf`` and ``token_type`` for bound tokens."""

    @staticmethod
    def get_token_response(token_value: str | None = None) -> HttpResponse:
        response = IntrospectTokenView.get_token_response(token_value)
        if response.status_code != 200 or token_value is None:
            return response
        data = json.loads(response.content)
        if not data.get("active"):
            return response
        checksum = hashlib.sha256(token_value.encode("utf-8")).hexdigest()
        binding = TokenBinding.objects.filter(access_token__token_checksum=checksum).first()
        data["token_type"] = DPOP_TOKEN_TYPE if binding is not None and binding.jkt else "Bearer"
        if binding is not None:
            data["cnf"] = binding.cnf
        return JsonResponse(data)
