"""The registration endpoint (RFC 7591 §3): what a client that registers itself is told, what
it can do at once, and every refusal with its RFC 7591 §3.2.2 code."""

from __future__ import annotations

import importlib
import json
import time
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from django.urls import clear_url_caches
from oauth2_provider.models import get_application_model

from ciba import services
from ciba.client_registration import initial_access_tokens
from ciba.constants import CIBA_GRANT_TYPE
from tests import keys
from tests.protocol import backchannel, oauth_error, poll

Application = get_application_model()
REGISTER = "/o/register/"
JSON = "application/json"
pytestmark = pytest.mark.django_db


def ciba_settings(**extra: Any) -> dict[str, Any]:
    return {**django_settings.CIBA, "REGISTRATION_ENABLED": True, **extra}


@pytest.fixture(autouse=True)
def registration_on(settings: Any) -> None:
    settings.CIBA = ciba_settings()


@pytest.fixture
def iat(db: Any) -> str:
    token, _row = initial_access_tokens.issue("tests", uses=None)
    return token


def register(client: Any, document: Any, token: str | None, **extra: Any) -> Any:
    if token is not None:
        extra.setdefault("HTTP_AUTHORIZATION", f"Bearer {token}")
    body = document if isinstance(document, (str, bytes)) else json.dumps(document)
    extra.setdefault("content_type", JSON)
    return client.post(REGISTER, body, **extra)


POLL_CLIENT = {
    "client_name": "Kiosk",
    "grant_types": [CIBA_GRANT_TYPE],
    "backchannel_token_delivery_mode": "poll",
    "token_endpoint_auth_method": "client_secret_basic",
    "contacts": ["ops@kiosk.example"],
}


def test_a_registered_poll_client_is_told_its_credentials_and_what_was_stored(client: Any, iat: str) -> None:
    response = register(client, POLL_CLIENT, iat)
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    stored = Application.objects.get(client_id=body["client_id"])
    assert body["client_name"] == "Kiosk" == stored.name
    assert body["grant_types"] == [CIBA_GRANT_TYPE]
    assert body["backchannel_token_delivery_mode"] == "poll"
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["contacts"] == ["ops@kiosk.example"]
    assert body["response_types"] == []
    assert body["client_secret_expires_at"] == 0
    assert body["client_id_issued_at"] == int(stored.created.timestamp())
    assert body["registration_client_uri"] == f"http://testserver/o/register/{stored.client_id}/"
    assert len(body["registration_access_token"]) >= 43  # 256 bits, base64url
    assert stored.registration_source == Application.RegistrationSource.DCR
    assert stored.client_secret != body["client_secret"]  # only its hash is kept
    assert body["client_secret"] not in json.dumps(stored.registration_access_token_hash)
    assert stored.is_ciba_client


def test_a_registered_client_runs_a_poll_flow_at_once(client: Any, iat: str, alice: Any) -> None:
    body = register(client, POLL_CLIENT, iat).json()
    app = Application.objects.get(client_id=body["client_id"])
    started = backchannel(client, app, body["client_secret"], {"scope": "openid", "login_hint": "alice"})
    assert started.status_code == 200, started.content
    auth_req_id = started.json()["auth_req_id"]
    assert poll(client, app, body["client_secret"], auth_req_id).json()["error"] == "authorization_pending"
    services.approve(app.ciba_requests.get(auth_req_id=auth_req_id), user=alice)
    tokens = poll(client, app, body["client_secret"], auth_req_id)
    assert tokens.status_code == 200, tokens.content
    assert {"access_token", "id_token"} <= set(tokens.json())


