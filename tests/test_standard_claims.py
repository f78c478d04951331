"""The user's standard claims (OIDC Core §5.1), released by the scopes granted (§5.4), in the ID
token and at userinfo, from a mapping a site can replace (``CIBA["USER_CLAIMS_CLASS"]``)."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test import override_settings

from ciba import services
from ciba.claims import UserClaims
from ciba.constants import AUTH_REQ_ID_CLAIM
from ciba.models import AuthenticationRequest
from tests.conftest import start_request
from tests.protocol import poll

OIDC = "/o/.well-known/openid-configuration"


class SiteClaims(UserClaims):
    """A site's mapping: its own claim, a verified-email flag it keeps, and a protocol claim's
    name it must not be able to take."""

    claim_scopes = {
        **UserClaims.claim_scopes,
        "zoneinfo": "profile",
        "email_verified": "email",
        "aud": "profile",
    }

    def claims(self, user: Any) -> dict[str, Any]:
        return {**super().claims(user), "zoneinfo": "Europe/Paris", "email_verified": False, "aud": "evil"}


def site_claims() -> Any:
    return override_settings(CIBA={**settings.CIBA, "USER_CLAIMS_CLASS": f"{__name__}.SiteClaims"})


@pytest.fixture
def alice_liddell(alice: Any) -> Any:
    alice.first_name, alice.last_name = "Alice", "Liddell"
    alice.save()
    return alice


def tokens_for(client: Any, app: Any, secret: str, scope: str, granted: list[str] | None = None) -> dict:
    """Run the poll flow for ``scope`` (the user granting ``granted``, or all) and return the
    token response."""
    auth_req_id = start_request(client, app, secret, f"scope={scope.replace(' ', '+')}&login_hint=alice")
    ar = AuthenticationRequest.objects.select_related("user").get(auth_req_id=auth_req_id)
    services.approve(ar, user=ar.user, scopes=granted)
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    return response.json()


def id_token_claims(client: Any, app: Any, id_token: str) -> dict[str, Any]:
    """The ID token's claims, verified as a relying party verifies them (the published JWKS)."""
    discovery = client.get(OIDC).json()
    jwks = client.get(discovery["jwks_uri"].removeprefix("http://testserver")).json()
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    return jwt.decode(id_token, key, algorithms=["RS256"], audience=app.client_id, issuer=discovery["issuer"])


def userinfo(client: Any, access_token: str) -> dict[str, Any]:
    response = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    assert response.status_code == 200, response.content
    return response.json()


NAME_AND_EMAIL = {
    "name": "Alice Liddell",
    "given_name": "Alice",
    "family_name": "Liddell",
    "preferred_username": "alice",
    "email": "alice@example.com",
}


def test_profile_and_email_release_the_users_name_and_address(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    tokens = tokens_for(client, app, secret, "openid profile email")
    claims = id_token_claims(client, app, tokens["id_token"])
    assert {name: claims.get(name) for name in NAME_AND_EMAIL} == NAME_AND_EMAIL
    assert claims["sub"] == str(alice_liddell.pk)
    assert claims[AUTH_REQ_ID_CLAIM]
    assert userinfo(client, tokens["access_token"]) == {"sub": str(alice_liddell.pk), **NAME_AND_EMAIL}


def test_openid_alone_releases_only_the_subject(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    tokens = tokens_for(client, app, secret, "openid")
    claims = id_token_claims(client, app, tokens["id_token"])
    assert not set(NAME_AND_EMAIL) & set(claims)
    assert userinfo(client, tokens["access_token"]) == {"sub": str(alice_liddell.pk)}


def test_only_the_scopes_the_user_granted_release_claims(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    tokens = tokens_for(client, app, secret, "openid profile email", granted=["openid", "profile"])
    released = userinfo(client, tokens["access_token"])
    assert released["name"] == "Alice Liddell"
    assert "email" not in released
    assert "email" not in id_token_claims(client, app, tokens["id_token"])


def test_claims_the_user_has_no_value_for_are_left_out(client, alice, make_client):
    """Alice registered no name: no ``name: ""`` (OIDC Core §5.3.2 omits what is unknown)."""
    app, secret = make_client("poll")
    tokens = tokens_for(client, app, secret, "openid profile email")
    assert userinfo(client, tokens["access_token"]) == {
        "sub": str(alice.pk),
        "preferred_username": "alice",
        "email": "alice@example.com",
    }


def test_email_verified_is_not_claimed_by_default(client, alice_liddell, make_client):
    """Django does not record whether an address was verified: nothing claims it was."""
    app, secret = make_client("poll")
    tokens = tokens_for(client, app, secret, "openid email")
    assert "email_verified" not in userinfo(client, tokens["access_token"])
    assert "email_verified" not in client.get(OIDC).json()["claims_supported"]


def test_a_sites_mapping_adds_its_claims_but_cannot_take_a_protocol_claim(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    with site_claims():
        tokens = tokens_for(client, app, secret, "openid profile email")
        released = userinfo(client, tokens["access_token"])
        claims = id_token_claims(client, app, tokens["id_token"])  # verifies aud = the client
    assert released["zoneinfo"] == claims["zoneinfo"] == "Europe/Paris"
    assert released["email_verified"] is False  # false is a value, not an empty one
    assert "aud" not in released
    assert claims["aud"] == app.client_id


def test_push_mode_tokens_carry_the_same_claims(
    client, alice_liddell, make_client, recorder, django_capture_on_commit_callbacks
):
    app, secret = make_client("push", backchannel_client_notification_endpoint=recorder.url("/cb"))
    auth_req_id = start_request(
        client, app, secret, "scope=openid+profile+email&login_hint=alice&client_notification_token=t0k3n"
    )
    ar = AuthenticationRequest.objects.select_related("user").get(auth_req_id=auth_req_id)
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(ar, user=ar.user)
    ((_, _, body),) = recorder.received
    claims = id_token_claims(client, app, json.loads(body)["id_token"])
    assert {name: claims.get(name) for name in NAME_AND_EMAIL} == NAME_AND_EMAIL


def test_discovery_lists_the_claims_the_mapping_and_the_protocol_can_produce(client, db):
    supported = client.get(OIDC).json()["claims_supported"]
    assert {*NAME_AND_EMAIL, "sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "amr"} <= set(supported)
    assert AUTH_REQ_ID_CLAIM in supported
    assert "zoneinfo" not in supported
    with site_claims():
        supported = client.get(OIDC).json()["claims_supported"]
    assert {"zoneinfo", "email_verified"} <= set(supported)
    assert len(supported) == len(set(supported))


def test_a_relying_party_discovering_in_oauth_mode_finds_userinfo(client, db):
    """openid-client's ``oauth2`` discovery reads only the RFC 8414 document: it must name the
    userinfo endpoint (and the JWK Set) the OpenID document names."""
    oauth = client.get("/o/.well-known/oauth-authorization-server").json()
    openid = client.get(OIDC).json()
    assert oauth["userinfo_endpoint"] == openid["userinfo_endpoint"] == "http://testserver/o/userinfo/"
    assert oauth["jwks_uri"] == openid["jwks_uri"]
