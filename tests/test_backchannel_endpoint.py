"""Starting a CIBA request at the backchannel authentication endpoint (CIBA §7, §13)."""

import logging

import pytest
from django.test import override_settings

from ciba.models import AuthenticationRequest
from tests.conftest import basic_auth

URL = "/o/backchannel-authentication/"
FORM = "application/x-www-form-urlencoded"


def post(client, body, auth=None, content_type=FORM):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.post(URL, body, content_type=content_type, **headers)


@pytest.fixture
def poll_client(make_client):
    return make_client("poll")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code
    assert set(body) <= {"error", "error_description", "error_uri"}
    return body


def test_a_valid_request_is_acknowledged_and_stored(client, alice, poll_client):
    app, secret = poll_client
    response = post(
        client,
        "scope=openid+profile&login_hint=alice&binding_message=W4SCT",
        basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"}
    assert body["expires_in"] == 300 and body["interval"] == 5
    ar = AuthenticationRequest.objects.get(auth_req_id=body["auth_req_id"])
    assert (ar.client, ar.user, ar.scope, ar.binding_message, ar.state) == (
        app,
        alice,
        "openid profile",
        "W4SCT",
        "pending",
    )


def test_all_optional_parameters_round_trip_into_the_stored_row(client, alice, make_client):
    app, secret = make_client("ping")
    response = post(
        client,
        "scope=openid+email&login_hint=alice%40example.com&binding_message=Pay+%E2%82%AC12+at+Shop"
        "&acr_values=urn%3Aacr%3Ahigh+urn%3Aacr%3Alow&requested_expiry=120&client_notification_token=tok-123.abc",
        basic_auth(app.client_id, secret),
    )
    body = response.json()
    ar = AuthenticationRequest.objects.get(auth_req_id=body["auth_req_id"])
    assert body["expires_in"] == 120
    assert ar.user == alice and ar.hint_kind == "login_hint"
    assert ar.scope == "openid email"
    assert ar.binding_message == "Pay €12 at Shop"
    assert ar.acr_values == "urn:acr:high urn:acr:low"
    assert ar.requested_expiry == 120
    assert ar.client_notification_token == "tok-123.abc"
    assert 119 <= (ar.expires_at - ar.created_at).total_seconds() <= 120


def test_client_secret_post_clients_authenticate_in_the_body(client, alice, make_client):
    app, secret = make_client("poll", token_endpoint_auth_method="client_secret_post")
    ok = post(client, f"scope=openid&login_hint=alice&client_id={app.client_id}&client_secret={secret}")
    assert ok.status_code == 200
    wrong_method = post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, secret))
    assert_error(wrong_method, 401, "invalid_client")


@pytest.mark.parametrize(
    "auth",
    [None, "Basic bm90LWJhc2U2NA===", "Basic " + "dW5rbm93bjpzZWNyZXQ="],
)
def test_unauthenticated_clients_get_401_invalid_client(client, alice, auth):
    response = post(client, "scope=openid&login_hint=alice", auth)
    assert_error(response, 401, "invalid_client")
    # RFC 6749 §5.2: the Basic challenge answers a client that used Basic, and only such a one.
    if auth is None:
        assert "WWW-Authenticate" not in response
    else:
        assert response["WWW-Authenticate"].startswith("Basic")


def test_a_wrong_secret_is_invalid_client(client, alice, poll_client):
    app, _ = poll_client
    assert_error(
        post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, "wrong")),
        401,
        "invalid_client",
    )


def test_a_client_not_registered_for_ciba_is_unauthorized(client, alice, make_client):
    app, secret = make_client("", authorization_grant_type="client-credentials")
    assert_error(
        post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, secret)),
        400,
        "unauthorized_client",
    )


