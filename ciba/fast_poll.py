"""Answering pending polls at the token endpoint before DOT and oauthlib see them.

A pending poll is the token endpoint's most frequent request by far. When the poll state
lives in Redis (``ciba.poll_state.RedisPollState``), a well-formed CIBA grant request from a
``client_secret_basic``/``client_secret_post`` client is answered here from one Lua call —
no database, no oauthlib request parsing. Anything this module is not certain about returns
``None`` and takes the full path, which owns every other answer (and every error message).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from .client_auth import SECRET_METHODS, read_credentials
from .constants import CIBA_GRANT_TYPE
from .errors import InvalidClient
from .oauth.errors import AuthorizationPendingError, SlowDownError
from .oauth.validators import AUTH_REQ_ID_SYNTAX
from .poll_state import PENDING, DatabasePollState, now, poll_state

FORM = "application/x-www-form-urlencoded"
_ERRORS = {PENDING: AuthorizationPendingError, "slow_down": SlowDownError}


def answer(request: HttpRequest) -> HttpResponse | None:
    """The response to a pending poll, or ``None`` when the full token endpoint must answer."""
    store = poll_state()
    if type(store) is DatabasePollState or request.content_type != FORM:
        return None
    params = request.POST
    if params.get("grant_type") != CIBA_GRANT_TYPE or any(len(values) != 1 for _, values in params.lists()):
        return None  # other grants, and duplicate parameters (invalid_request, said in full)
    auth_req_id = params.get("auth_req_id", "")
    if not AUTH_REQ_ID_SYNTAX.match(auth_req_id):
        return None
    try:
        credentials = read_credentials(request.META.get("HTTP_AUTHORIZATION", ""), params)
    except InvalidClient:
        return None
    if credentials is None or credentials.method not in SECRET_METHODS or not credentials.client_id:
        return None
    code = store.poll(credentials, auth_req_id, now())
    if code is None:
        return None
    return oauth_error(_ERRORS[code]())


def oauth_error(error: OAuth2Error) -> HttpResponse:
    """The same bytes and headers oauthlib's answer has on the full path."""
    response = HttpResponse(error.json, status=error.status_code, content_type="application/json")
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response
