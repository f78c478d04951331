"""The authentication device's consent API: only the owner sees and decides (CIBA §8)."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.utils import timezone

from ciba import services
from ciba.models import AuthenticationRequest
from tests.conftest import start_request
from tests.protocol import consent_bearer as bearer

State = AuthenticationRequest.State
API = "/o/ciba/requests/"


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "bob-password")


def test_the_owner_sees_what_they_need_to_decide(alice, alices_request):
    body = Client().get(API, **bearer(alice)).json()
    assert [r["auth_req_id"] for r in body] == [alices_request.auth_req_id]
    item = body[0]
    assert item["client_name"] == "Corner Shop"
    assert item["binding_message"] == "W4SCT"
    assert item["acr_values"] == ["urn:acr:high"]
    assert item["scopes"] == [
        {"scope": "openid", "description": "Confirm your identity"},
        {"scope": "email", "description": "See your email address"},
    ]
    assert item["state"] == "pending" and item["expires_at"]
    assert "client_notification_token" not in item


def test_the_list_shows_only_pending_unexpired_requests_newest_first(
    client, alice, make_client, no_user_limits
):
    app, secret = make_client("poll")
    first, second, decided, expired = (start_request(client, app, secret) for _ in range(4))
    services.deny(AuthenticationRequest.objects.get(auth_req_id=decided), user=alice)
    AuthenticationRequest.objects.filter(auth_req_id=expired).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    AuthenticationRequest.objects.filter(auth_req_id=first).update(
        created_at=timezone.now() - timedelta(minutes=1)
    )
    listed = [r["auth_req_id"] for r in Client().get(API, **bearer(alice)).json()]
    assert listed == [second, first]


def test_someone_elses_request_is_404_even_with_a_valid_token(alice, bob, alices_request):
    bobs = Client()
    url = f"{API}{alices_request.auth_req_id}/"
    assert bobs.get(API, **bearer(bob)).json() == []
    assert bobs.get(url, **bearer(bob)).status_code == 404
    assert bobs.post(url + "approve/", **bearer(bob)).status_code == 404
    assert bobs.post(url + "deny/", **bearer(bob)).status_code == 404
    alices_request.refresh_from_db()
    assert alices_request.state == State.PENDING


def test_an_unknown_request_is_404(alice):
    assert Client().get(f"{API}no-such-request/", **bearer(alice)).status_code == 404


def test_approving_records_the_decision_and_answers_the_new_state(alice, alices_request):
    response = Client().post(
        f"{API}{alices_request.auth_req_id}/approve/",
        {"scopes": ["openid"]},
        content_type="application/json",
        **bearer(alice),
    )
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "approved"
    assert response.json()["granted_scopes"] == [{"scope": "openid", "description": "Confirm your identity"}]
    alices_request.refresh_from_db()
    assert alices_request.decided_by == alice and alices_request.granted_scope == "openid"


def test_a_second_decision_is_409_with_the_state_and_changes_nothing(alice, alices_request):
    api = Client()
    url = f"{API}{alices_request.auth_req_id}/"
    assert api.post(url + "deny/", **bearer(alice)).json()["state"] == "denied"
    response = api.post(url + "approve/", **bearer(alice))
    assert response.status_code == 409
    assert response.json()["state"] == "denied"
    alices_request.refresh_from_db()
    assert alices_request.state == State.DENIED


def test_an_expired_request_cannot_be_approved(alice, alices_request):
    AuthenticationRequest.objects.filter(pk=alices_request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = Client().post(f"{API}{alices_request.auth_req_id}/approve/", **bearer(alice))
    assert response.status_code == 409 and response.json()["state"] == "expired"
    assert AuthenticationRequest.objects.get(pk=alices_request.pk).decided_at is None


def test_scopes_that_were_not_requested_cannot_be_approved(alice, alices_request):
    response = Client().post(
        f"{API}{alices_request.auth_req_id}/approve/",
        {"scopes": ["openid", "payments"]},
        content_type="application/json",
        **bearer(alice),
    )
    assert response.status_code == 400
    assert AuthenticationRequest.objects.get(pk=alices_request.pk).state == State.PENDING


@pytest.mark.parametrize(
    "scope, expires_in, status",
    [("ciba:consent", 3600, 200), ("openid email", 3600, 403), ("ciba:consent", -10, 401)],
)
def test_bearer_tokens_need_the_consent_scope_and_must_be_live(
    alice, alices_request, scope, expires_in, status
):
    assert Client().get(API, **bearer(alice, scope=scope, expires_in=expires_in)).status_code == status


def test_anonymous_callers_are_refused(alices_request):
    assert Client().get(API).status_code in (401, 403)


def test_session_users_need_a_csrf_token_to_decide(alice, alices_request):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get(API).status_code == 200
    url = f"{API}{alices_request.auth_req_id}/approve/"
    assert browser.post(url).status_code == 403
    assert AuthenticationRequest.objects.get(pk=alices_request.pk).state == State.PENDING
    browser.get("/admin/login/")  # any page that sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    assert browser.post(url, HTTP_X_CSRFTOKEN=token).status_code == 200


@override_settings(CIBA={"APPROVAL_POLICY_CLASS": "tests.backends.SecondFactorForHighAcr"})
def test_an_approval_policy_can_require_step_up_and_claim_an_acr(alice, alices_request):
    api = Client()
    url = f"{API}{alices_request.auth_req_id}/approve/"
    response = api.post(url, **bearer(alice))
    assert response.status_code == 403 and response.json()["error"] == "step_up_required"
    assert AuthenticationRequest.objects.get(pk=alices_request.pk).state == State.PENDING
    response = api.post(url, HTTP_X_SECOND_FACTOR="123456", **bearer(alice))
    assert response.status_code == 200
    assert AuthenticationRequest.objects.get(pk=alices_request.pk).acr == "urn:acr:high"


def test_clients_cannot_request_the_consent_scope_through_ciba(client, alice, make_client):
    from tests.conftest import basic_auth

    app, secret = make_client("poll")
    response = client.post(
        "/o/backchannel-authentication/",
        "scope=openid+ciba%3Aconsent&login_hint=alice",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
