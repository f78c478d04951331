"""The token endpoint's view: DOT's, screened first, with every credential the CIBA grant
carries hidden from error reports. ``ciba.oauth_urls`` routes ``token/`` here, and
``revoke_token/`` to DOT's revocation view, which authenticates clients as this one does and
answers a failed authentication the same way."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from django.http import HttpRequest, HttpResponse
from oauth2_provider.views import RevokeTokenView, TokenView

from ..client_auth import poll_identity
from ..client_auth.credentials import challenge
from ..errors import describe, outage
from ..outages import is_outage
from . import prescreen, screening
from .resource import next_nonce

#: Credentials that can appear in a token request body (CIBA grant, RFC 7523, refresh, code).
SENSITIVE = (
    "auth_req_id",
    "client_secret",
    "client_assertion",
    "password",
    "refresh_token",
    "code",
    "code_verifier",
)


class CibaTokenView(TokenView):
    """DOT marks only ``password`` and ``client_secret`` sensitive; an ``auth_req_id`` or a
    client assertion in a Django error report is a usable credential, so hide them too.

    A body Django will not read is refused first, as an OAuth error (``ciba.oauth.screening``).
    CIBA grant requests are then screened (``ciba.oauth.prescreen``): repeated parameters are
    refused, and pending polls answered from the shared poll state when one is configured.
    Requests of the other grants are screened for what DOT would answer with a 500
    (``screening.refusal``; a CIBA poll costs it one look at ``grant_type``). Everything else
    is DOT's endpoint, whose error descriptions are kept within RFC 6749's character set
    (oauthlib and DOT sometimes repeat what the client sent) and whose errors are always JSON.
    A dependency that is down or hung (``ciba.outages.is_outage``) is ``503
    temporarily_unavailable`` with ``Retry-After``, as an OAuth error.
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return _with_fresh_nonce(
                request,
                screening.unreadable(request)
                or prescreen.answer(request, poll_identity)
                or screening.refusal(request, self._grant_types)
                or _challenged(request, _described(_typed(super().post(request, *args, **kwargs)))),
            )
        except Exception as exc:
            if not is_outage(exc):
                raise
            return prescreen.oauth_error(outage(exc))
        finally:
            # DOT's post() sets its own, shorter list when it runs; Django reads the list
            # only when it reports an error, after the view returned or raised.
            current = getattr(request, "sensitive_post_parameters", ())
            if current != "__ALL__":
                request.sensitive_post_parameters = sorted(set(current) | set(SENSITIVE))

    def _grant_types(self) -> Collection[str]:
        """The grant types the token endpoint's oauthlib server dispatches (DOT's and CIBA)."""
        return self.get_oauthlib_core().server.grant_types


class CibaRevokeTokenView(RevokeTokenView):
    """DOT's revocation endpoint (RFC 7009), whose client authentication is the token
    endpoint's (``CibaValidator.authenticate_client``), answering a failed one as the token
    endpoint does (``_challenged``). ``ciba.oauth_urls`` routes ``revoke_token/`` here."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return _challenged(request, super().post(request, *args, **kwargs))


def _with_fresh_nonce(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """RFC 9449 §8.2: with nonces required, every answer to a DPoP client carries the nonce for
    its next proof, so a polling client never pays a ``use_dpop_nonce`` round trip again (a
    ``use_dpop_nonce`` refusal carries its own: ``ciba.oauth.resource.next_nonce``)."""
    if not response.has_header("DPoP-Nonce"):
        nonce = next_nonce(request.META)
        if nonce:
            response["DPoP-Nonce"] = nonce
    return response


def _challenged(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """A 401 (oauthlib's ``invalid_client``, the only one these endpoints give) with the challenge
    RFC 6749 §5.2 asks for: ``Basic`` for a client that authenticated with Basic, none for one
    that used the body or its certificate (``ciba.client_auth.credentials.challenge``).
    oauthlib puts RFC 6750's ``Bearer`` challenge on every 401, a scheme no client
    authenticates with here."""
    if response.status_code == 401:
        del response["WWW-Authenticate"]
        scheme = challenge(request.META.get("HTTP_AUTHORIZATION"))
        if scheme:
            response["WWW-Authenticate"] = scheme
    return response


def _typed(response: HttpResponse) -> HttpResponse:
    """An OAuth error body labelled as JSON, and not to be stored.

    An ``OAuth2Error`` raised after oauthlib's checks (DOT's ``invalid_target`` for an RFC 8707
    ``resource`` it refuses while saving the token) reaches DOT's view with the error's own
    headers, which name no Content-Type: Django's default, ``text/html``, would stand.
    """
    if response.status_code >= 400 and not response["Content-Type"].startswith("application/json"):
        if response.content.startswith(b'{"error"'):
            response["Content-Type"] = "application/json"
            response.setdefault("Cache-Control", "no-store")
            response.setdefault("Pragma", "no-cache")
    return response


def _described(response: HttpResponse) -> HttpResponse:
    """Replace characters RFC 6749 §5.2 does not allow in an ``error_description``.

    Only a body with an escape in it can hold one (JSON escapes ``"``, ``\\``, control and
    non-ASCII characters), so the common answers (``authorization_pending``) are not parsed.
    """
    if response.status_code < 400 or b"\\" not in response.content:
        return response
    try:
        body = json.loads(response.content)
    except ValueError:
        return response
    if not isinstance(body, dict) or not isinstance(body.get("error_description"), str):
        return response
    body["error_description"] = describe(body["error_description"])
    response.content = json.dumps(body).encode()
    return response