@pytest.mark.parametrize(
    "body, status, code",
    [
        ("login_hint=alice", 400, "invalid_request"),  # scope (with openid) is REQUIRED
        ("scope=profile&login_hint=alice", 400, "invalid_request"),
        ("scope=openid+launch_missiles&login_hint=alice", 400, "invalid_scope"),
        ("scope=openid", 400, "invalid_request"),
        ("scope=openid&login_hint=alice&id_token_hint=x.y.z", 400, "invalid_request"),
        ("scope=openid&login_hint=alice&login_hint=bob", 400, "invalid_request"),
        ("scope=openid&login_hint=nobody", 400, "unknown_user_id"),
        ("scope=openid&login_hint=alice&requested_expiry=0", 400, "invalid_request"),
        ("scope=openid&login_hint=alice&requested_expiry=-5", 400, "invalid_request"),
        ("scope=openid&login_hint=alice&requested_expiry=ten", 400, "invalid_request"),
        ("scope=openid&login_hint=alice&binding_message=", 400, "invalid_binding_message"),
        ("scope=openid&login_hint=alice&binding_message=a%0Ab", 400, "invalid_binding_message"),
        ("scope=openid&login_hint=alice&binding_message=pay%E2%80%AEevil", 400, "invalid_binding_message"),
        ("scope=openid&login_hint=alice&binding_message=" + "x" * 65, 400, "invalid_binding_message"),
        ("scope=openid&login_hint=alice&acr_values=a%00b", 400, "invalid_request"),
    ],
)
def test_bad_parameters_get_the_spec_error(client, alice, poll_client, body, status, code):
    app, secret = poll_client
    assert_error(post(client, body, basic_auth(app.client_id, secret)), status, code)
    assert not AuthenticationRequest.objects.exists()


def test_scope_order_does_not_matter(client, alice, poll_client):
    app, secret = poll_client
    assert (
        post(client, "scope=profile+openid&login_hint=alice", basic_auth(app.client_id, secret)).status_code
        == 200
    )


def test_requested_expiry_is_capped_by_settings(client, alice, poll_client):
    app, secret = poll_client
    body = post(
        client, "scope=openid&login_hint=alice&requested_expiry=999999", basic_auth(app.client_id, secret)
    ).json()
    assert body["expires_in"] == 1800


def test_an_inactive_user_is_unknown(client, alice, poll_client):
    alice.is_active = False
    alice.save()
    app, secret = poll_client
    assert_error(
        post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, secret)),
        400,
        "unknown_user_id",
    )


@pytest.mark.parametrize(
    "token, ok",
    [("", False), ("x" * 1025, False), ("has space", False), ("x" * 1024, True), ("abc-._~+/==", True)],
)
def test_ping_and_push_clients_must_send_a_valid_notification_token(client, alice, make_client, token, ok):
    app, secret = make_client("push")
    body = "scope=openid&login_hint=alice" + (
        f"&client_notification_token={token.replace('+', '%2B')}" if token else ""
    )
    response = post(client, body, basic_auth(app.client_id, secret))
    if ok:
        assert response.status_code == 200
        assert "interval" not in response.json()  # push clients do not poll (§7.3)
    else:
        assert_error(response, 400, "invalid_request")


def test_a_poll_clients_notification_token_is_ignored(client, alice, poll_client):
    app, secret = poll_client
    body = post(
        client,
        "scope=openid&login_hint=alice&client_notification_token=abc",
        basic_auth(app.client_id, secret),
    ).json()
    assert AuthenticationRequest.objects.get(auth_req_id=body["auth_req_id"]).client_notification_token == ""


@override_settings(CIBA={"BINDING_MESSAGE_REQUIRED": True})
def test_a_required_binding_message_must_be_sent(client, alice, poll_client):
    app, secret = poll_client
    assert_error(
        post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, secret)),
        400,
        "invalid_binding_message",
    )


def test_a_client_that_registered_a_signing_alg_may_not_send_unsigned_requests(client, alice, make_client):
    from tests.test_client_registration import RSA_PUBLIC_JWK

    app, secret = make_client(
        "poll", backchannel_authentication_request_signing_alg="RS256", jwks={"keys": [RSA_PUBLIC_JWK]}
    )
    body = assert_error(
        post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, secret)),
        400,
        "invalid_request",
    )
    assert "signed" in body["error_description"]


