"""The ``DPoP`` authorization scheme on protected resources (RFC 9449 §7.1).

oauthlib's resource endpoint picks a token-type handler by the ``Authorization`` scheme and
only knows ``Bearer``; a DPoP-bound token arrives as ``Authorization: DPoP <token>``. This
handler extracts it and marks the request, and the validator's ``validate_bearer_token``
decides, with the token's binding in hand, whether the presentation is good.
"""

from __future__ import annotations

from typing import Any

from oauthlib.oauth2.rfc6749.tokens import BearerToken

from ..constants import DPOP_TOKEN_TYPE


class DPoPTokenType(BearerToken):
    """Validates ``Authorization: DPoP <token>`` through the same validator as Bearer, and
    Bearer as oauthlib does: oauthlib's userinfo endpoint calls one handler for every scheme."""

    def validate_request(self, request: Any) -> bool:
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != DPOP_TOKEN_TYPE.lower():
            return super().validate_request(request)
        if not token.strip() or " " in token.strip():
            return False
        request.ciba_token_scheme = "dpop"
        return self.request_validator.validate_bearer_token(token.strip(), request.scopes, request)

    def estimate_type(self, request: Any) -> int:
        scheme = (request.headers.get("Authorization") or "").split(" ")[0]
        return 9 if scheme.lower() == DPOP_TOKEN_TYPE.lower() else 0
