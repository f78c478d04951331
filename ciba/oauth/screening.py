"""Token requests that would otherwise get a 500 or a bare HTML 400, refused first with the
OAuth error they deserve.

A body Django will not read (larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE``, more fields than
``DATA_UPLOAD_MAX_NUMBER_FIELDS``, a broken multipart body, a form in a charset other than
UTF-8) raises when ``request.POST`` is first touched, and Django answers with an HTML page a
client cannot act on.

For the grants other than CIBA, DOT's token endpoint trusts its input in four places. A NUL
character in any parameter reaches a database lookup (a code, a refresh token, a username, a
client id, a device code), and PostgreSQL refuses the query (``DataError``). The device grant
reads ``device_code`` with ``[]`` (``KeyError``). A grant type missing from DOT's own table
(oauthlib's authorization-code grant also accepts ``openid``) trips an ``assert`` in DOT's
validator. And an RFC 8707 ``resource`` that ``urlsplit`` cannot split (``https://[::1``)
raises ``ValueError`` where DOT checks it.

CIBA grant requests are not screened for these: ``ciba.oauth.prescreen`` and the grant's own
checks answer them (a NUL in ``client_id`` is ``invalid_client``, in ``auth_req_id``
``invalid_grant``), and a pending poll must cost no more than one look at ``grant_type``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from urllib.parse import urlsplit

from django.core.exceptions import BadRequest, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError

from ..constants import CIBA_GRANT_TYPE
from ..errors import InvalidRequest, InvalidTarget, UnsupportedGrantType
from .prescreen import oauth_error

DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


def unreadable(request: HttpRequest) -> HttpResponse | None:
    """``invalid_request`` for a body Django refuses to read; ``None`` once it is read (the
    parsed form is kept on the request: nothing downstream reads it twice)."""
    try:
        request.POST  # noqa: B018 - parsing is the point
    except RequestDataTooBig:
        description = "The request body is too large."
    except (TooManyFieldsSent, TooManyFilesSent):
        description = "The request has too many parameters."
    except (BadRequest, MultiPartParserError):
        description = "The request body cannot be read."
    else:
        return None
    return oauth_error(InvalidRequest(description))


def refusal(request: HttpRequest, grant_types: Callable[[], Collection[str]]) -> HttpResponse | None:
    """The OAuth error for a request DOT cannot answer safely; ``None`` to let DOT answer.

    ``grant_types`` names the grants the token endpoint's server dispatches; it is asked only
    for a request of another grant than CIBA.
    """
    params = request.POST
    if not all(_splits(resource) for resource in params.getlist("resource")):
        # DOT splits each RFC 8707 resource while saving the token (CIBA grant included).
        return oauth_error(InvalidTarget("A resource is not a valid resource indicator."))
    if CIBA_GRANT_TYPE in params.getlist("grant_type"):
        return None
    if any("\x00" in name or any("\x00" in value for value in values) for name, values in params.lists()):
        return oauth_error(InvalidRequest("A parameter contains a NUL character."))
    # DOT and oauthlib read the last value of a repeated parameter; so does this.
    grant_type = params.get("grant_type")
    if grant_type is None:
        return None  # oauthlib's own answer (unsupported_grant_type)
    if grant_type not in grant_types():
        return oauth_error(UnsupportedGrantType("This grant type is not supported."))
    if grant_type == DEVICE_CODE_GRANT_TYPE and not params.get("device_code"):
        return oauth_error(InvalidRequest("Missing device_code parameter."))
    return None


def _splits(url: str) -> bool:
    try:
        urlsplit(url)
    except ValueError:
        return False
    return True
