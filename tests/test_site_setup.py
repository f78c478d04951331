"""A site owner's path: checks that name what is missing, commands that create what is needed,
and the one way a native device app obtains a consent-scoped token (PKCE, RFC 7636, RFC 8252)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import secrets
import stat
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from oauth2_provider.models import get_access_token_model, get_application_model

from ciba import checks as ciba_checks
from ciba.models import ConsentClient
from tests.protocol import backchannel

Application = get_application_model()
REDIRECT = "com.example.bank:/oauth/callback"


# --- checks -------------------------------------------------------------------------------


def test_a_site_without_a_celery_app_is_told_so(monkeypatch):
    monkeypatch.setattr(ciba_checks.site_setup, "current_app", SimpleNamespace(main="default", conf=None))
    (error,) = ciba_checks.check_celery()
    assert error.id == "ciba.E018" and "celery.py" in error.hint


def test_a_celery_app_without_a_broker_outside_eager_mode_is_told_so(monkeypatch):
    conf = SimpleNamespace(task_always_eager=False, broker_url=None)
    monkeypatch.setattr(ciba_checks.site_setup, "current_app", SimpleNamespace(main="mysite", conf=conf))
    (warning,) = ciba_checks.check_celery()
    assert warning.id == "ciba.W006" and "CELERY_BROKER_URL" in warning.hint
    conf.broker_url = "redis://127.0.0.1:6379/0"
    assert ciba_checks.check_celery() == []


def test_the_test_settings_have_a_celery_app():
    assert ciba_checks.check_celery() == []


# --- commands -----------------------------------------------------------------------------


def test_the_signing_key_command_writes_a_private_file_and_never_overwrites(tmp_path):
    target = tmp_path / "oidc-key.pem"
    call_command("ciba_signing_key", "--output", str(target), stdout=io.StringIO())
    assert target.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(CommandError, match="not overwritten"):
        call_command("ciba_signing_key", "--output", str(target), stdout=io.StringIO())


def test_the_signing_key_command_prints_the_key_and_where_it_goes():
    out, err = io.StringIO(), io.StringIO()
    call_command("ciba_signing_key", stdout=out, stderr=err)
    assert (
        out.getvalue().startswith("-----BEGIN PRIVATE KEY-----") and "OIDC_RSA_PRIVATE_KEY" in err.getvalue()
    )


def test_a_client_registered_from_the_command_line_can_start_requests(client, alice):
    out = io.StringIO()
    call_command("ciba_client", "Corner Shop", "--mode", "poll", "--json", stdout=out)
    created = json.loads(out.getvalue())
    app = Application.objects.get(client_id=created["client_id"])
    assert app.is_ciba_client and app.client_secret != created["client_secret"]  # hashed at rest
    response = backchannel(client, app, created["client_secret"], "scope=openid&login_hint=alice")
    assert response.status_code == 200, response.content


def test_the_client_command_refuses_what_the_admin_form_refuses(db):
    with pytest.raises(CommandError, match="--backchannel-client-notification-endpoint: The ping mode needs"):
        call_command("ciba_client", "Kiosk", "--mode", "ping", stdout=io.StringIO())
    assert not Application.objects.exists()


# --- the device app's token: authorization code + PKCE -------------------------------------


@pytest.fixture
def device_app(settings):
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "com.example.bank"],
    }
    out = io.StringIO()
    call_command("ciba_device_client", "--redirect-uri", REDIRECT, "--json", stdout=out)
    return Application.objects.get(client_id=json.loads(out.getvalue())["client_id"])


def sign_in_with_pkce(http, app, scope="openid ciba:consent"):
    """What a native app does: the system browser signs the user in; the app swaps the code."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    response = http.get(
        "/o/authorize/",
        {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 302, response.content
    query = parse_qs(urlsplit(response["Location"]).query)
    if "code" not in query:
        return query
    token = http.post(
        "/o/token/",
        {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "client_id": app.client_id,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, token.content
    return token.json()


def test_the_device_app_gets_a_consent_token_and_approves_with_it(client, alice, make_client, device_app):
    assert (
        device_app.client_type == "public" and ConsentClient.objects.filter(application=device_app).exists()
    )
    kiosk, secret = make_client("poll")
    auth_req_id = backchannel(client, kiosk, secret, "scope=openid&login_hint=alice").json()["auth_req_id"]
    browser = Client()
    browser.force_login(alice)
    tokens = sign_in_with_pkce(browser, device_app)
    assert "ciba:consent" in tokens["scope"].split()
    phone = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access_token']}"}
    assert [r["auth_req_id"] for r in Client().get("/o/ciba/requests/", **phone).json()] == [auth_req_id]
    assert Client().post(f"/o/ciba/requests/{auth_req_id}/approve/", **phone).status_code == 200


def test_an_app_the_site_did_not_designate_cannot_obtain_the_consent_scope(alice, device_app):
    ConsentClient.objects.filter(application=device_app).delete()  # any other app a user might authorise
    browser = Client()
    browser.force_login(alice)
    refused = sign_in_with_pkce(browser, device_app)
    assert refused["error"] == ["invalid_scope"]


def test_a_consent_token_of_an_app_no_longer_designated_stops_working(alice, device_app):
    browser = Client()
    browser.force_login(alice)
    phone = {"HTTP_AUTHORIZATION": f"Bearer {sign_in_with_pkce(browser, device_app)['access_token']}"}
    assert Client().get("/o/ciba/requests/", **phone).status_code == 200
    ConsentClient.objects.filter(application=device_app).delete()
    assert Client().get("/o/ciba/requests/", **phone).status_code == 403
    assert get_access_token_model().objects.filter(application=device_app).exists()  # refused, not revoked


# --- the admin leads to a working client ---------------------------------------------------


@override_settings(CIBA={"DELIVERY_MODES": ["poll", "ping"]})
def test_the_admin_offers_only_supported_modes_and_an_empty_jwks_box(admin_client):
    page = admin_client.get("/admin/ciba/application/add/").content.decode()
    assert 'value="push"' not in page and 'value="ping"' in page
    assert ">null</textarea>" not in page


def test_an_http_endpoint_error_says_how_to_allow_it_in_development(db):
    from django.core.exceptions import ValidationError

    from ciba.outbound import validate_outbound_url

    with override_settings(CIBA={"CALLBACK_ALLOW_HTTP": False}), pytest.raises(ValidationError) as exc:
        validate_outbound_url("http://kiosk.example.com/cb")
    assert 'CIBA["CALLBACK_ALLOW_HTTP"]' in exc.value.messages[0]
