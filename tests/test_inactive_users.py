"""A deactivated user gets nothing more: their device's tokens approve nothing, and requests
they approved before yield no tokens, by poll, by push, or by refresh."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from ciba import services
from ciba.models import AuthenticationRequest, CallbackDelivery
from tests.protocol import backchannel, consent_bearer, oauth_error, poll, token

BODY = "scope=openid&login_hint=alice"


def deactivate(user):
    user.is_active = False
    user.save(update_fields=["is_active"])


def test_a_deactivated_users_consent_token_approves_nothing(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = backchannel(client, app, secret, BODY).json()["auth_req_id"]
    phone = consent_bearer(alice)
    deactivate(alice)
    response = Client().post(f"/o/ciba/requests/{auth_req_id}/approve/", **phone)
    assert response.status_code in (401, 403), response.content
    assert AuthenticationRequest.objects.get().state == "pending"


def test_a_request_approved_before_deactivation_yields_no_tokens(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = backchannel(client, app, secret, BODY).json()["auth_req_id"]
    services.approve(AuthenticationRequest.objects.get(), user=alice)
    deactivate(alice)
    oauth_error(poll(client, app, secret, auth_req_id), 400, "invalid_grant")
    assert AuthenticationRequest.objects.get().state == "approved"  # nothing was issued


def test_refresh_and_userinfo_stop_for_a_deactivated_user(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = backchannel(client, app, secret, BODY).json()["auth_req_id"]
    services.approve(AuthenticationRequest.objects.get(), user=alice)
    tokens = poll(client, app, secret, auth_req_id).json()
    userinfo = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access_token']}"}
    assert Client().get("/o/userinfo/", **userinfo).status_code == 200
    deactivate(alice)
    assert Client().get("/o/userinfo/", **userinfo).status_code in (401, 403)
    refreshed = token(
        client, app, secret, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    oauth_error(refreshed, 400, "invalid_grant")


@pytest.mark.django_db(transaction=True)
def test_a_push_client_is_told_access_denied_if_the_user_was_deactivated_before_minting(
    client, alice, make_client, recorder
):
    app, secret = make_client("push", backchannel_client_notification_endpoint=recorder.url("/cb"))
    params = "scope=openid&login_hint=alice&client_notification_token=nt-inactive"
    auth_req_id = backchannel(client, app, secret, params).json()["auth_req_id"]
    ar = AuthenticationRequest.objects.get()
    # Deactivated in the instant between the approval and the worker minting the tokens.
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)
    services.approve(ar, user=alice)
    body = json.loads(recorder.received[0][2])
    assert body == {
        "error": "access_denied",
        "error_description": "The end-user denied the authentication request.",
        "auth_req_id": auth_req_id,
    }
    assert CallbackDelivery.objects.get().state == "delivered"
    assert "access_token" not in body
