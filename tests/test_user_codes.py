"""User codes (CIBA §7.1.2): a user sets one on their device, a client must relay it, wrong
guesses lock it, and it is never stored or shown in clear."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from ciba import user_codes
from ciba.models import AuthenticationRequest, UserCode
from tests.protocol import backchannel, consent_bearer, oauth_error

CODES = {"USER_CODE_SUPPORTED": True, "USER_CODE_MAX_FAILURES": 3}
URL = "/o/ciba/user-code/"


@pytest.fixture
def coded_client(make_client):
    with override_settings(CIBA=CODES):
        yield make_client("poll", backchannel_user_code_parameter=True)


def ask(client, coded_client, **params):
    app, secret = coded_client
    with override_settings(CIBA=CODES):
        return backchannel(client, app, secret, {"scope": "openid", "login_hint": "alice", **params})


def test_discovery_says_user_codes_are_supported_when_they_are(client, db):
    with override_settings(CIBA=CODES):
        assert client.get("/o/.well-known/openid-configuration").json()[
            "backchannel_user_code_parameter_supported"
        ]


def test_the_user_sets_a_code_on_their_device_and_it_is_kept_hashed(alice):
    device = Client()
    assert device.get(URL, **consent_bearer(alice)).json()["is_set"] is False
    response = device.put(
        URL, {"user_code": "7391-44"}, content_type="application/json", **consent_bearer(alice)
    )
    assert response.status_code == 200 and response.json()["is_set"] is True
    assert "7391-44" not in response.content.decode()
    stored = UserCode.objects.get(user=alice).code
    assert "7391-44" not in stored and stored.startswith(("md5$", "pbkdf2_"))


@pytest.mark.parametrize("code", ["123", "x" * 65, "alice", "12\n3456"])
def test_a_code_the_user_may_not_choose_is_refused_with_the_reason(alice, code):
    response = Client().put(
        URL, {"user_code": code}, content_type="application/json", **consent_bearer(alice)
    )
    oauth_error(response, 400, "invalid_request")
    assert not UserCode.objects.exists()


def test_the_user_code_api_needs_the_users_own_credentials(alice):
    assert Client().put(URL, {"user_code": "7391-44"}, content_type="application/json").status_code in (
        401,
        403,
    )
    plain_token = consent_bearer(alice, scope="openid")
    assert Client().get(URL, **plain_token).status_code == 403


def test_a_client_must_relay_the_right_code_of_a_user_who_set_one(client, alice, coded_client):
    user_codes.set_user_code(alice, "7391-44")
    oauth_error(ask(client, coded_client), 400, "missing_user_code")
    oauth_error(ask(client, coded_client, user_code="0000-00"), 400, "invalid_user_code")
    assert ask(client, coded_client, user_code="7391-44").status_code == 200


def test_a_user_without_a_code_is_not_asked_for_one(client, alice, coded_client):
    assert ask(client, coded_client).status_code == 200
    oauth_error(ask(client, coded_client, user_code="anything"), 400, "invalid_user_code")


def test_wrong_guesses_lock_the_code_even_against_the_right_one(client, alice, coded_client):
    user_codes.set_user_code(alice, "7391-44")
    for _ in range(3):
        oauth_error(ask(client, coded_client, user_code="guess-1"), 400, "invalid_user_code")
    oauth_error(ask(client, coded_client, user_code="7391-44"), 400, "invalid_user_code")  # locked
    assert AuthenticationRequest.objects.count() == 0
    UserCode.objects.filter(user=alice).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert ask(client, coded_client, user_code="7391-44").status_code == 200


def test_a_right_code_forgives_earlier_mistakes(client, alice, coded_client):
    user_codes.set_user_code(alice, "7391-44")
    for _ in range(2):
        ask(client, coded_client, user_code="guess")
    assert ask(client, coded_client, user_code="7391-44").status_code == 200
    assert UserCode.objects.get(user=alice).failed_attempts == 0


def test_removing_the_code_stops_clients_being_asked_for_it(client, alice, coded_client):
    user_codes.set_user_code(alice, "7391-44")
    assert Client().delete(URL, **consent_bearer(alice)).status_code == 204
    assert ask(client, coded_client).status_code == 200


def test_staff_set_and_unlock_a_users_code_without_seeing_it(admin_client, alice):
    response = admin_client.post(
        "/admin/ciba/usercode/add/", {"user": alice.pk, "new_code": "5150-99"}, follow=True
    )
    assert response.status_code == 200
    assert user_codes.check_user_code(alice, "5150-99")
    row = UserCode.objects.get(user=alice)
    UserCode.objects.filter(pk=row.pk).update(locked_until=timezone.now() + timedelta(hours=1))
    admin_client.post("/admin/ciba/usercode/", {"action": "unlock", "_selected_action": [row.pk]})
    assert UserCode.objects.get(pk=row.pk).locked_until is None
    page = admin_client.get(f"/admin/ciba/usercode/{row.pk}/change/").content.decode()
    assert row.code not in page and "5150-99" not in page
