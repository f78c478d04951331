"""The consent API's block list (issue 27): the user reviews the clients they blocked and lifts
a block; nobody sees or lifts another user's."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from ciba.models import ClientBlock
from tests.conftest import start_request
from tests.protocol import consent_bearer as bearer

API = "/o/ciba/blocks/"


@pytest.fixture
def blocked(client, alice, make_client):
    app, secret = make_client("poll", name="Corner Shop")
    auth_req_id = start_request(client, app, secret, "scope=openid&login_hint=alice")
    reported = Client().post(
        f"/o/ciba/requests/{auth_req_id}/report/",
        {"block": True},
        content_type="application/json",
        **bearer(alice),
    )
    assert reported.status_code == 200
    return app, secret, auth_req_id


def test_the_user_lists_the_clients_they_blocked(alice, blocked):
    app, _, auth_req_id = blocked
    response = Client().get(API, **bearer(alice))
    assert response.status_code == 200
    (item,) = response.json()
    assert item["client_id"] == app.client_id and item["client_name"] == "Corner Shop"
    assert item["reported_request"] == auth_req_id and item["created_at"]


def test_unblocking_lets_the_client_ask_again(client, alice, blocked):
    app, secret, _ = blocked
    response = Client().delete(f"{API}{app.client_id}/", **bearer(alice))
    assert response.status_code == 204
    assert not ClientBlock.objects.exists()
    assert Client().get(API, **bearer(alice)).json() == []
    assert start_request(client, app, secret, "scope=openid&login_hint=alice")


def test_another_users_blocks_are_neither_listed_nor_lifted(alice, blocked):
    app, _, _ = blocked
    bob = get_user_model().objects.create_user("bob", "bob@example.com", "pw")
    assert Client().get(API, **bearer(bob)).json() == []
    assert Client().delete(f"{API}{app.client_id}/", **bearer(bob)).status_code == 404
    assert ClientBlock.objects.filter(user=alice).exists()


def test_an_unknown_client_is_404_and_the_api_needs_the_user(alice, blocked):
    assert Client().delete(f"{API}no-such-client/", **bearer(alice)).status_code == 404
    assert Client().get(API).status_code in (401, 403)


def test_the_request_json_says_when_it_was_reported(alice, blocked):
    _, _, auth_req_id = blocked
    body = Client().get(f"/o/ciba/requests/{auth_req_id}/", **bearer(alice)).json()
    assert body["reported_at"] and body["state"] == "denied" and body["cancel_reason"] == ""


def test_a_block_of_a_deleted_client_goes_with_it(alice, blocked):
    app, _, _ = blocked
    app.delete()
    assert Client().get(API, **bearer(alice)).json() == []
