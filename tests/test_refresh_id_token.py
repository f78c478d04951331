"""An ID token minted on refresh speaks of the original authentication (OIDC Core §12.2): the
``auth_time``, ``acr`` and ``amr`` of the user's approval of the CIBA request, while ``iat`` is
the refresh's own; and no ``nonce`` (no CIBA request carries one)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from ciba import services, signing
from ciba.constants import AUTH_REQ_ID_CLAIM, CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest
from tests.conftest import start_request
from tests.protocol import poll, token

OIDC = "/o/.well-known/openid-configuration"
#: How long before the first token request the user approved: a refresh comes later still.
APPROVED_AGO = timedelta(hours=2)


def claims_of(client: Any, app: Any, id_token: str) -> dict[str, Any]:
    """The ID token's claims, verified with the published JWKS, as a relying party reads them."""
    discovery = client.get(OIDC).json()
    jwks = client.get(discovery["jwks_uri"].removeprefix("http://testserver")).json()
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    return jwt.decode(id_token, key, algorithms=["RS256"], audience=app.client_id, issuer=discovery["issuer"])


def approve_long_ago(auth_req_id: str, **decision: Any) -> AuthenticationRequest:
    """The user authenticated ``APPROVED_AGO`` ago and approved a minute later (and signed in
    to the site at another time still): ``auth_time`` is the first, not the others."""
    ar = AuthenticationRequest.objects.select_related("user").get(auth_req_id=auth_req_id)
    services.approve(ar, user=ar.user, **decision)
    then = timezone.now() - APPROVED_AGO
    AuthenticationRequest.objects.filter(pk=ar.pk).update(
        auth_time=then, decided_at=then + timedelta(minutes=1)
    )
    ar.user.last_login = timezone.now() - timedelta(days=3)
    ar.user.save(update_fields=["last_login"])
    return AuthenticationRequest.objects.get(pk=ar.pk)


def refresh(client: Any, app: Any, secret: str, refresh_token: str, **params: str) -> dict[str, Any]:
    response = token(
        client, app, secret, {"grant_type": "refresh_token", "refresh_token": refresh_token, **params}
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def first_tokens(client: Any, alice: Any, make_client: Any) -> tuple[Any, str, AuthenticationRequest, dict]:
    """A poll client's first tokens, for a request approved with an acr and amr."""
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    ar = approve_long_ago(auth_req_id, acr="urn:acr:high", amr=["pwd", "hwk"])
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    return app, secret, ar, response.json()


def test_a_refreshed_id_token_keeps_the_original_auth_time_acr_and_amr(client, first_tokens):
    app, secret, ar, tokens = first_tokens
    first = claims_of(client, app, tokens["id_token"])
    assert first["auth_time"] == int(ar.auth_time.timestamp())

    refreshed = claims_of(client, app, refresh(client, app, secret, tokens["refresh_token"])["id_token"])
    assert refreshed["auth_time"] == first["auth_time"]
    assert (refreshed["acr"], refreshed["amr"]) == ("urn:acr:high", ["pwd", "hwk"])
    # iat is the refresh's own: issued now, hours after the user authenticated.
    assert refreshed["iat"] >= first["iat"] >= first["auth_time"] + APPROVED_AGO.total_seconds() - 5
    assert refreshed["jti"] != first["jti"]
    assert (refreshed["sub"], refreshed["iss"], refreshed["aud"]) == (
        first["sub"],
        first["iss"],
        first["aud"],
    )
    assert AUTH_REQ_ID_CLAIM not in refreshed


def test_the_original_authentication_survives_every_rotation(client, first_tokens):
    app, secret, ar, tokens = first_tokens
    for _ in range(3):
        tokens = refresh(client, app, secret, tokens["refresh_token"])
        claims = claims_of(client, app, tokens["id_token"])
        assert claims["auth_time"] == int(ar.auth_time.timestamp())
        assert claims["acr"] == "urn:acr:high"


def test_without_rotation_the_same_refresh_token_keeps_the_original_auth_time(client, alice, make_client):
    with override_settings(OAUTH2_PROVIDER={**settings.OAUTH2_PROVIDER, "ROTATE_REFRESH_TOKEN": False}):
        app, secret = make_client("poll")
        auth_req_id = start_request(client, app, secret)
        ar = approve_long_ago(auth_req_id)
        tokens = poll(client, app, secret, auth_req_id).json()
        for _ in range(2):
            again = refresh(client, app, secret, tokens["refresh_token"])
            assert again["refresh_token"] == tokens["refresh_token"]
            assert claims_of(client, app, again["id_token"])["auth_time"] == int(ar.auth_time.timestamp())


def test_refresh_keeps_the_auth_time_after_the_ciba_request_is_deleted(client, first_tokens):
    """``expire_ciba_requests --delete-finished-older-than`` deletes issued requests; their
    refresh tokens live on and still know when the user authenticated."""
    app, secret, ar, tokens = first_tokens
    assert services.delete_finished(older_than=timedelta(0), now=timezone.now() + timedelta(seconds=1)) == 1
    claims = claims_of(client, app, refresh(client, app, secret, tokens["refresh_token"])["id_token"])
    assert claims["auth_time"] == int(ar.auth_time.timestamp())


def test_pushed_tokens_refresh_with_the_original_auth_time(
    client, alice, make_client, recorder, django_capture_on_commit_callbacks
):
    app, secret = make_client("push", backchannel_client_notification_endpoint=recorder.url("/cb"))
    auth_req_id = start_request(
        client, app, secret, "scope=openid&login_hint=alice&client_notification_token=t0k"
    )
    ar = AuthenticationRequest.objects.select_related("user").get(auth_req_id=auth_req_id)
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(ar, user=ar.user, acr="urn:acr:push")
    ar.refresh_from_db()
    ((_, _, body),) = recorder.received
    pushed = json.loads(body)
    claims = claims_of(client, app, refresh(client, app, secret, pushed["refresh_token"])["id_token"])
    assert claims["auth_time"] == int(ar.auth_time.timestamp())
    assert claims["acr"] == "urn:acr:push"


def test_a_nonce_sent_to_the_token_endpoint_is_never_echoed(client, alice, make_client):
    """Only an authentication request carries a nonce; a CIBA request has none, so neither the
    CIBA grant's nor a refresh's ID token may carry one (relying parties refuse an unexpected
    nonce)."""
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approve_long_ago(auth_req_id)
    params = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id, "nonce": "n-0S6_WzA2Mj"}
    tokens = token(client, app, secret, params).json()
    assert "nonce" not in claims_of(client, app, tokens["id_token"])
    refreshed = refresh(client, app, secret, tokens["refresh_token"], nonce="n-0S6_WzA2Mj")
    assert "nonce" not in claims_of(client, app, refreshed["id_token"])


