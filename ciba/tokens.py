"""Minting the tokens of an approved CIBA request: one routine for the token endpoint and push.

Both paths use DOT's own machinery (oauthlib's bearer token generator with DOT's lifetimes,
the OpenID ID-token modifier, ``save_token`` into DOT's models and signals), so a pushed token
is indistinguishable from a polled one.

What the user approved travels with the tokens (RFC 9396 §7, §9): the approved
``authorization_details`` are answered with them (poll, ping and push alike, since all three mint
here) and stored beside the access token (``AccessTokenGrant``, read by introspection) and the
refresh token (``OriginalAuthentication``, so a refreshed token carries the same). The resources
the client named (RFC 8707) restrict the tokens through DOT's own ``resource`` column.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from django.db import connections, router
from oauth2_provider.models import get_access_token_model, get_id_token_model, get_refresh_token_model
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauthlib.common import Request

from .constants import CIBA_GRANT_TYPE
from .errors import InvalidTarget
from .models import AccessTokenGrant, OriginalAuthentication
from .sender import bindings
from .statements import chain

#: The token response member (RFC 9396 §7) and introspection member (RFC 9396 §9.1).
AUTHORIZATION_DETAILS = "authorization_details"


def mint(request: Any, token_handler: Any, modifiers: Iterable[Callable], validator: Any) -> dict[str, Any]:
    """Create, decorate (ID token) and save the tokens for ``request``; return the response dict."""
    token = token_handler.create_token(request, refresh_token=request.client.issues_refresh_tokens)
    for modifier in modifiers:
        token = modifier(token, token_handler, request)
    validator.save_token(token, request)
    ar = getattr(request, "ciba_request", None)
    details = approved_details(ar) if ar is not None else []
    if details:
        if chain.collecting() is None:  # a chain's rows carry them already (``CibaValidator``)
            _record(_saved_access_token(token), details)
        token[AUTHORIZATION_DETAILS] = details
    return token


def approved_details(ar: Any) -> list[dict[str, Any]]:
    """What the user approved of ``ar``'s ``authorization_details``: the set the device sent
    back (the requested one or, where a type allows it, a narrower one), else the requested set,
    which approving without a narrower set approves whole. Empty for a request without details."""
    if ar.approved_authorization_details is not None:
        return list(ar.approved_authorization_details)
    return list(ar.authorization_details or [])


def resources_for(ar: Any, asked: list[str]) -> list[str]:
    """The resources (RFC 8707) the tokens of ``ar`` are restricted to, given the ``resource``
    values of the token request: those named with the authentication request, or a subset of
    them the token request narrows to (RFC 8707 §2.2). A resource the request did not name is
    ``invalid_target``: the user approved tokens for the resources shown to them, no others.
    A request that named none leaves the token request free to restrict, as DOT does for
    grants without resources."""
    requested = list(ar.resource or [])
    if not asked:
        return requested
    if requested:
        outside = [uri for uri in asked if uri not in requested]
        if outside:
            raise InvalidTarget(f"The resource {outside[0]!r} was not named in the authentication request.")
    return list(dict.fromkeys(asked))


def carry_on_refresh(token: dict[str, Any], request: Any) -> None:
    """On refresh, give the new access token (and the refresh token it comes with) the details
    the original approval granted, and answer them (RFC 9396 §7: a refreshed token has the same
    authorization). Called after DOT saved the tokens of a ``refresh_token`` grant."""
    access = _saved_access_token(token)
    if access is None:
        return
    existing = AccessTokenGrant.objects.filter(access_token=access).first()
    # A refresh token reused, or DOT's grace period answering again, finds the details stored
    # already. A grant without them may be one this very refresh just wrote for its userinfo
    # claims (``CibaValidator._create_access_token``): the approval's are then still to come.
    details = existing.authorization_details if existing is not None else None
    if not details:
        source_id = getattr(access, "source_refresh_token_id", None)
        original = (
            OriginalAuthentication.objects.filter(refresh_token_id=source_id).first() if source_id else None
        )
        details = original.authorization_details if original is not None else None
    if details:
        _record(access, details)
        token[AUTHORIZATION_DETAILS] = details


def granted_details(access_token: Any) -> list[dict[str, Any]] | None:
    """The approved details stored for ``access_token``, or ``None`` for a token without any."""
    grant = AccessTokenGrant.objects.filter(access_token=access_token).only("authorization_details").first()
    return grant.authorization_details if grant is not None and grant.authorization_details else None


def _saved_access_token(token: dict[str, Any]) -> Any:
    value = token.get("access_token")
    if not value:
        return None
    checksum = hashlib.sha256(value.encode("utf-8")).hexdigest()
    return get_access_token_model().objects.filter(token_checksum=checksum).first()


def _record(access_token: Any, details: list[dict[str, Any]]) -> None:
    """Store ``details`` beside ``access_token`` and the refresh token issued with it."""
    if access_token is None:
        return
    AccessTokenGrant.objects.update_or_create(
        access_token=access_token, defaults={"authorization_details": details}
    )
    refresh = get_refresh_token_model().objects.filter(access_token=access_token).first()
    if refresh is not None:
        OriginalAuthentication.objects.filter(refresh_token=refresh).update(authorization_details=details)


def mint_for_push(ar: Any, rows: chain.Chain | None = None) -> dict[str, Any]:
    """Mint tokens for an approved request outside any HTTP request (a Celery worker).

    Needs ``OIDC_ISS_ENDPOINT`` (system check ``ciba.E006``): there is no request to derive the
    issuer from. The caller must already have won ``services.mark_issued`` in the same
    transaction, or, with ``rows``, collects the token rows there instead of saving them, and
    writes them with the request's issue (``ciba.callbacks.outbox``). The CIBA grant's ID-token
    modifier comes from the server DOT builds (``ciba.oauth.server.CibaServer`` registers it),
    so this module needs no part of it.
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
    # RFC 8707: the resources named with the request; no token request narrows them in push.
    request.resource = resources_for(ar, [])
    # The token endpoint's handler: DOT's generator and ACCESS_TOKEN_EXPIRE_SECONDS (oauthlib's
    # ``server.bearer`` is the userinfo endpoint's, with a one-hour default lifetime).
    handler = server.default_token_type
    with _one_transaction(), rows.collecting() if rows is not None else nullcontext():
        return mint(request, handler, server.ciba_grant._token_modifiers, server.request_validator)


