"""The ``claims`` request parameter (OIDC Core §5.5) at the backchannel endpoint: what the client
asks for in the ID token is released on approval, within the scopes the client may have and
the user did not decline; a claim asked for with ``value``/``values`` is released only with
one of them; a ``sub`` naming another user is refused before anyone is asked; a malformed
request is ``invalid_request``; members §5.5 does not define are ignored, never stored."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from django.conf import settings
from django.test import override_settings
from oauth2_provider.scopes import SettingsScopes

from ciba import services
from ciba.claims import UserClaims
from ciba.models import AuthenticationRequest
from tests.conftest import basic_auth
from tests.keys import public_jwk, request_object_claims, rsa_key, sign
from tests.protocol import backchannel, oauth_error, poll

ISSUER = "http://testserver/o"
KEY = rsa_key()


class VerifiedEmailClaims(UserClaims):
    """A site that knows whether an address was verified (Alice's was)."""

    claim_scopes = {**UserClaims.claim_scopes, "email_verified": "email"}

    def claims(self, user: Any) -> dict[str, Any]:
        return {**super().claims(user), "email_verified": True}


def verified_email_claims() -> Any:
    return override_settings(CIBA={**settings.CIBA, "USER_CLAIMS_CLASS": f"{__name__}.VerifiedEmailClaims"})


@pytest.fixture
def alice_liddell(alice: Any) -> Any:
    alice.first_name, alice.last_name = "Alice", "Liddell"
    alice.save()
    return alice


def start(client: Any, app: Any, secret: str, claims: Any, scope: str = "openid") -> Any:
    text = claims if isinstance(claims, str) else json.dumps(claims)
    return backchannel(
        client, app, secret, urlencode({"scope": scope, "login_hint": "alice", "claims": text})
    )


def id_token_after_approval(
    client: Any, app: Any, secret: str, claims: Any, scope: str = "openid", granted: list[str] | None = None
) -> dict[str, Any]:
    """Ask for ``claims``, let the user approve (``granted`` scopes, or all), poll, and return
    the ID token's claims."""
    response = start(client, app, secret, claims, scope)
    assert response.status_code == 200, response.content
    ar = AuthenticationRequest.objects.select_related("user").get(auth_req_id=response.json()["auth_req_id"])
    services.approve(ar, user=ar.user, scopes=granted)
    tokens = poll(client, app, secret, ar.auth_req_id)
    assert tokens.status_code == 200, tokens.content
    return jwt.decode(tokens.json()["id_token"], options={"verify_signature": False})


def test_a_claim_requested_for_the_id_token_is_released_without_its_scope(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    claims = id_token_after_approval(client, app, secret, {"id_token": {"email": None, "given_name": None}})
    assert (claims["email"], claims["given_name"]) == ("alice@example.com", "Alice")
    assert "family_name" not in claims  # only what was asked for, with openid alone


def test_an_essential_claim_is_released_like_a_voluntary_one(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    claims = id_token_after_approval(client, app, secret, {"id_token": {"name": {"essential": True}}})
    assert claims["name"] == "Alice Liddell"


def test_a_claim_whose_scope_the_user_declined_is_not_released(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    claims = id_token_after_approval(
        client, app, secret, {"id_token": {"email": None}}, scope="openid email", granted=["openid"]
    )
    assert "email" not in claims


class NoEmailScopes(SettingsScopes):
    """A site whose clients may not be given the email scope."""

    def get_available_scopes(self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any):
        return [
            s for s in super().get_available_scopes(application, request, *args, **kwargs) if s != "email"
        ]


def test_a_claim_whose_scope_the_client_may_not_have_is_not_released(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    with override_settings(
        OAUTH2_PROVIDER={**settings.OAUTH2_PROVIDER, "SCOPES_BACKEND_CLASS": f"{__name__}.NoEmailScopes"}
    ):
        claims = id_token_after_approval(client, app, secret, {"id_token": {"email": None, "name": None}})
    assert "email" not in claims
    assert claims["name"] == "Alice Liddell"


def test_a_claim_requested_with_a_value_is_released_only_with_that_value(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    with verified_email_claims():
        matching = id_token_after_approval(
            client, app, secret, {"id_token": {"email_verified": {"value": True}}}
        )
        other = id_token_after_approval(
            client, app, secret, {"id_token": {"email": {"values": ["bob@example.com", "carol@example.com"]}}}
        )
    assert matching["email_verified"] is True
    assert "email" not in other


def test_a_claim_the_server_cannot_provide_is_left_out_without_an_error(client, alice_liddell, make_client):
    """OIDC Core §5.5.1: never an error for claims not returned, essential or not."""
    app, secret = make_client("poll")
    claims = id_token_after_approval(
        client, app, secret, {"id_token": {"phone_number": {"essential": True}, "urn:example:tier": None}}
    )
    assert "phone_number" not in claims and "urn:example:tier" not in claims


def test_a_claims_request_cannot_replace_what_the_protocol_asserts(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    claims = id_token_after_approval(
        client, app, secret, {"id_token": {"aud": {"value": "evil"}, "auth_time": None, "iss": None}}
    )
    assert claims["aud"] == app.client_id
    assert claims["iss"] == ISSUER
    assert isinstance(claims["auth_time"], int)


def test_the_userinfo_member_is_not_put_in_the_id_token(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    claims = id_token_after_approval(client, app, secret, {"userinfo": {"email": None}})
    assert "email" not in claims
    assert AuthenticationRequest.objects.get().claims == {"userinfo": {"email": None}}


def test_the_request_is_stored_normalised(client, alice, make_client):
    """§5.5: members the spec does not define are ignored (OIDC4IDA's ``purpose``, a site's
    top-level extension), so they are not stored either."""
    app, secret = make_client("poll")
    claims = {
        "id_token": {"email": {"essential": True, "purpose": "receipts"}, "name": None},
        "userinfo": {"given_name": {"values": ["Alice"]}},
        "sharing_duration": 7776000,
    }
    assert start(client, app, secret, claims).status_code == 200
    assert AuthenticationRequest.objects.get().claims == {
        "id_token": {"email": {"essential": True}, "name": None},
        "userinfo": {"given_name": {"values": ["Alice"]}},
    }


def test_a_signed_request_carries_the_claims_as_an_object(client, alice_liddell, make_client):
    app, secret = make_client(
        "poll", backchannel_authentication_request_signing_alg="PS256", jwks={"keys": [public_jwk(KEY, "k1")]}
    )
    request = sign(
        request_object_claims(app.client_id, ISSUER, claims={"id_token": {"email": None}}), KEY, "PS256", "k1"
    )
    response = backchannel(client, app, secret, {"request": request})
    assert response.status_code == 200, response.content
    ar = AuthenticationRequest.objects.get()
    assert ar.claims == {"id_token": {"email": None}}
    services.approve(ar, user=ar.user)
    token = poll(client, app, secret, ar.auth_req_id).json()["id_token"]
    assert jwt.decode(token, options={"verify_signature": False})["email"] == "alice@example.com"


def test_a_sub_naming_the_user_is_accepted(client, alice, make_client):
    app, secret = make_client("poll")
    response = start(client, app, secret, {"id_token": {"sub": {"value": str(alice.pk)}}})
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("wanted", [{"value": "someone-else"}, {"values": ["x", "y"]}])
def test_a_sub_naming_another_user_is_refused_before_anyone_is_asked(client, alice, make_client, wanted):
    """OIDC Core §5.5.1: never tokens about a different user than the one asked for."""
    app, secret = make_client("poll")
    oauth_error(start(client, app, secret, {"id_token": {"sub": wanted}}), 403, "access_denied")
    assert not AuthenticationRequest.objects.exists()


@pytest.mark.parametrize(
    "claims",
    [
        {"userinfo": []},
        {"userinfo": {"email": True}},
        {"id_token": {"email": "yes"}},
        {"id_token": {"email": {"essential": "true"}}},
        {"id_token": {"email": {"values": "alice@example.com"}}},
        {"id_token": {"bad name": None}},
        {"id_token": {"": None}},
        '{"id_token": {"email": null, "email": {"essential": true}}}',
        '{"id_token": {"email": {"value": NaN}}}',
        '{"id_token": {"email": {"value": "\\u0000"}}}',
        json.dumps({"id_token": {f"claim{n}": None for n in range(2000)}}),
        "[" * 40 + "]" * 40,
    ],
)
def test_a_malformed_claims_request_is_invalid_request(client, alice, make_client, claims):
    app, secret = make_client("poll")
    oauth_error(start(client, app, secret, claims), 400, "invalid_request")
    assert not AuthenticationRequest.objects.exists()


def test_a_push_client_gets_the_requested_claims_in_the_pushed_id_token(
    client, alice_liddell, make_client, recorder, django_capture_on_commit_callbacks
):
    """Push mode mints outside the token endpoint (``tokens.mint_for_push``): same release."""
    app, secret = make_client("push", backchannel_client_notification_endpoint=recorder.url("/cb"))
    response = backchannel(
        client,
        app,
        secret,
        {
            "scope": "openid",
            "login_hint": "alice",
            "client_notification_token": "nt-0123456789",
            "claims": json.dumps({"id_token": {"email": None}}),
        },
    )
    assert response.status_code == 200, response.content
    ar = AuthenticationRequest.objects.select_related("user").get()
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(ar, user=ar.user)
    ((_, _, body),) = recorder.received
    pushed = jwt.decode(json.loads(body)["id_token"], options={"verify_signature": False})
    assert pushed["email"] == "alice@example.com"


# --- the userinfo member (needs AccessTokenGrant.userinfo_claims, migration 0018) -------------


def tokens_after_approval(
    client: Any, app: Any, secret: str, claims: Any, scope: str = "openid", granted: list[str] | None = None
) -> dict[str, Any]:
    response = start(client, app, secret, claims, scope)
    assert response.status_code == 200, response.content
    ar = AuthenticationRequest.objects.select_related("user").get(auth_req_id=response.json()["auth_req_id"])
    services.approve(ar, user=ar.user, scopes=granted)
    tokens = poll(client, app, secret, ar.auth_req_id)
    assert tokens.status_code == 200, tokens.content
    return tokens.json()


def userinfo(client: Any, access_token: str) -> dict[str, Any]:
    response = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_claim_requested_for_userinfo_is_released_there(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    tokens = tokens_after_approval(client, app, secret, {"userinfo": {"email": None, "given_name": None}})
    assert userinfo(client, tokens["access_token"]) == {
        "sub": str(alice_liddell.pk),
        "email": "alice@example.com",
        "given_name": "Alice",
    }


def test_userinfo_releases_a_declined_scopes_claim_no_more_than_the_id_token(
    client, alice_liddell, make_client
):
    app, secret = make_client("poll")
    tokens = tokens_after_approval(
        client, app, secret, {"userinfo": {"email": None}}, scope="openid email", granted=["openid"]
    )
    assert "email" not in userinfo(client, tokens["access_token"])


def test_userinfo_honours_value_and_values(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    tokens = tokens_after_approval(
        client,
        app,
        secret,
        {"userinfo": {"email": {"value": "bob@example.com"}, "family_name": {"values": ["Liddell"]}}},
    )
    released = userinfo(client, tokens["access_token"])
    assert "email" not in released and released["family_name"] == "Liddell"


def test_a_refreshed_access_token_releases_the_same_claims_at_userinfo(client, alice_liddell, make_client):
    app, secret = make_client("poll")
    tokens = tokens_after_approval(client, app, secret, {"userinfo": {"email": None}})
    refreshed = client.post(
        "/o/token/",
        urlencode({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert refreshed.status_code == 200, refreshed.content
    assert userinfo(client, refreshed.json()["access_token"])["email"] == "alice@example.com"


def test_tokens_of_a_request_without_a_userinfo_member_release_only_their_scopes(
    client, alice_liddell, make_client
):
    app, secret = make_client("poll")
    tokens = tokens_after_approval(client, app, secret, {"id_token": {"email": None}})
    assert userinfo(client, tokens["access_token"]) == {"sub": str(alice_liddell.pk)}
