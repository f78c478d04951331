"""CIBA with every RFC 9700 gate of django-oauth-toolkit on: the poll flow, refresh, a push,
and the consent API all keep working (docs/integration.md recommends turning them on)."""

from __future__ import annotations

import pytest
from django.test import Client

from ciba import services
from ciba.models import AuthenticationRequest, CallbackDelivery
from example_project.env import RFC9700
from tests.protocol import backchannel, consent_bearer, poll, token


@pytest.fixture(autouse=True)
def rfc9700(settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, **RFC9700}


def test_the_poll_flow_and_refresh_work_with_every_rfc9700_gate_on(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = backchannel(client, app, secret, "scope=openid+profile&login_hint=alice").json()[
        "auth_req_id"
    ]
    approved = Client().post(f"/o/ciba/requests/{auth_req_id}/approve/", **consent_bearer(alice))
    assert approved.status_code == 200, approved.content
    tokens = poll(client, app, secret, auth_req_id)
    assert tokens.status_code == 200, tokens.content
    refreshed = token(
        client, app, secret, {"grant_type": "refresh_token", "refresh_token": tokens.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.content
    assert refreshed.json()["id_token"]


def test_a_push_is_minted_and_delivered_with_every_rfc9700_gate_on(
    client, alice, make_client, recorder, django_capture_on_commit_callbacks
):
    app, secret = make_client("push", backchannel_client_notification_endpoint=recorder.url("/cb"))
    params = "scope=openid&login_hint=alice&client_notification_token=nt-9700"
    auth_req_id = backchannel(client, app, secret, params).json()["auth_req_id"]
    ar = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(ar, user=alice)
    assert CallbackDelivery.objects.get().state == "delivered"
    assert b"access_token" in recorder.received[0][2]


def test_the_consent_api_refuses_a_token_in_the_query_string(alice):
    """RFC 9700 §4.3.2: a token in a URL ends up in logs and Referer headers."""
    bearer = consent_bearer(alice)["HTTP_AUTHORIZATION"].split()[1]
    in_query = Client().get(f"/o/ciba/requests/?access_token={bearer}")
    assert in_query.status_code == 401
    assert Client().get("/o/ciba/requests/", HTTP_AUTHORIZATION=f"Bearer {bearer}").status_code == 200


def test_the_password_grant_is_refused_alike_for_right_and_wrong_passwords(client, alice, db):
    """The example project has no use for ROPC (CIBA exists so that no client sees a password):
    with the RFC 9700 gate on, a password client learns nothing about the password."""
    from oauth2_provider.models import get_application_model

    app = get_application_model().objects.create(
        name="legacy ropc",
        client_type="public",
        authorization_grant_type="password",
        client_id="legacy-ropc-client",
    )
    answers = [
        client.post(
            "/o/token/",
            {"grant_type": "password", "username": "alice", "password": password, "client_id": app.client_id},
        )
        for password in ("alice-password", "wrong")
    ]
    assert [a.status_code for a in answers] == [answers[0].status_code] * 2
    assert answers[0].status_code == 400
    assert answers[0].json()["error"] == "unauthorized_client"
    assert answers[0].json() == answers[1].json()
    assert "access_token" not in answers[0].json()