@contextmanager
def _one_transaction() -> Iterator[None]:
    """Let the atomic blocks nested in minting (DOT's ``save_bearer_token`` and
    ``finalize_id_token``, Django's ``update_or_create``) join the caller's transaction without
    a savepoint each: a savepoint and its release are two round trips, and minting for push is
    all or nothing anyway (the caller's transaction rolls back whole on any error, and a
    failure inside a nested block marks it for rollback, as ``atomic(savepoint=False)`` does).

    Django has no switch for blocks it does not own, so this shadows ``_savepoint_allowed`` on
    the connection object, which is this thread's own, for the duration. Nothing in minting
    catches a database error to carry on (a savepoint would be needed for that): the rows it
    writes are new, keyed by values created in this transaction."""
    token_models = (get_access_token_model(), get_refresh_token_model(), get_id_token_model())
    patched = []
    for alias in {router.db_for_write(model) for model in token_models}:
        connection = connections[alias]
        if connection.in_atomic_block and "_savepoint_allowed" not in vars(connection):
            connection._savepoint_allowed = _never
            patched.append(connection)
    try:
        yield
    finally:
        for connection in patched:
            del connection._savepoint_allowed


def _never() -> bool:
    return False


def token_hash(value: str) -> str:
    """``at_hash``-style hash (OIDC Core §3.3.2.11): left half of SHA-256, base64url.

    SHA-256 matches the RS256 and HS256 signatures DOT produces.
    """
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")
