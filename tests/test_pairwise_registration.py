"""Registering for pairwise subject identifiers (OpenID Connect Registration §2, §5; CIBA §4):
``subject_type`` and ``sector_identifier_uri`` through the registration endpoint, the sector
document fetched from a real HTTP server, and discovery's ``subject_types_supported``."""

from __future__ import annotations

import io
import json
from typing import Any

import jwt
import pytest
from django.conf import settings as django_settings
from oauth2_provider.models import get_application_model

from ciba import services, subjects
from ciba.client_registration import initial_access_tokens
from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest
from tests.protocol import backchannel, oauth_error, poll

Application = get_application_model()
REGISTER = "/o/register/"
JSON = "application/json"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def registration_on(settings: Any) -> None:
    settings.CIBA = {**django_settings.CIBA, "REGISTRATION_ENABLED": True}


@pytest.fixture
def iat(db: Any) -> str:
    value, _row = initial_access_tokens.issue("tests", uses=None)
    return value


def register(client: Any, document: dict[str, Any], token: str) -> Any:
    return client.post(
        REGISTER, json.dumps(document), content_type=JSON, HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def ping_client(sector_uri: str | None = None, **extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "client_name": "Kiosk",
        "grant_types": [CIBA_GRANT_TYPE],
        "backchannel_token_delivery_mode": "ping",
        "backchannel_client_notification_endpoint": "https://cb.kiosk.example/ciba",
        "token_endpoint_auth_method": "client_secret_basic",
        "subject_type": "pairwise",
    }
    if sector_uri is not None:
        document["sector_identifier_uri"] = sector_uri
    document.update(extra)
    return document


def test_a_pairwise_registration_round_trips(client, iat, json_server):
    json_server.documents["/sector.json"] = ["https://cb.kiosk.example/ciba"]
    uri = json_server.url("/sector.json")
    response = register(client, ping_client(uri), iat)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["subject_type"] == "pairwise" and body["sector_identifier_uri"] == uri
    assert json_server.hits["/sector.json"] == 1
    path = body["registration_client_uri"].removeprefix("http://testserver")
    read = client.get(path, HTTP_AUTHORIZATION=f"Bearer {body['registration_access_token']}").json()
    assert read["subject_type"] == "pairwise" and read["sector_identifier_uri"] == uri
    stored = Application.objects.get(client_id=body["client_id"])
    assert subjects.subject_type(stored) == "pairwise" and subjects.sector(stored) == "127.0.0.1"


def test_a_client_that_names_no_subject_type_is_told_the_default(client, iat):
    document = ping_client()
    del document["subject_type"]
    body = register(client, document, iat).json()
    assert body["subject_type"] == "public"
    assert "sector_identifier_uri" not in body


def test_clients_registered_with_one_sector_document_see_one_sub(client, iat, json_server, alice):
    json_server.documents["/sector.json"] = ["https://cb.kiosk.example/ciba", "https://cb.shop.example/ciba"]
    uri = json_server.url("/sector.json")
    kiosk = register(client, ping_client(uri), iat).json()
    shop = register(
        client, ping_client(uri, backchannel_client_notification_endpoint="https://cb.shop.example/ciba"), iat
    ).json()
    subs = []
    for registration in (kiosk, shop):
        app = Application.objects.get(client_id=registration["client_id"])
        secret = registration["client_secret"]
        started = backchannel(
            client,
            app,
            secret,
            {"scope": "openid", "login_hint": "alice", "client_notification_token": "nt-0123456789"},
        )
        assert started.status_code == 200, started.content
        ar = AuthenticationRequest.objects.get(auth_req_id=started.json()["auth_req_id"])
        services.approve(ar, user=alice)
        tokens = poll(client, app, secret, ar.auth_req_id).json()
        subs.append(jwt.decode(tokens["id_token"], options={"verify_signature": False})["sub"])
    assert subs[0] == subs[1] != str(alice.pk)


def test_an_update_checks_the_sector_document_again(client, iat, json_server):
    json_server.documents["/sector.json"] = ["https://cb.kiosk.example/ciba"]
    body = register(client, ping_client(json_server.url("/sector.json")), iat).json()
    moved = ping_client(
        json_server.url("/sector.json"),
        client_id=body["client_id"],
        backchannel_client_notification_endpoint="https://elsewhere.example/ciba",
    )
    path = body["registration_client_uri"].removeprefix("http://testserver")
    response = client.put(
        path,
        json.dumps(moved),
        content_type=JSON,
        HTTP_AUTHORIZATION=f"Bearer {body['registration_access_token']}",
    )
    described = oauth_error(response, 400, "invalid_client_metadata")["error_description"]
    assert "elsewhere.example" in described
    stored = Application.objects.get(client_id=body["client_id"])
    assert stored.backchannel_client_notification_endpoint == "https://cb.kiosk.example/ciba"


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (["https://keys.kiosk.example/jwks.json"], "lists no URL on the host cb.kiosk.example"),
        ({"redirect_uris": ["https://cb.kiosk.example/ciba"]}, "JSON array of URLs"),
        ([f"https://cb.kiosk.example/{'x' * 1000}/{n}" for n in range(80)], "larger than"),
    ],
)
def test_a_sector_document_that_does_not_vouch_for_the_client_refuses_the_registration(
    client, iat, json_server, document, problem
):
    json_server.documents["/sector.json"] = document
    response = register(client, ping_client(json_server.url("/sector.json")), iat)
    described = oauth_error(response, 400, "invalid_client_metadata")["error_description"]
    assert described.startswith("sector_identifier_uri:") and problem in described
    assert not Application.objects.exists()


