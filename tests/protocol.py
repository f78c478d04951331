"""Speaking the protocol as a client does, over HTTP, for tests: the backchannel request, the
token endpoint, and what every OAuth error body must look like."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from ciba.constants import CIBA_GRANT_TYPE
from tests.conftest import basic_auth

FORM = "application/x-www-form-urlencoded"
BACKCHANNEL = "/o/backchannel-authentication/"
TOKEN = "/o/token/"
#: RFC 6749 §5.2: error_description is limited to these characters.
DESCRIPTION = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")


def form(params: dict[str, Any] | str) -> str:
    return params if isinstance(params, str) else urlencode(params)


def backchannel(client: Any, app: Any, secret: str | None, params: dict[str, Any] | str, **extra: Any) -> Any:
    """POST a backchannel authentication request; ``secret=None`` sends no Basic credentials."""
    if secret is not None:
        extra.setdefault("HTTP_AUTHORIZATION", basic_auth(app.client_id, secret))
    return client.post(BACKCHANNEL, form(params), content_type=FORM, **extra)


def token(client: Any, app: Any, secret: str | None, params: dict[str, Any] | str, **extra: Any) -> Any:
    if secret is not None:
        extra.setdefault("HTTP_AUTHORIZATION", basic_auth(app.client_id, secret))
    return client.post(TOKEN, form(params), content_type=FORM, **extra)


def poll(client: Any, app: Any, secret: str | None, auth_req_id: str, **extra: Any) -> Any:
    return token(client, app, secret, {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}, **extra)


def oauth_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is the OAuth error ``code`` with ``status``, in the shape the conformance
    suite accepts: only error/error_description/error_uri, a description in RFC 6749's set."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code, body
    assert set(body) <= {"error", "error_description", "error_uri"}, body
    assert DESCRIPTION.fullmatch(body.get("error_description", "")), body
    return body


def consent_bearer(user: Any, scope: str = "ciba:consent", expires_in: int = 3600) -> dict[str, str]:
    """Headers of the user's authentication-device app: a DOT token with the consent scope."""
    token = get_access_token_model().objects.create(
        user=user, token=uuid.uuid4().hex, scope=scope, expires=timezone.now() + timedelta(seconds=expires_in)
    )
    return {"HTTP_AUTHORIZATION": f"Bearer {token.token}"}
