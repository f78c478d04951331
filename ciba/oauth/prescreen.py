"""CIBA grant requests at the token endpoint, screened before DOT and oauthlib see them.

Two answers are given here. A repeated parameter is refused (RFC 6749 §3.2): DOT builds
oauthlib's request from ``request.POST`` last-value-wins, so oauthlib would never see it.
And a pending poll, the token endpoint's most frequent request by far: when the poll state
is shared (``RedisPollState``), a well-formed CIBA grant request without a DPoP proof from a
client whose credentials the caller's ``identify`` can fingerprint is answered here from one
Lua call — no database, no oauthlib request parsing. (The record answers only polls that
need no proof of possession; one that carries a DPoP proof takes the full path, which checks
the proof before it says anything about the request.) Anything this module is not certain
about returns ``None`` and takes the full path, which owns every other answer (and every
error message).

``screen`` works on the request's headers (a WSGI environ, or Django's ``request.META``,
which is one) and its body bytes, so that the token view (``ciba.oauth.view``, through
``answer``) and the WSGI fast lane ahead of Django's middleware (``ciba.oauth.lane``) decide
with the same code. ``oauth_error`` is the one builder of the token endpoint's own answers
(the view's, the screening's, the lane's): the bytes oauthlib gives on the full path.
The poll state itself (counting, the Redis record) is ``ciba.polling``'s; this module only asks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.http import parse_header_parameters

from .. import polling
from ..constants import AUTH_REQ_ID_PATTERN, CIBA_GRANT_TYPE
from ..errors import AuthorizationPending, CibaError, InvalidRequest, SlowDown

FORM = "application/x-www-form-urlencoded"
_GRANT_PARAMETERS = frozenset(
    ("grant_type", "auth_req_id", "client_id", "client_secret", "client_assertion", "client_assertion_type")
)
_AUTH_REQ_ID = re.compile(AUTH_REQ_ID_PATTERN)
_ERRORS = {polling.PENDING: AuthorizationPending, polling.SLOW_DOWN: SlowDown}
#: The answers that come from the poll state (the others are refusals of a malformed request).
POLL_ANSWERS = frozenset(_ERRORS)

#: ``identify(authorization_header, form)`` → ``(client_id, fingerprint)`` of credentials the
#: store may have seen verified, or ``None`` (any other method, or nothing usable). Supplied
#: by the caller, so that this package never depends on how clients authenticate.
Identify = Callable[[str, Mapping[str, str]], "tuple[str, str] | None"]


def answer(request: HttpRequest, identify: Identify) -> HttpResponse | None:
    """The token view's response to a CIBA grant request with a repeated parameter or to a
    pending poll; ``None`` when the full token endpoint must answer."""
    if request.content_type != FORM:
        return None  # before request.body: a multipart body has been consumed by request.POST
    error = screen(request.META, request.body, identify)
    return None if error is None else oauth_error(error)


def screen(meta: Mapping[str, Any], body: bytes, identify: Identify) -> CibaError | None:
    """The error a CIBA grant request gets without the full path: ``invalid_request`` for a
    repeated parameter, or ``authorization_pending``/``slow_down`` when the shared poll state
    proves the request pending (the poll is then counted there, ``error.error`` is in
    ``POLL_ANSWERS``); ``None`` for everything else.

    ``meta`` holds the request's CGI-style headers (``CONTENT_TYPE``, ``HTTP_AUTHORIZATION``);
    ``body`` is read exactly as Django reads a form (UTF-8, ``DATA_UPLOAD_MAX_NUMBER_FIELDS``).
    """
    content_type, options = parse_header_parameters(meta.get("CONTENT_TYPE", ""))
    if content_type != FORM or options.get("charset", "utf-8").lower() != "utf-8":
        return None  # Django refuses other charsets for a form; the full path says so
    try:
        params = QueryDict(body, encoding="utf-8")
    except TooManyFieldsSent:
        return None
    if CIBA_GRANT_TYPE not in params.getlist("grant_type"):
        return None  # other grants keep DOT's behaviour
    # RFC 6749 §3.2: no parameter twice, but RFC 8707's resource, which may name several.
    repeated = sorted(name for name, values in params.lists() if len(values) > 1 and name != "resource")
    if repeated:
        return InvalidRequest(_duplicate(repeated[0]))
    store = polling.poll_state()
    if not store.shared or meta.get("HTTP_DPOP") is not None:
        # A DPoP proof is checked before anything else on the full path (RFC 9449 §4.3):
        # missing, malformed, replayed, for another key or without the required nonce, the
        # answer is its error, never ``authorization_pending``. Only the full path checks it.
        return None
    auth_req_id = params.get("auth_req_id", "")
    if not _AUTH_REQ_ID.fullmatch(auth_req_id):
        return None
    identity = identify(meta.get("HTTP_AUTHORIZATION", ""), params)
    if identity is None:
        return None
    code = store.poll(identity[0], identity[1], auth_req_id, polling.now())
    if code is None:
        return None
    return _ERRORS[code]()


def _duplicate(name: str) -> str:
    # The name is repeated back only when it is one of the grant's own parameters.
    return f"Duplicate {name} parameter." if name in _GRANT_PARAMETERS else "A parameter is repeated."


def oauth_error(error: CibaError) -> HttpResponse:
    """The same bytes and headers oauthlib's answer has on the full path (its default headers,
    then the error's own)."""
    response = HttpResponse(error.json, status=error.status_code, content_type="application/json")
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    for name, value in error.headers.items():
        response[name] = value
    return response