def test_a_private_key_jwt_client_gets_no_secret(client: Any, iat: str) -> None:
    jwk = keys.public_jwk(keys.rsa_key(), "k1")
    document = {**POLL_CLIENT, "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}}
    body = register(client, document, iat).json()
    assert "client_secret" not in body and "client_secret_expires_at" not in body
    assert body["jwks"] == {"keys": [jwk]}
    assert Application.objects.get(client_id=body["client_id"]).client_secret == ""


def test_a_client_secret_jwt_client_has_its_secret_kept_in_clear(client: Any, iat: str) -> None:
    body = register(client, {**POLL_CLIENT, "token_endpoint_auth_method": "client_secret_jwt"}, iat).json()
    assert Application.objects.get(client_id=body["client_id"]).client_secret == body["client_secret"]


def test_a_ping_client_registers_its_notification_endpoint(client: Any, iat: str) -> None:
    document = {
        **POLL_CLIENT,
        "backchannel_token_delivery_mode": "ping",
        "backchannel_client_notification_endpoint": "https://kiosk.example/cb",
    }
    body = register(client, document, iat).json()
    assert body["backchannel_client_notification_endpoint"] == "https://kiosk.example/cb"


def test_several_grants_are_registered_together(client: Any, iat: str) -> None:
    document = {
        **POLL_CLIENT,
        "grant_types": [CIBA_GRANT_TYPE, "client_credentials", "refresh_token"],
    }
    response = register(client, document, iat)
    assert response.status_code == 201, response.content
    app = Application.objects.get(client_id=response.json()["client_id"])
    assert app.authorization_grant_type == CIBA_GRANT_TYPE
    assert set(response.json()["grant_types"]) == {CIBA_GRANT_TYPE, "client_credentials", "refresh_token"}


def test_without_grant_types_a_delivery_mode_asks_for_ciba(client: Any, iat: str) -> None:
    document = {k: v for k, v in POLL_CLIENT.items() if k != "grant_types"}
    assert register(client, document, iat).json()["grant_types"] == [CIBA_GRANT_TYPE]


def test_unknown_members_are_ignored_and_not_echoed(client: Any, iat: str) -> None:
    response = register(client, {**POLL_CLIENT, "scope": "openid payments", "x-vendor": {"a": 1}}, iat)
    assert response.status_code == 201, response.content
    assert "scope" not in response.json() and "x-vendor" not in response.json()


def test_null_members_are_taken_as_absent(client: Any, iat: str) -> None:
    response = register(client, {**POLL_CLIENT, "logo_uri": None, "jwks": None}, iat)
    assert response.status_code == 201, response.content
    assert "logo_uri" not in response.json()


def test_an_authorization_code_client_registers_redirect_uris(client: Any, iat: str) -> None:
    document = {
        "client_name": "Web",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "redirect_uris": ["https://web.example/cb"],
    }
    response = register(client, document, iat)
    assert response.status_code == 201, response.content
    assert response.json()["redirect_uris"] == ["https://web.example/cb"]
    assert response.json()["response_types"] == ["code"]
    app = Application.objects.get(client_id=response.json()["client_id"])
    assert app.authorization_grant_type == Application.GRANT_AUTHORIZATION_CODE


# --- who may register --------------------------------------------------------------------------


def test_without_an_initial_access_token_registration_is_refused(client: Any) -> None:
    response = register(client, POLL_CLIENT, None)
    oauth_error(response, 401, "invalid_token")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Application.objects.exists()


def test_an_unknown_initial_access_token_is_refused(client: Any) -> None:
    oauth_error(register(client, POLL_CLIENT, "not-a-token"), 401, "invalid_token")
    assert not Application.objects.exists()


def test_a_single_use_token_registers_one_client(client: Any) -> None:
    token, _row = initial_access_tokens.issue("once", uses=1)
    assert register(client, POLL_CLIENT, token).status_code == 201
    oauth_error(register(client, POLL_CLIENT, token), 401, "invalid_token")
    assert Application.objects.count() == 1


def test_a_refused_registration_spends_no_use_of_the_token(client: Any) -> None:
    token, row = initial_access_tokens.issue("once", uses=1)
    oauth_error(
        register(client, {**POLL_CLIENT, "backchannel_token_delivery_mode": 7}, token),
        400,
        "invalid_client_metadata",
    )
    row.refresh_from_db()
    assert row.uses_left == 1
    assert register(client, POLL_CLIENT, token).status_code == 201


def test_a_token_narrowing_the_metadata_refuses_other_values(client: Any) -> None:
    token, _row = initial_access_tokens.issue(
        "poll only", allowed_metadata={"backchannel_token_delivery_mode": ["poll"]}
    )
    document = {
        **POLL_CLIENT,
        "backchannel_token_delivery_mode": "ping",
        "backchannel_client_notification_endpoint": "https://kiosk.example/cb",
    }
    body = oauth_error(register(client, document, token), 400, "invalid_client_metadata")
    assert "backchannel_token_delivery_mode" in body["error_description"]
    assert not Application.objects.exists()


def test_open_registration_needs_no_token(client: Any, settings: Any) -> None:
    settings.CIBA = ciba_settings(REGISTRATION_OPEN=True)
    assert register(client, POLL_CLIENT, None).status_code == 201


def test_open_registration_is_rate_limited_per_address(client: Any, settings: Any) -> None:
    settings.CIBA = ciba_settings(REGISTRATION_OPEN=True, REGISTRATION_OPEN_RATE="2/hour")
    assert [register(client, POLL_CLIENT, None).status_code for _ in range(2)] == [201, 201]
    response = register(client, POLL_CLIENT, None)
    oauth_error(response, 429, "access_denied")
    assert int(response["Retry-After"]) > 0
    assert Application.objects.count() == 2


def test_the_endpoint_is_not_there_unless_enabled(client: Any, settings: Any) -> None:
    settings.CIBA = ciba_settings(REGISTRATION_ENABLED=False)
    assert register(client, POLL_CLIENT, "x").status_code == 404
    assert client.get("/o/register/some-client/").status_code == 404


def test_other_methods_are_refused(client: Any) -> None:
    response = client.get(REGISTER)
    oauth_error(response, 405, "invalid_request")
    assert response["Allow"] == "POST"


# --- DOT's self-service pages ---------------------------------------------------------------


def _reload_urls() -> None:
    import ciba.oauth_urls
    import tests.urls

    importlib.reload(ciba.oauth_urls)
    importlib.reload(tests.urls)
    clear_url_caches()


@pytest.fixture
def urls_reloaded() -> Any:
    yield _reload_urls
    # Back to the URLconf of every other test (the settings fixture is restored after this).
    with override_settings(CIBA={**django_settings.CIBA, "DOT_APPLICATION_VIEWS": False}):
        _reload_urls()


def test_dot_application_pages_are_not_mounted_by_default(admin_client: Any) -> None:
    assert admin_client.get("/o/applications/").status_code == 404
    assert admin_client.get("/o/authorized_tokens/").status_code == 404


def test_a_site_may_mount_dot_application_pages(admin_client: Any, settings: Any, urls_reloaded: Any) -> None:
    settings.CIBA = ciba_settings(DOT_APPLICATION_VIEWS=True)
    urls_reloaded()  # the URLconf reads the setting once, when imported
    assert admin_client.get("/o/applications/").status_code == 200
    assert admin_client.get("/o/authorized_tokens/").status_code == 200


# --- discovery ---------------------------------------------------------------------------------


def test_discovery_advertises_the_endpoint_only_when_enabled(client: Any, settings: Any) -> None:
    for path in ("/o/.well-known/openid-configuration", "/o/.well-known/oauth-authorization-server"):
        assert client.get(path).json()["registration_endpoint"] == "http://testserver/o/register/"
    settings.CIBA = ciba_settings(REGISTRATION_ENABLED=False)
    assert "registration_endpoint" not in client.get("/o/.well-known/openid-configuration").json()


# --- the profile -------------------------------------------------------------------------------


FAPI = {"PROFILE": "fapi-ciba"}


def test_fapi_refuses_a_secret_client(client: Any, iat: str, settings: Any) -> None:
    settings.CIBA = ciba_settings(**FAPI)
    body = oauth_error(register(client, POLL_CLIENT, iat), 400, "invalid_client_metadata")
    assert "token_endpoint_auth_method" in body["error_description"]
    assert not Application.objects.exists()


def test_fapi_refuses_the_push_mode_and_rs256(client: Any, iat: str, settings: Any) -> None:
    settings.CIBA = ciba_settings(**FAPI)
    key = keys.rsa_key()
    document = {
        **POLL_CLIENT,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [keys.public_jwk(key, "k1")]},
        "backchannel_token_delivery_mode": "push",
        "backchannel_client_notification_endpoint": "https://kiosk.example/cb",
        "backchannel_authentication_request_signing_alg": "RS256",
    }
    body = oauth_error(register(client, document, iat), 400, "invalid_client_metadata")
    assert "backchannel_authentication_request_signing_alg" in body["error_description"]
    assert not Application.objects.exists()


