"""DOT's token endpoint, with every credential the CIBA grant carries hidden from error reports."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from oauth2_provider.views import TokenView
from oauthlib.oauth2.rfc6749.errors import InvalidRequestError

from .. import fast_poll
from ..constants import CIBA_GRANT_TYPE

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

    Pending CIBA polls are answered first from the shared poll state when one is configured
    (``ciba.fast_poll``); everything else is DOT's endpoint.
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return (
                _refuse_repeated_parameters(request)
                or fast_poll.answer(request)
                or super().post(request, *args, **kwargs)
            )
        finally:
            # DOT's post() sets its own, shorter list when it runs; Django reads the list
            # only when it reports an error, after the view returned or raised.
            current = getattr(request, "sensitive_post_parameters", ())
            if current != "__ALL__":
                request.sensitive_post_parameters = sorted(set(current) | set(SENSITIVE))


def _refuse_repeated_parameters(request: HttpRequest) -> HttpResponse | None:
    """RFC 6749 §3.2: parameters "MUST NOT be included more than once".

    DOT builds oauthlib's request from ``request.POST`` with last-value-wins, so oauthlib
    never sees a repeated parameter; for the CIBA grant it is refused here instead.
    """
    if request.content_type != fast_poll.FORM:
        return None
    params = request.POST
    if CIBA_GRANT_TYPE not in params.getlist("grant_type"):
        return None
    repeated = sorted(name for name, values in params.lists() if len(values) > 1)
    if not repeated:
        return None
    return fast_poll.oauth_error(InvalidRequestError(description=f"Duplicate {repeated[0]} parameter."))