def test_a_client_signing_with_the_servers_key_set_gets_the_same_claims(client, alice, make_client):
    """``id_token_signed_response_alg`` clients' ID tokens are signed by ``ciba.signing``, the
    same claims through the same validator."""
    signing.generate_key("EC")  # the first EC key signs at once
    app, secret = make_client("poll", id_token_signed_response_alg="ES256")
    auth_req_id = start_request(client, app, secret)
    ar = approve_long_ago(auth_req_id, acr="urn:acr:high")
    tokens = poll(client, app, secret, auth_req_id).json()
    refreshed = refresh(client, app, secret, tokens["refresh_token"], nonce="abc")
    jwks = client.get("/o/.well-known/jwks.json").json()
    kid = jwt.get_unverified_header(refreshed["id_token"])["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    claims = jwt.decode(refreshed["id_token"], key, algorithms=["ES256"], audience=app.client_id)
    assert claims["auth_time"] == int(ar.auth_time.timestamp())
    assert claims["acr"] == "urn:acr:high"
    assert "nonce" not in claims


def test_the_access_token_is_linked_to_the_id_token_the_servers_key_set_signed(client, alice, make_client):
    """As DOT links its own: what revokes the ID token (RP-initiated logout with it as
    ``id_token_hint``, ``IDToken.revoke``) reaches the access token issued with it, on the
    first token response and on refresh."""
    from oauth2_provider.models import get_access_token_model

    signing.generate_key("EC")
    app, secret = make_client("poll", id_token_signed_response_alg="ES256")
    auth_req_id = start_request(client, app, secret)
    approve_long_ago(auth_req_id)

    def linked(answer: dict[str, Any]) -> bool:
        checksum = hashlib.sha256(answer["access_token"].encode()).hexdigest()
        access = get_access_token_model().objects.select_related("id_token").get(token_checksum=checksum)
        jti = jwt.decode(answer["id_token"], options={"verify_signature": False})["jti"]
        return access.id_token is not None and str(access.id_token.jti) == jti

    tokens = poll(client, app, secret, auth_req_id).json()
    assert linked(tokens)
    assert linked(refresh(client, app, secret, tokens["refresh_token"]))  # the first one is revoked
