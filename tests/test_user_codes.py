"""User codes (CIBA §7.1.2): a user sets one on their device, a client must relay it, a
client's wrong guesses lock it for that client alone, and it is never stored or shown in clear."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone

from ciba import user_codes
from ciba.models import AuthenticationRequest, UserCode, UserCodeFailures
from tests.protocol import backchannel, consent_bearer, oauth_error

CODES = {**settings.CIBA, "USER_CODE_SUPPORTED": True, "USER_CODE_MAX_FAILURES": 3}
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


def test_wrong_guesses_lock_the_code_for_the_guessing_client_even_against_the_right_one(
    client, alice, coded_client
):
    user_codes.set_user_code(alice, "7391-44")
    for _ in range(3):
        oauth_error(ask(client, coded_client, user_code="guess-1"), 400, "invalid_user_code")
    locked = oauth_error(ask(client, coded_client, user_code="7391-44"), 400, "invalid_user_code")
    assert "Too many wrong user codes" in locked["error_description"]
    assert AuthenticationRequest.objects.count() == 0
    UserCodeFailures.objects.filter(user=alice).update(window_ends=timezone.now() - timedelta(seconds=1))
    assert ask(client, coded_client, user_code="7391-44").status_code == 200


def test_a_strangers_wrong_guesses_do_not_lock_the_code_for_the_users_own_client(
    client, alice, coded_client, make_client
):
    user_codes.set_user_code(alice, "7391-44")
    with override_settings(CIBA=CODES):
        stranger = make_client("poll", backchannel_user_code_parameter=True)
    for _ in range(10):
        oauth_error(ask(client, stranger, user_code="guess-1"), 400, "invalid_user_code")
    oauth_error(ask(client, stranger, user_code="7391-44"), 400, "invalid_user_code")  # its own lock
    assert ask(client, coded_client, user_code="7391-44").status_code == 200


def test_a_right_code_forgives_earlier_mistakes(client, alice, coded_client):
    user_codes.set_user_code(alice, "7391-44")
    for _ in range(2):
        ask(client, coded_client, user_code="guess")
    assert ask(client, coded_client, user_code="7391-44").status_code == 200
    assert not UserCodeFailures.objects.filter(user=alice).exists()
    for _ in range(2):
        ask(client, coded_client, user_code="guess")
    assert ask(client, coded_client, user_code="7391-44").status_code == 200  # not locked after 4


@pytest.fixture
def hashes(monkeypatch):
    """Counts the password hashes user-code checks cost."""
    calls = []
    real = user_codes.check_password

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(user_codes, "check_password", counting)
    return calls


def test_a_flood_of_codes_for_a_user_without_one_costs_only_the_budgets_hashes(
    client, alice, coded_client, hashes
):
    answers = {ask(client, coded_client, user_code=f"guess-{n}").json()["error"] for n in range(20)}
    assert answers == {"invalid_user_code"}
    assert len(hashes) == CODES["USER_CODE_MAX_FAILURES"]  # then refused before any hash


def test_a_user_without_a_code_costs_and_answers_as_a_wrong_code_does(
    client, alice, coded_client, make_client, hashes
):
    bob = type(alice).objects.create_user("bob", "bob@example.com", "bob-password")
    user_codes.set_user_code(bob, "7391-44")
    answers = {}
    for user in ("alice", "bob"):
        before = len(hashes)
        responses = [ask(client, coded_client, login_hint=user, user_code="guess-1") for _ in range(5)]
        answers[user] = (
            [r.status_code for r in responses],
            [r.json() for r in responses],
            len(hashes) - before,
        )
    assert answers["alice"] == answers["bob"]


def test_a_client_over_its_own_budget_is_refused_for_every_user_and_only_it(
    client, alice, coded_client, make_client, hashes
):
    budget = {**CODES, "USER_CODE_MAX_FAILURES_PER_CLIENT": 4}
    users = [type(alice).objects.create_user(f"user{n}", f"user{n}@example.com", "pw") for n in range(6)]
    with override_settings(CIBA=budget):
        other = make_client("poll", backchannel_user_code_parameter=True)
        for user in users:
            user_codes.set_user_code(user, "7391-44")
        for user in users[:4]:
            app, secret = coded_client
            backchannel(
                client, app, secret, {"scope": "openid", "login_hint": user.username, "user_code": "x" * 6}
            )
        hashed = len(hashes)
        app, secret = coded_client
        refused = backchannel(
            client, app, secret, {"scope": "openid", "login_hint": "user5", "user_code": "7391-44"}
        )
        oauth_error(refused, 400, "invalid_user_code")
        assert len(hashes) == hashed  # refused before any hash
        app, secret = other
        accepted = backchannel(
            client, app, secret, {"scope": "openid", "login_hint": "user5", "user_code": "7391-44"}
        )
        assert accepted.status_code == 200, accepted.content


def test_removing_the_code_stops_clients_being_asked_for_it(client, alice, coded_client):
    user_codes.set_user_code(alice, "7391-44")
    assert Client().delete(URL, **consent_bearer(alice)).status_code == 204
    assert ask(client, coded_client).status_code == 200


def lock(user, app):
    for _ in range(5):
        user_codes.check_user_code(user, "guess-1", client=app)
    assert user_codes.verify(user, "5150-99", client=app) is user_codes.Verdict.REFUSED


def test_staff_set_and_unlock_a_users_code_without_seeing_it(admin_client, alice, make_client):
    app, _ = make_client("poll")
    response = admin_client.post(
        "/admin/ciba/usercode/add/", {"user": alice.pk, "new_code": "5150-99"}, follow=True
    )
    assert response.status_code == 200
    assert user_codes.check_user_code(alice, "5150-99", client=app)
    row = UserCode.objects.get(user=alice)
    lock(alice, app)
    assert Client().get(URL, **consent_bearer(alice)).json()["locked_until"] is not None
    admin_client.post("/admin/ciba/usercode/", {"action": "unlock", "_selected_action": [row.pk]})
    assert user_codes.check_user_code(alice, "5150-99", client=app)
    assert Client().get(URL, **consent_bearer(alice)).json()["locked_until"] is None
    page = admin_client.get(f"/admin/ciba/usercode/{row.pk}/change/").content.decode()
    assert row.code not in page and "5150-99" not in page


def test_view_only_staff_cannot_unlock_a_users_code(alice, make_client):
    from django.contrib.auth.models import Permission

    app, _ = make_client("poll")
    user_codes.set_user_code(alice, "5150-99")
    lock(alice, app)
    viewer = type(alice).objects.create_user("viewer", "viewer@example.com", "pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_usercode"))
    staff = Client()
    staff.force_login(viewer)
    page = staff.get("/admin/ciba/usercode/")
    assert page.status_code == 200 and b'value="unlock"' not in page.content
    row = UserCode.objects.get(user=alice)
    staff.post("/admin/ciba/usercode/", {"action": "unlock", "_selected_action": [row.pk]})
    assert user_codes.verify(alice, "5150-99", client=app) is user_codes.Verdict.REFUSED


@pytest.mark.parametrize("key", ["USER_CODE_MAX_FAILURES", "USER_CODE_MAX_FAILURES_PER_CLIENT"])
def test_a_user_code_budget_that_is_not_a_positive_number_is_reported_at_start_up(key):
    from ciba.checks import check_user_code_budgets

    with override_settings(CIBA={**settings.CIBA, key: 0}):
        assert [m.id for m in check_user_code_budgets()] == ["ciba.E042"]
    assert check_user_code_budgets() == []


def test_a_client_the_user_blocked_is_refused_before_its_codes_are_checked_or_counted(
    client, alice, coded_client
):
    from ciba import user_limits

    user_codes.set_user_code(alice, "7391-44")
    user_limits.block(alice, coded_client[0])
    for _ in range(5):  # more than its budget of wrong codes: none is counted
        oauth_error(ask(client, coded_client, user_code="guess-1"), 403, "access_denied")
    assert not UserCodeFailures.objects.exists()
    user_limits.unblock(alice, coded_client[0])
    assert ask(client, coded_client, user_code="7391-44").status_code == 200
