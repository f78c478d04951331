"""Wrong client credentials are refused cheaply once they repeat: before any password hash,
per client id and per source address, without locking out the real client."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import check_password as real_check_password
from django.test import override_settings

from ciba.constants import CIBA_GRANT_TYPE
from tests.conftest import basic_auth
from tests.protocol import backchannel, oauth_error, token

LIMITS = {
    "CLIENT_AUTH_FAILURE_RATE_PER_CLIENT": "3/minute",
    "CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS": "5/minute",
}
BODY = "scope=openid&login_hint=alice"


@pytest.fixture
def hashes(monkeypatch):
    """How many password hashes the server computed (the cost an attacker wants to impose)."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return real_check_password(*args, **kwargs)

    monkeypatch.setattr("ciba.client_auth.secret.check_password", counting)
    return calls


def wrong(client, app, address="203.0.113.7", **extra):
    return backchannel(
        client,
        app,
        None,
        BODY,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, "wrong"),
        REMOTE_ADDR=address,
        **extra,
    )


@override_settings(CIBA={**LIMITS})
def test_repeated_wrong_secrets_are_refused_with_429_before_any_hash(client, alice, make_client, hashes):
    app, _ = make_client("poll")
    for _ in range(3):
        oauth_error(wrong(client, app), 401, "invalid_client")
    assert len(hashes) == 3
    refused = wrong(client, app)
    oauth_error(refused, 429, "invalid_client")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert len(hashes) == 3  # the refusal cost no hash


@override_settings(CIBA={**LIMITS})
def test_the_real_client_keeps_working_while_its_id_is_under_attack(client, alice, make_client):
    app, secret = make_client("poll")
    assert backchannel(client, app, secret, BODY).status_code == 200  # verified: remembered
    for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"):
        wrong(client, app, address)
    oauth_error(wrong(client, app, "198.51.100.5"), 429, "invalid_client")  # the id is locked ...
    assert backchannel(client, app, secret, BODY).status_code == 200  # ... but not for its owner


@override_settings(CIBA={**LIMITS})
def test_guessing_unknown_client_ids_from_one_address_is_refused(client, alice, make_client, hashes):
    app, _ = make_client("poll")
    for n in range(5):
        app.client_id = f"guess-{n}"
        oauth_error(wrong(client, app), 401, "invalid_client")
    app.client_id = "guess-5"
    oauth_error(wrong(client, app), 429, "invalid_client")
    oauth_error(wrong(client, app, address="203.0.113.8"), 401, "invalid_client")  # another address


@override_settings(CIBA={**LIMITS, "TRUSTED_PROXIES": ["10.0.0.0/8"]})
def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(client, alice, make_client):
    app, _ = make_client("poll")
    app.client_id = "nobody"
    for n in range(5):
        app.client_id = f"nobody-{n}"
        wrong(client, app, "10.1.2.3", HTTP_X_FORWARDED_FOR="203.0.113.50, 10.9.9.9")
    app.client_id = "nobody-x"
    oauth_error(wrong(client, app, "10.1.2.3", HTTP_X_FORWARDED_FOR="203.0.113.50"), 429, "invalid_client")
    # a forged X-Forwarded-For from outside the proxies is ignored: REMOTE_ADDR counts
    oauth_error(wrong(client, app, "192.0.2.1", HTTP_X_FORWARDED_FOR="203.0.113.50"), 401, "invalid_client")


@override_settings(CIBA={**LIMITS})
@pytest.mark.parametrize("grant", [CIBA_GRANT_TYPE, "client_credentials"])
def test_the_token_endpoint_refuses_repeated_failures_the_same_way(client, alice, make_client, grant):
    from oauth2_provider.models import get_application_model

    if grant == "client_credentials":
        Application = get_application_model()
        app = Application.objects.create(
            name="Backend", client_type="confidential", authorization_grant_type="client-credentials"
        )
    else:
        app, _ = make_client("poll")
    params = {"grant_type": grant, "auth_req_id": "x"}
    for _ in range(3):
        response = token(client, app, None, params, HTTP_AUTHORIZATION=basic_auth(app.client_id, "wrong"))
        assert response.status_code == 401, response.content
    refused = token(client, app, None, params, HTTP_AUTHORIZATION=basic_auth(app.client_id, "wrong"))
    assert refused.status_code == 429 and refused.json()["error"] == "invalid_client"
    assert int(refused["Retry-After"]) >= 1
