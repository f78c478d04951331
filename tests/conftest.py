from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from oauth2_provider.models import get_application_model

from ciba.constants import CIBA_GRANT_TYPE

Application = get_application_model()


@pytest.fixture
def alice(db: Any) -> Any:
    return get_user_model().objects.create_user("alice", "alice@example.com", "alice-password")


@pytest.fixture
def make_client(db: Any) -> Callable[..., tuple[Any, str]]:
    """Create a confidential CIBA client; returns (application, plaintext secret)."""
    counter = iter(range(1, 10_000))

    def factory(mode: str = "poll", secret: str | None = None, **fields: Any) -> tuple[Any, str]:
        n = next(counter)
        secret = secret or f"secret-{n}-0123456789abcdef0123456789abcdef"
        values: dict[str, Any] = {
            "name": f"Kiosk {n}",
            "client_type": Application.CLIENT_CONFIDENTIAL,
            "authorization_grant_type": CIBA_GRANT_TYPE,
            "backchannel_token_delivery_mode": mode,
            "client_secret": secret,
            "algorithm": "RS256",
        }
        if mode in ("ping", "push"):
            values["backchannel_client_notification_endpoint"] = "https://client.example.com/cb"
        values.update(fields)
        app = Application(**values)
        app.full_clean()
        app.save()
        return app, secret

    return factory


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def start_request(
    client: Any, app: Any, secret: str, body: str = "scope=openid+profile&login_hint=alice"
) -> str:
    """Start a CIBA request as ``app`` over HTTP and return its auth_req_id."""
    response = client.post(
        "/o/backchannel-authentication/",
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    return response.json()["auth_req_id"]


# The site-model suite runs under its own settings (tests.settings_site_model), in CI.
if os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings") != "tests.settings_site_model":
    collect_ignore = ["site_model"]