def test_only_form_encoded_posts_are_accepted(client, alice, poll_client):
    app, secret = poll_client
    auth = basic_auth(app.client_id, secret)
    assert_error(
        post(client, '{"scope": "openid"}', auth, content_type="application/json"), 400, "invalid_request"
    )
    response = client.get(URL, HTTP_AUTHORIZATION=auth)
    assert_error(response, 405, "invalid_request")


def test_the_device_notification_runs_after_commit_and_logs_no_secrets(
    client, alice, make_client, caplog, django_capture_on_commit_callbacks
):
    app, secret = make_client("ping")
    with caplog.at_level(logging.INFO, logger="ciba"), django_capture_on_commit_callbacks(execute=True):
        body = post(
            client,
            "scope=openid&login_hint=alice&binding_message=W4SCT&client_notification_token=nt-secret",
            basic_auth(app.client_id, secret),
        ).json()
    assert "W4SCT" in caplog.text
    assert body["auth_req_id"] not in caplog.text
    assert "nt-secret" not in caplog.text


@override_settings(CIBA={"BACKCHANNEL_THROTTLE_RATE": "2/minute"})
def test_each_client_is_throttled_on_its_own_in_the_oauth_shape(client, alice, make_client):
    from django.core.cache import cache

    cache.clear()
    app, secret = make_client("poll")
    other, other_secret = make_client("poll")
    for _ in range(2):
        assert (
            post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, secret)).status_code
            == 200
        )
    response = post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, secret))
    body = assert_error(response, 429, "access_denied")
    assert "error_description" in body
    assert int(response["Retry-After"]) > 0
    assert (
        post(client, "scope=openid&login_hint=alice", basic_auth(other.client_id, other_secret)).status_code
        == 200
    )


USER_CODE_SETTINGS = {
    "USER_CODE_SUPPORTED": True,
    "USER_CODE_VERIFIER_CLASS": "tests.backends.PinUserCodeVerifier",
    "CALLBACK_ALLOW_HTTP": True,
    "CALLBACK_ALLOW_PRIVATE_NETWORKS": True,
}


@override_settings(CIBA=USER_CODE_SETTINGS)
@pytest.mark.parametrize(
    "extra, status, code",
    [
        ("", 400, "missing_user_code"),
        ("&user_code=0000", 400, "invalid_user_code"),
        ("&user_code=pin-alice", 200, None),
    ],
)
def test_user_codes_are_required_and_checked_for_clients_that_registered_them(
    client, alice, make_client, extra, status, code
):
    app, secret = make_client("poll", backchannel_user_code_parameter=True)
    response = post(client, "scope=openid&login_hint=alice" + extra, basic_auth(app.client_id, secret))
    if code:
        assert_error(response, status, code)
    else:
        assert response.status_code == 200


@override_settings(CIBA=USER_CODE_SETTINGS)
def test_clients_that_did_not_register_user_codes_need_none(client, alice, make_client):
    app, secret = make_client("poll")
    assert post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, secret)).status_code == 200


@override_settings(CIBA={"REQUEST_POLICY_CLASS": "tests.backends.NoBobPolicy"})
def test_a_site_policy_can_deny_before_any_user_interaction(client, alice, make_client):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("bob")
    app, secret = make_client("poll")
    assert_error(
        post(client, "scope=openid&login_hint=bob", basic_auth(app.client_id, secret)), 403, "access_denied"
    )
    assert post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, secret)).status_code == 200


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "text/html;q=1, application/json;q=0.1"])
def test_the_answer_is_json_whatever_the_accept_header_says(client, alice, make_client, accept):
    app, secret = make_client("poll")
    headers = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret), "HTTP_ACCEPT": accept}

    started = client.post(
        "/o/backchannel-authentication/", "scope=openid&login_hint=alice", content_type=FORM, **headers
    )
    refused = client.post("/o/backchannel-authentication/", "scope=openid", content_type=FORM, **headers)

    assert started.status_code == 200, started.content
    assert started["Content-Type"] == "application/json"
    assert set(started.json()) == {"auth_req_id", "expires_in", "interval"}
    assert refused.status_code == 400
    assert refused["Content-Type"] == "application/json"
    assert refused.json()["error"] == "invalid_request"
