"""Minting the tokens of an approved CIBA request: one routine for the token endpoint and push.

Both paths use DOT's own machinery (oauthlib's bearer token generator with DOT's lifetimes,
the OpenID ID-token modifier, ``save_token`` into DOT's models and signals), so a pushed token
is indistinguishable from a polled one.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauthlib.common import Request

from .constants import CIBA_GRANT_TYPE
from .sender import bindings


def mint(request: Any, token_handler: Any, modifiers: Iterable[Callable], validator: Any) -> dict[str, Any]:
    """Create, decorate (ID token) and save the tokens for ``request``; return the response dict."""
    token = token_handler.create_token(request, refresh_token=request.client.issues_refresh_tokens)
    for modifier in modifiers:
        token = modifier(token, token_handler, request)
    validator.save_token(token, request)
    return token


def mint_for_push(ar: Any) -> dict[str, Any]:
    """Mint tokens for an approved request outside any HTTP request (a Celery worker).

    Needs ``OIDC_ISS_ENDPOINT`` (system check ``ciba.E006``): there is no request to derive the
    issuer from. The caller must already have won ``services.mark_issued`` in the same
    transaction. The CIBA grant's ID-token modifier comes from the server DOT builds
    (``ciba.oauth.server.CibaServer`` registers it), so this module needs no part of it.
    """
    server = get_oauthlib_core().server
    request = Request("", http_method="POST")
    request.client = ar.client
    request.client_id = ar.client.client_id
    request.user = ar.user
    request.scopes = (ar.granted_scope or ar.scope).split()
    request.grant_type = CIBA_GRANT_TYPE
    request.ciba_request = ar
    # The key or certificate the client declared with its request (RFC 9449 §10, RFC 8705 §3).
    request.ciba_binding = bindings.of_request(ar)
    # The token endpoint's handler: DOT's generator and ACCESS_TOKEN_EXPIRE_SECONDS (oauthlib's
    # ``server.bearer`` is the userinfo endpoint's, with a one-hour default lifetime).
    handler = server.default_token_type
    return mint(request, handler, server.ciba_grant._token_modifiers, server.request_validator)


def token_hash(value: str) -> str:
    """``at_hash``-style hash (OIDC Core §3.3.2.11): left half of SHA-256, base64url.

    SHA-256 matches the RS256 and HS256 signatures DOT produces.
    """
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")
