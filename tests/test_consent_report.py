"""The consent API's report action (issue 27): "I did not ask for this", optionally blocking."""

import pytest
from django.test import Client

from ciba.models import AuthenticationRequest, ClientBlock
from tests.conftest import basic_auth, start_request
from tests.protocol import consent_bearer as bearer

API = "/o/ciba/requests/"


@pytest.fixture
def kiosk_request(client, alice, make_client):
    app, secret = make_client("poll", name="Corner Shop")
    return app, secret, start_request(client, app, secret, "scope=openid&login_hint=alice")


def report(user, auth_req_id, body):
    return Client().post(f"{API}{auth_req_id}/report/", body, content_type="application/json", **bearer(user))


def test_the_owner_reports_and_blocks_and_the_client_is_refused_afterwards(client, alice, kiosk_request):
    app, secret, auth_req_id = kiosk_request
    response = report(alice, auth_req_id, {"block": True})
    assert response.status_code == 200 and response.json()["state"] == "denied"
    ar = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    assert ar.reported_at is not None
    assert ClientBlock.objects.filter(user=alice, client=app, reported_request=ar).exists()
    refused = client.post(
        "/o/backchannel-authentication/",
        "scope=openid&login_hint=alice",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied"


def test_without_block_only_the_report_is_recorded(alice, kiosk_request):
    _, _, auth_req_id = kiosk_request
    assert report(alice, auth_req_id, {}).status_code == 200
    assert not ClientBlock.objects.exists()


def test_block_must_be_a_boolean(alice, kiosk_request):
    _, _, auth_req_id = kiosk_request
    assert report(alice, auth_req_id, {"block": "yes"}).status_code == 400
    assert AuthenticationRequest.objects.get(auth_req_id=auth_req_id).state == "pending"


def test_a_finished_request_is_409_and_another_users_404(alice, kiosk_request, django_user_model):
    _, _, auth_req_id = kiosk_request
    bob = django_user_model.objects.create_user("bob")
    assert report(bob, auth_req_id, {"block": True}).status_code == 404
    assert report(alice, auth_req_id, {}).status_code == 200
    assert report(alice, auth_req_id, {"block": True}).status_code == 409
    assert not ClientBlock.objects.exists()