@override_settings(CIBA={**django_settings.CIBA, "REGISTRATION_ENABLED": True, **FAPI})
def test_fapi_refuses_an_id_token_algorithm_outside_the_profile(client: Any, iat: str) -> None:
    document = {
        **POLL_CLIENT,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [keys.public_jwk(keys.rsa_key(), "k1")]},
        "backchannel_authentication_request_signing_alg": "PS256",
        "id_token_signed_response_alg": "RS256",
    }
    body = oauth_error(register(client, document, iat), 400, "invalid_client_metadata")
    assert "id_token_signed_response_alg" in body["error_description"]


# --- software statements (RFC 7591 §2.3) --------------------------------------------------------

DIRECTORY = "https://directory.example"
DIRECTORY_KEY = keys.rsa_key()


def statement(**claims: Any) -> str:
    payload = {"iss": DIRECTORY, "iat": int(time.time()), "software_id": "kiosk-app", **claims}
    return keys.sign(payload, DIRECTORY_KEY, "PS256", kid="d1")


@pytest.fixture
def directory(settings: Any) -> None:
    trusted = {DIRECTORY: {"jwks": {"keys": [keys.public_jwk(DIRECTORY_KEY, "d1")]}}}
    settings.CIBA = ciba_settings(SOFTWARE_STATEMENT_ISSUERS=trusted)


