"""CIBA grant requests at the token endpoint, screened before DOT and oauthlib see them.

Two answers are given here. A repeated parameter is refused (RFC 6749 §3.2): DOT builds
oauthlib's request from ``request.POST`` last-value-wins, so oauthlib would never see it.
And a pending poll, the token endpoint's most frequent request by far: when the poll state
lives in Redis (``ciba.poll_state.RedisPollState``), a well-formed CIBA grant request from a
``client_secret_basic``/``client_secret_post`` client is answered here from one Lua call —
no database, no oauthlib request parsing. Anything this module is not certain about returns
``None`` and takes the full path, which owns every other answer (and every error message).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from oauthlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error

from .client_auth import SECRET_METHODS, read_credentials
from .constants import CIBA_GRANT_TYPE
from .errors import InvalidClient
from .oauth.errors import AuthorizationPendingError, SlowDownError
from .oauth.validators import AUTH_REQ_ID_SYNTAX
from .poll_state import PENDING, now, poll_state

FORM = "application/x-www-form-urlencoded"
_ERRORS = {PENDING: AuthorizationPendingError, "slow_down": SlowDownError}


def answer(request: HttpRequest) -> HttpResponse | None:
    """The response to a CIBA grant request with a repeated parameter or to a pending poll;
    ``None`` when the full token endpoint must answer."""
    if request.content_type != FORM:
        return None
    params = request.POST
    if CIBA_GRANT_TYPE not in params.getlist("grant_type"):
        return None  # other grants keep DOT's behaviour
    repeated = sorted(name for name, values in params.lists() if len(values) > 1)
    if repeated:
        return oauth_error(InvalidRequestError(description=f"Duplicate {repeated[0]} parameter."))
    store = poll_state()
    if not store.shared:
        return None
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
