"""DOT's token endpoint, with every credential the CIBA grant carries hidden from error reports."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from oauth2_provider.views import TokenView

from ..client_auth import poll_identity
from ..errors import describe
from ..polling import prescreen

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

    CIBA grant requests are screened first (``ciba.polling.prescreen``): repeated parameters are
    refused, and pending polls answered from the shared poll state when one is configured;
    everything else is DOT's endpoint, whose error descriptions are kept within RFC 6749's
    character set (oauthlib and DOT sometimes repeat what the client sent).
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return prescreen.answer(request, poll_identity) or _described(
                super().post(request, *args, **kwargs)
            )
        finally:
            # DOT's post() sets its own, shorter list when it runs; Django reads the list
            # only when it reports an error, after the view returned or raised.
            current = getattr(request, "sensitive_post_parameters", ())
            if current != "__ALL__":
                request.sensitive_post_parameters = sorted(set(current) | set(SENSITIVE))


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
