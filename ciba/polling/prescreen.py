"""CIBA grant requests at the token endpoint, screened before DOT and oauthlib see them.

Two answers are given here. A repeated parameter is refused (RFC 6749 §3.2): DOT builds
oauthlib's request from ``request.POST`` last-value-wins, so oauthlib would never see it.
And a pending poll, the token endpoint's most frequent request by far: when the poll state
is shared (``RedisPollState``), a well-formed CIBA grant request from a client whose
credentials the caller's ``identify`` can fingerprint is answered here from one Lua call —
no database, no oauthlib request parsing. Anything this module is not certain about returns
``None`` and takes the full path, which owns every other answer (and every error message).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from django.http import HttpRequest, HttpResponse
from oauthlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error

from .. import polling
from ..constants import AUTH_REQ_ID_PATTERN, CIBA_GRANT_TYPE
from ..errors import AuthorizationPendingError, SlowDownError

FORM = "application/x-www-form-urlencoded"
_GRANT_PARAMETERS = frozenset(
    ("grant_type", "auth_req_id", "client_id", "client_secret", "client_assertion", "client_assertion_type")
)
_AUTH_REQ_ID = re.compile(AUTH_REQ_ID_PATTERN)
_ERRORS = {polling.PENDING: AuthorizationPendingError, polling.SLOW_DOWN: SlowDownError}

#: ``identify(authorization_header, form)`` → ``(client_id, fingerprint)`` of credentials the
#: store may have seen verified, or ``None`` (any other method, or nothing usable). Supplied
#: by the caller, so that this package never depends on how clients authenticate.
Identify = Callable[[str, Mapping[str, str]], "tuple[str, str] | None"]


def answer(request: HttpRequest, identify: Identify) -> HttpResponse | None:
    """The response to a CIBA grant request with a repeated parameter or to a pending poll;
    ``None`` when the full token endpoint must answer."""
    if request.content_type != FORM:
        return None
    params = request.POST
    if CIBA_GRANT_TYPE not in params.getlist("grant_type"):
        return None  # other grants keep DOT's behaviour
    repeated = sorted(name for name, values in params.lists() if len(values) > 1)
    if repeated:
        return oauth_error(InvalidRequestError(description=_duplicate(repeated[0])))
    store = polling.poll_state()
    if not store.shared:
        return None
    auth_req_id = params.get("auth_req_id", "")
    if not _AUTH_REQ_ID.fullmatch(auth_req_id):
        return None
    identity = identify(request.META.get("HTTP_AUTHORIZATION", ""), params)
    if identity is None:
        return None
    code = store.poll(identity[0], identity[1], auth_req_id, polling.now())
    if code is None:
        return None
    return oauth_error(_ERRORS[code]())


def _duplicate(name: str) -> str:
    # The name is repeated back only when it is one of the grant's own parameters.
    return f"Duplicate {name} parameter." if name in _GRANT_PARAMETERS else "A parameter is repeated."


def oauth_error(error: OAuth2Error) -> HttpResponse:
    """The same bytes and headers oauthlib's answer has on the full path."""
    response = HttpResponse(error.json, status=error.status_code, content_type="application/json")
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response