def test_an_unreachable_or_missing_sector_document_refuses_the_registration(client, iat, json_server):
    response = register(client, ping_client(json_server.url("/absent.json")), iat)
    assert "HTTP 404" in oauth_error(response, 400, "invalid_client_metadata")["error_description"]
    response = register(client, ping_client("http://127.0.0.1:9/sector.json"), iat)
    assert (
        "could not be fetched" in oauth_error(response, 400, "invalid_client_metadata")["error_description"]
    )
    assert not Application.objects.exists()


def test_an_http_sector_identifier_uri_is_refused_in_production(client, iat, json_server, settings):
    settings.CIBA = {**settings.CIBA, "CALLBACK_ALLOW_HTTP": False}
    json_server.documents["/sector.json"] = ["https://cb.kiosk.example/ciba"]
    response = register(client, ping_client(json_server.url("/sector.json")), iat)
    described = oauth_error(response, 400, "invalid_client_metadata")["error_description"]
    assert "sector_identifier_uri" in described and "https" in described
    assert json_server.hits == {}


@pytest.mark.parametrize("value", ["bogus", "PAIRWISE"])
def test_an_unknown_subject_type_is_invalid_client_metadata(client, iat, value):
    response = register(client, ping_client(subject_type=value), iat)
    assert "subject_type" in oauth_error(response, 400, "invalid_client_metadata")["error_description"]


def test_a_subject_type_the_server_does_not_offer_is_refused(client, iat, settings):
    settings.CIBA = {**settings.CIBA, "SUBJECT_TYPES_SUPPORTED": ["public"]}
    response = register(client, ping_client(), iat)
    described = oauth_error(response, 400, "invalid_client_metadata")["error_description"]
    assert "subject_type" in described and "public" in described


def test_a_pairwise_client_with_redirect_uris_on_two_hosts_needs_a_sector_document(client, iat):
    document = {
        "client_name": "Web app",
        "grant_types": ["authorization_code"],
        "redirect_uris": ["https://a.example.com/cb", "https://b.example.com/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
        "subject_type": "pairwise",
    }
    response = register(client, document, iat)
    assert (
        "sector_identifier_uri" in oauth_error(response, 400, "invalid_client_metadata")["error_description"]
    )


def test_a_sector_document_must_list_the_redirect_uris(client, iat, json_server):
    json_server.documents["/sector.json"] = ["https://a.example.com/cb"]
    document = {
        "client_name": "Web app",
        "grant_types": ["authorization_code"],
        "redirect_uris": ["https://a.example.com/cb", "https://b.example.com/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
        "subject_type": "pairwise",
        "sector_identifier_uri": json_server.url("/sector.json"),
    }
    response = register(client, document, iat)
    assert "redirect URI" in oauth_error(response, 400, "invalid_client_metadata")["error_description"]
    json_server.documents["/sector.json"] = ["https://a.example.com/cb", "https://b.example.com/cb"]
    assert register(client, document, iat).status_code == 201


@pytest.mark.parametrize(
    "path", ["/o/.well-known/openid-configuration", "/o/.well-known/oauth-authorization-server"]
)
def test_discovery_lists_the_subject_types_supported(client, settings, path):
    response = client.get(path)
    assert response.status_code == 200, response.content
    assert response.json()["subject_types_supported"] == ["public", "pairwise"]
    settings.CIBA = {**settings.CIBA, "SUBJECT_TYPES_SUPPORTED": ["public"]}
    assert client.get(path).json()["subject_types_supported"] == ["public"]


def test_the_client_command_checks_the_sector_document_too(json_server):
    from django.core.management import CommandError, call_command

    json_server.documents["/sector.json"] = ["https://keys.kiosk.example/jwks.json"]
    options = ["--subject-type", "pairwise", "--sector-identifier-uri", json_server.url("/sector.json")]
    ping = ["--mode", "ping", "--notification-endpoint", "https://cb.kiosk.example/ciba"]
    with pytest.raises(CommandError, match="--sector-identifier-uri .*cb.kiosk.example"):
        call_command("ciba_client", "Kiosk", *options, *ping, stdout=io.StringIO())
    assert not Application.objects.exists()
    json_server.documents["/sector.json"] = ["https://cb.kiosk.example/ciba"]
    call_command("ciba_client", "Kiosk", *options, *ping, stdout=io.StringIO())
    stored = Application.objects.get()
    assert stored.subject_type == "pairwise" and subjects.sector(stored) == "127.0.0.1"
