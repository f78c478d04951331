"""The UserInfo endpoint (OIDC Core §5.3): DOT's claims, with the answers a DPoP client needs.

DOT's ``UserInfoView`` hands the request to oauthlib, which answers every refusal with a bare
``Bearer error="invalid_token"``: a DPoP client whose proof lacked the nonce this server
requires was never told ``use_dpop_nonce`` nor given a ``DPoP-Nonce``, so it could not
recover (RFC 9449 §§7.1, 8, 9). Here the token is validated once, as every protected resource
validates it (``CibaValidator.validate_bearer_token``: the binding, the proof, the nonce), and
a refusal is answered as ``ciba.authentication`` answers for a site's own APIs
(``ciba.oauth.resource``): the DPoP and Bearer challenges with the error on the scheme the
client used, and a fresh nonce whenever the client needs one. The claims are DOT's
(``get_userinfo_claims``), answered as oauthlib answers them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from oauth2_provider.views import UserInfoView

from ..errors import error_body, outage
from ..oauth.resource import challenge, next_nonce
from ..outages import is_outage
from .rendering import json_error

logger = logging.getLogger("ciba.views")

#: OIDC Core §5.3: the UserInfo endpoint serves tokens granted the ``openid`` scope.
OPENID_SCOPE = "openid"
#: RFC 6750 §3.1: the status of each error a protected resource answers.
_STATUS = {"invalid_request": 400, "invalid_token": 401, "insufficient_scope": 403}


class CibaUserInfoView(UserInfoView):
    """``GET``/``POST /o/userinfo/`` (``ciba.oauth_urls`` routes DOT's ``user-info`` here)."""

    def _create_userinfo_response(self, request: HttpRequest) -> HttpResponse:
        try:
            return self._answer(request)
        except Exception as exc:
            if not is_outage(exc):
                raise
            return json_error(outage(exc))

    def _answer(self, request: HttpRequest) -> HttpResponse:
        core = self.get_oauthlib_core()
        try:
            valid, oauthlib_request = core.verify_request(request, scopes=[OPENID_SCOPE])
        except ValueError:  # DOT: a query string with invalid hex escapes
            return _refused(
                request, {"error": "invalid_request", "error_description": "The request cannot be read."}
            )
        if oauthlib_request is None:  # DOT refuses a token in the query string (RFC 9700 §4.3.2)
            return _refused(
                request,
                {
                    "error": "invalid_request",
                    "error_description": "Send the access token in the Authorization header.",
                },
            )
        if not valid:
            error = dict(getattr(oauthlib_request, "oauth2_error", None) or {})
            if error.get("error") == "insufficient_scope":
                error["scope"] = OPENID_SCOPE  # RFC 6750 §3: the scope the resource needs
            return _refused(request, error)
        claims = core.server.request_validator.get_userinfo_claims(oauthlib_request)
        return _with_nonce(request, _claims(claims))


def _refused(request: HttpRequest, error: dict[str, Any]) -> HttpResponse:
    """RFC 6750 §3 and RFC 9449 §7.1: the status of the error, the challenges, the error body
    (without a token, RFC 6750 §3.1: a 401 and the challenges, no error code)."""
    code = error.get("error", "")
    body = error_body(code, error.get("error_description", "")) if code else {}
    response = JsonResponse(body, status=_STATUS.get(code, 401))
    response["WWW-Authenticate"] = challenge(request.META, error)
    response["Cache-Control"] = "no-store"
    return _with_nonce(request, response, error)


def _with_nonce(
    request: HttpRequest, response: HttpResponse, error: dict[str, Any] | None = None
) -> HttpResponse:
    nonce = next_nonce(request.META, error)
    if nonce:
        response["DPoP-Nonce"] = nonce
    return response


def _claims(claims: Any) -> HttpResponse:
    """The answer oauthlib's ``UserInfoEndpoint`` gives: a JSON object with ``sub``, or a JWT
    (a validator that signs its claims); anything else is the site's bug, a 500."""
    if isinstance(claims, dict) and "sub" in claims:
        return HttpResponse(json.dumps(claims), content_type="application/json")
    if isinstance(claims, str):
        return HttpResponse(claims, content_type="application/jwt")
    logger.error(
        "The userinfo claims must be a JSON object with sub, or a JWT; got %s", type(claims).__name__
    )
    return JsonResponse(error_body("server_error"), status=500)