def test_a_trusted_statement_registers_and_its_claims_win(client: Any, directory: None) -> None:
    signed = statement(client_name="Kiosk by the directory")
    response = register(client, {**POLL_CLIENT, "software_statement": signed, "software_id": "mine"}, None)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["client_name"], body["software_id"]) == ("Kiosk by the directory", "kiosk-app")
    assert body["software_statement"] == signed
    assert Application.objects.get(client_id=body["client_id"]).software_statement == signed


def test_an_update_cannot_undo_what_the_statement_says(client: Any, directory: None) -> None:
    body = register(client, {**POLL_CLIENT, "software_statement": statement()}, None).json()
    changed = {**POLL_CLIENT, "client_id": body["client_id"], "software_id": "something-else"}
    response = client.put(
        body["registration_client_uri"],
        json.dumps(changed),
        content_type=JSON,
        HTTP_AUTHORIZATION=f"Bearer {body['registration_access_token']}",
    )
    assert response.status_code == 200, response.content
    assert response.json()["software_id"] == "kiosk-app"


def test_a_statement_from_an_unknown_directory_is_unapproved(client: Any, directory: None) -> None:
    other = keys.sign({"iss": "https://elsewhere.example", "iat": int(time.time())}, keys.rsa_key(), "PS256")
    oauth_error(
        register(client, {**POLL_CLIENT, "software_statement": other}, None),
        400,
        "unapproved_software_statement",
    )
    assert not Application.objects.exists()


@pytest.mark.parametrize("bad", ["not-a-jwt", 42])
def test_an_unreadable_statement_is_invalid(client: Any, directory: None, bad: Any) -> None:
    oauth_error(
        register(client, {**POLL_CLIENT, "software_statement": bad}, None), 400, "invalid_software_statement"
    )
    assert not Application.objects.exists()


def test_a_statement_signed_by_another_key_is_invalid(client: Any, directory: None) -> None:
    forged = keys.sign({"iss": DIRECTORY, "iat": int(time.time())}, keys.rsa_key(), "PS256", kid="d1")
    oauth_error(
        register(client, {**POLL_CLIENT, "software_statement": forged}, None),
        400,
        "invalid_software_statement",
    )
    assert not Application.objects.exists()
