"""Token introspection (RFC 7662): only the resource servers the site designated may ask, and a
token the resource side would refuse is never reported active."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model

from ciba import designations
from ciba.models import ResourceServer
from tests.conftest import basic_auth
from tests.protocol import consent_bearer, oauth_error

Application = get_application_model()
AccessToken = get_access_token_model()
URL = "/o/introspect/"


def application(name: str, *, client_type: str = "confidential", user=None) -> tuple[object, str]:
    secret = secrets.token_urlsafe(32)
    app = Application.objects.create(
        name=name,
        user=user,
        client_type=client_type,
        authorization_grant_type="client-credentials",
        client_secret=secret,
    )
    return app, secret


@pytest.fixture
def resource_server(db):
    app, secret = application("Accounts API")
    designations.designate_resource_server(app)
    return app, secret


def access_token(user, *, application=None, scope="openid profile") -> str:
    value = uuid.uuid4().hex
    AccessToken.objects.create(
        user=user,
        application=application,
        token=value,
        scope=scope,
        expires=timezone.now() + timedelta(hours=1),
    )
    return value


def introspect(caller: tuple[object, str] | None, token: str, **headers: str):
    if caller is not None:
        app, secret = caller
        headers.setdefault("HTTP_AUTHORIZATION", basic_auth(app.client_id, secret))
    return Client().post(URL, {"token": token}, **headers)


def test_a_designated_resource_server_learns_who_a_token_belongs_to(alice, resource_server):
    token = access_token(alice)
    body = introspect(resource_server, token).json()
    assert body["active"] is True
    assert body["username"] == "alice" and body["scope"] == "openid profile"
    assert body["token_type"] == "Bearer"


def test_an_app_a_user_registered_cannot_read_another_users_consent_token(alice, resource_server):
    bob = type(alice).objects.create_user("bob", "bob@example.com", "bob-password")
    own_app = application("Bob's app", user=bob)  # as DOT's self-service pages create it
    consent_token = consent_bearer(alice)["HTTP_AUTHORIZATION"].split()[1]
    response = introspect(own_app, consent_token)
    body = oauth_error(response, 403, "unauthorized_client")
    assert "alice" not in response.content.decode() and "active" not in body


@pytest.mark.parametrize("credentials", ["none", "wrong secret", "unknown client"])
def test_a_caller_that_does_not_authenticate_gets_401_invalid_client(alice, resource_server, credentials):
    app, secret = resource_server
    headers = {
        "none": {},
        "wrong secret": {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret + "x")},
        "unknown client": {"HTTP_AUTHORIZATION": basic_auth("nobody", secret)},
    }[credentials]
    response = introspect(None, access_token(alice), **headers)
    oauth_error(response, 401, "invalid_client")
    # RFC 6749 §5.2: the Basic challenge answers a caller that used Basic, and only such a one.
    if credentials == "none":
        assert "WWW-Authenticate" not in response
    else:
        assert response["WWW-Authenticate"].startswith("Basic")


def test_repeated_wrong_secrets_are_refused_with_429_not_a_server_error(alice, resource_server):
    app, secret = resource_server
    statuses = [
        introspect(None, "x", HTTP_AUTHORIZATION=basic_auth(app.client_id, f"wrong-{n}")).status_code
        for n in range(12)
    ]
    assert set(statuses) <= {401, 429} and 429 in statuses, statuses
    assert introspect(None, "x", HTTP_AUTHORIZATION=basic_auth(app.client_id, "wrong"))["Retry-After"]


def test_removing_the_designation_refuses_the_resource_server_at_once(alice, resource_server):
    token = access_token(alice)
    assert introspect(resource_server, token).json()["active"] is True
    ResourceServer.objects.all().delete()
    oauth_error(introspect(resource_server, token), 403, "unauthorized_client")


def test_a_deactivated_users_token_is_inactive_as_userinfo_refuses_it(alice, resource_server):
    token = access_token(alice, scope="openid")
    assert Client().get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert Client().get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code in (401, 403)
    assert introspect(resource_server, token).json() == {"active": False}


def test_a_clients_own_token_without_a_user_stays_active(db, resource_server):
    app, _ = application("Batch job")
    token = access_token(None, application=app, scope="read")
    body = introspect(resource_server, token).json()
    assert body["active"] is True and body["client_id"] == app.client_id


def test_a_resource_servers_token_with_the_introspection_scope_may_introspect(alice, resource_server):
    app, _ = resource_server
    caller = access_token(None, application=app, scope="introspection")
    response = introspect(None, access_token(alice), HTTP_AUTHORIZATION=f"Bearer {caller}")
    assert response.json()["active"] is True


def test_another_apps_token_with_the_introspection_scope_gets_403_insufficient_scope(alice, db):
    app, _ = application("Someone's app", user=alice)
    caller = access_token(alice, application=app, scope="introspection")
    response = introspect(None, access_token(alice), HTTP_AUTHORIZATION=f"Bearer {caller}")
    oauth_error(response, 403, "insufficient_scope")
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]


def test_an_invalid_bearer_token_gets_401_invalid_token(alice):
    response = introspect(None, access_token(alice), HTTP_AUTHORIZATION="Bearer not-a-token")
    oauth_error(response, 401, "invalid_token")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_a_public_client_cannot_be_designated_a_resource_server(admin_client, db):
    app, _ = application("Phone app", client_type="public")
    response = admin_client.post("/admin/ciba/resourceserver/add/", {"application": app.pk})
    assert response.status_code == 200 and "confidential" in response.content.decode()
    assert not ResourceServer.objects.exists()
    assert not designations.is_resource_server(app)


def test_staff_designate_a_resource_server_in_the_admin(admin_client, alice):
    app, secret = application("Orders API")
    oauth_error(introspect((app, secret), access_token(alice)), 403, "unauthorized_client")
    response = admin_client.post("/admin/ciba/resourceserver/add/", {"application": app.pk}, follow=True)
    assert response.status_code == 200
    assert introspect((app, secret), access_token(alice)).json()["active"] is True


@pytest.mark.parametrize(
    ("body", "authorization", "status"),
    [
        ("token=x&client_id=a%00b&client_secret=y", "", 400),
        ("token=x&client_id=a&client_id=b&client_secret=y", "", 400),
        ("token=x", "Basic !!!!", 401),
        ("token=x", "Basic " + "QQ==" * 5000, 401),
        ("token=x&client_assertion_type=x&client_assertion=a.b.c", "", 401),
        ("token=" + "x" * 100_000, "Bearer " + "y" * 5000, 401),
    ],
)
def test_hostile_introspection_requests_get_an_oauth_error_never_a_server_error(
    db, resource_server, body, authorization, status
):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = Client().post(URL, body, content_type="application/x-www-form-urlencoded", **headers)
    assert response.status_code == status, response.content
    assert response.json()["error"]


def test_a_resource_server_authenticates_with_the_method_it_registered(alice, db):
    from tests.keys import assertion_claims, public_jwk, rsa_key, sign

    key = rsa_key()
    app, secret = application("Payments API")
    app.token_endpoint_auth_method = "private_key_jwt"
    app.token_endpoint_auth_signing_alg = "PS256"
    app.jwks = {"keys": [public_jwk(key, "k1")]}
    app.save()
    designations.designate_resource_server(app)
    assertion = sign(assertion_claims(app.client_id, "http://testserver/o"), key, "PS256", "k1")
    response = Client().post(
        URL,
        {
            "token": access_token(alice),
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert response.json()["active"] is True
    oauth_error(introspect((app, secret), access_token(alice)), 401, "invalid_client")  # not its method


def test_under_fapi_a_resource_server_cannot_introspect_with_a_client_secret(
    alice, resource_server, settings
):
    settings.CIBA = {**settings.CIBA, "PROFILE": "fapi-ciba"}
    oauth_error(introspect(resource_server, access_token(alice)), 401, "invalid_client")
