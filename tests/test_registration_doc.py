"""What docs/registration.md promises a developer, checked one statement at a time."""

from __future__ import annotations

import json
from typing import Any

import pytest
from oauth2_provider.models import get_application_model

from ciba.client_registration import initial_access_tokens

Application = get_application_model()
REGISTER = "/o/register/"
POLL = {"backchannel_token_delivery_mode": "poll"}


@pytest.fixture(autouse=True)
def registration_enabled(settings: Any) -> None:
    settings.CIBA = {**settings.CIBA, "REGISTRATION_ENABLED": True}


def register(client: Any, body: Any, token: str | None = None, **extra: Any) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(REGISTER, data, content_type="application/json", **headers, **extra)


def error(response: Any, status: int) -> str:
    assert response.status_code == status, response.content
    return response.json()["error"]


def test_with_registration_off_both_endpoints_are_not_there(client, settings, db):
    settings.CIBA = {**settings.CIBA, "REGISTRATION_ENABLED": False}
    assert register(client, POLL).status_code == 404
    assert client.get(f"{REGISTER}some-client/").status_code == 404
    assert "registration_endpoint" not in client.get("/o/.well-known/openid-configuration").json()


def test_a_registration_without_grant_types_but_with_a_delivery_mode_asks_for_ciba(client, db):
    token, _ = initial_access_tokens.issue("doc")
    registered = register(client, POLL, token).json()
    assert registered["grant_types"] == ["urn:openid:params:grant-type:ciba"]
    assert registered["token_endpoint_auth_method"] == "client_secret_basic"
    assert registered["client_secret_expires_at"] == 0


def test_unknown_members_are_ignored_and_never_echoed(client, db):
    token, _ = initial_access_tokens.issue("doc")
    response = register(client, {**POLL, "favourite_colour": "teal"}, token)
    assert response.status_code == 201 and "favourite_colour" not in response.json()


def test_a_token_that_narrows_the_metadata_refuses_other_values_naming_the_field(client, db):
    token, row = initial_access_tokens.issue(
        "doc", uses=2, allowed_metadata={"backchannel_token_delivery_mode": ["poll"]}
    )
    ping = {
        "backchannel_token_delivery_mode": "ping",
        "backchannel_client_notification_endpoint": "https://k.example/cb",
    }
    response = register(client, ping, token)
    assert error(response, 400) == "invalid_client_metadata"
    assert "backchannel_token_delivery_mode" in response.json()["error_description"]
    row.refresh_from_db()
    assert row.uses_left == 2  # a refused registration spends no use
    assert register(client, POLL, token).status_code == 201


@pytest.mark.parametrize(
    "uri", ["https://kiosk.example/cb#fragment", "ftp://kiosk.example/cb", "https://kiosk.example/c b"]
)
def test_a_bad_redirect_uri_is_invalid_redirect_uri(client, db, uri):
    token, _ = initial_access_tokens.issue("doc")
    body = {"grant_types": ["authorization_code"], "response_types": ["code"], "redirect_uris": [uri]}
    assert error(register(client, body, token), 400) == "invalid_redirect_uri"
    assert not Application.objects.exists()


def test_a_body_over_128_kib_is_413(client, db):
    token, _ = initial_access_tokens.issue("doc")
    body = json.dumps({**POLL, "client_name": "x" * (129 * 1024)})
    assert register(client, body, token).status_code == 413
    assert not Application.objects.exists()


def test_open_registration_is_limited_per_address_with_retry_after(client, settings, db):
    settings.CIBA = {**settings.CIBA, "REGISTRATION_OPEN": True, "REGISTRATION_OPEN_RATE": "2/hour"}
    assert [register(client, POLL).status_code for _ in range(2)] == [201, 201]
    throttled = register(client, POLL)
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    token, _ = initial_access_tokens.issue("doc")  # a credential is not limited by the open rate
    assert register(client, POLL, token).status_code == 201


def test_a_client_made_in_the_admin_cannot_be_managed_over_rfc_7592(client, make_client):
    app, _ = make_client("poll")
    response = client.get(f"{REGISTER}{app.client_id}/", HTTP_AUTHORIZATION="Bearer anything")
    assert error(response, 401) == "invalid_token"
