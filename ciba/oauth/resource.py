"""The ``DPoP`` authorization scheme on protected resources (RFC 9449 §7), and what every answer
to a DPoP client says back.

oauthlib's resource endpoint picks a token-type handler by the ``Authorization`` scheme and
only knows ``Bearer``; a DPoP-bound token arrives as ``Authorization: DPoP <token>``. This
handler extracts it and marks the request, and the validator's ``validate_bearer_token``
decides, with the token's binding in hand, whether the presentation is good.

What a refused client is told is decided here too, once, for every protected resource (the
userinfo endpoint, ``ciba.views.userinfo``; a site's DRF APIs, ``ciba.authentication``):
``challenge`` (RFC 9449 §7.1, RFC 6750 §3) and ``next_nonce`` (RFC 9449 §8), which the token
endpoint shares, so a client told to use a nonce is always given one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oauthlib.oauth2.rfc6749.tokens import BearerToken

from ..conf import ciba_settings
from ..constants import DPOP_TOKEN_TYPE
from ..errors import describe
from ..profile import dpop_algs
from ..sender.dpop import USE_DPOP_NONCE, new_nonce


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


def used_dpop(meta: Mapping[str, Any]) -> bool:
    """Whether a request (Django's ``request.META``) presented its token in the DPoP scheme."""
    scheme = (meta.get("HTTP_AUTHORIZATION") or "").split(" ", 1)[0]
    return scheme.lower() == DPOP_TOKEN_TYPE.lower()


def challenge(meta: Mapping[str, Any], error: Mapping[str, Any] | None = None, *, realm: str = "ciba") -> str:
    """The ``WWW-Authenticate`` value of a protected resource's refusal: the ``DPoP`` challenge
    with the accepted algorithms (RFC 9449 §7.1) and the ``Bearer`` one (RFC 6750 §3), the
    ``error`` (``error``, ``error_description``, ``scope``...) on the scheme the request used,
    so a DPoP client reads ``use_dpop_nonce`` or ``invalid_dpop_proof`` where it looks for
    them. A request without a token gets both challenges and no error (RFC 6750 §3.1); the
    ``Bearer`` one always has its ``realm`` (RFC 6750 §3: at least one parameter)."""
    error = {name: describe(str(value)) for name, value in (error or {}).items()}
    dpop = used_dpop(meta)
    dpop_params = {"algs": " ".join(dpop_algs()), **(error if dpop else {})}
    bearer_params = {"realm": realm, **({} if dpop else error)}
    return f"DPoP {_params(dpop_params)}, Bearer {_params(bearer_params)}"


def next_nonce(meta: Mapping[str, Any], error: Mapping[str, Any] | None = None) -> str | None:
    """The ``DPoP-Nonce`` an answer carries, or ``None`` (RFC 9449 §8): a fresh nonce for a
    client told ``use_dpop_nonce``, which cannot retry without one; and, while nonces are
    required, on every answer to a DPoP request, so the client's next proof carries one not
    about to expire and it never pays a ``use_dpop_nonce`` round trip again (§8.2)."""
    if (error or {}).get("error") == USE_DPOP_NONCE:
        return new_nonce()
    if ciba_settings.DPOP_NONCE_REQUIRED and (meta.get("HTTP_DPOP") is not None or used_dpop(meta)):
        return new_nonce()
    return None


def _params(params: Mapping[str, str]) -> str:
    # Values are descriptions or fixed words: never a ``"`` or ``\`` to escape (``describe``).
    # Joined as DOT joins its own challenge parameters (RFC 7235 allows no space after a comma).
    return ",".join(f'{name}="{value}"' for name, value in params.items())
