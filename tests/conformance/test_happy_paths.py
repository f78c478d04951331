"""The plan's flows that must succeed (or fail as the user or the clock decides)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from ciba.models import AuthenticationRequest
from tests.conformance.conftest import POTENTIALLY_BAD_BINDING_MESSAGE
from tests.integration.tls import presenting
from tests.protocol import consent_bearer, oauth_error


def test_fapi_ciba_id1(suite_clients, ciba_mode, alice):
    """Both clients, the whole flow each: acknowledgement, two pending polls, approval, tokens."""
    for suite in suite_clients(ciba_mode):
        suite.recorder.received.clear()
        auth_req_id = suite.start()
        suite.automated_approval(auth_req_id)
        suite.tokens(auth_req_id)


def test_fapi_ciba_id1_user_rejects_authentication(suite):
    auth_req_id = suite.start()
    suite.automated_approval(auth_req_id, "deny")
    if suite.app.backchannel_token_delivery_mode == "ping":
        suite.ping_received(auth_req_id)  # a denial is announced too
    oauth_error(suite.token(auth_req_id), 400, "access_denied")


def test_fapi_ciba_id1_multiple_call_to_token_endpoint(suite):
    auth_req_id = suite.start()
    for _ in range(20):  # back to back: pending or slow_down each time, never tokens
        suite.pending(suite.token(auth_req_id))
    assert suite.recorder.received == []  # nothing to announce: the user has not decided


def test_fapi_ciba_id1_auth_req_id_expired(suite):
    auth_req_id = suite.acknowledged(suite.backchannel(suite.request_object(requested_expiry=10)))
    assert AuthenticationRequest.objects.get(auth_req_id=auth_req_id).expires_in() <= 10
    AuthenticationRequest.objects.filter(auth_req_id=auth_req_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)  # the suite waits out the 10 s
    )
    oauth_error(suite.token(auth_req_id), 400, "expired_token")


def test_fapi_ciba_id1_ensure_authorization_request_with_binding_message_succeeds(suite):
    auth_req_id = suite.start(binding_message="1234")
    assert AuthenticationRequest.objects.get(auth_req_id=auth_req_id).binding_message == "1234"
    suite.automated_approval(auth_req_id)
    suite.tokens(auth_req_id)


def test_fapi_ciba_id1_ensure_other_scope_order_succeeds(suite):
    auth_req_id = suite.start(scope="email openid")
    suite.automated_approval(auth_req_id)
    suite.tokens(auth_req_id)


def test_fapi_ciba_id1_ensure_requested_expiry_as_string_succeeds(suite):
    response = suite.backchannel(suite.request_object(requested_expiry="30"))
    auth_req_id = suite.acknowledged(response)
    assert response.json()["expires_in"] <= 30
    suite.automated_approval(auth_req_id)
    suite.tokens(auth_req_id)


def test_fapi_ciba_id1_ensure_authorization_request_with_potentially_bad_binding_message(suite):
    """Either shown as sent (a person checks a screenshot) or 400 invalid_binding_message; with
    automated approval only the error branch can pass, and that is what this server answers:
    the message is far longer than a phone shows beside a kiosk (BINDING_MESSAGE_MAX_LENGTH)."""
    response = suite.backchannel(suite.request_object(binding_message=POTENTIALLY_BAD_BINDING_MESSAGE))
    oauth_error(response, 400, "invalid_binding_message")
    assert not AuthenticationRequest.objects.exists()


def test_fapi_ciba_id1_refresh_token(suite_clients, ciba_mode, alice):
    """A refresh token is issued, works for its client, only holds allowed characters, and does
    not work for the other client."""
    first, second = suite_clients(ciba_mode)
    auth_req_id = first.start()
    first.automated_approval(auth_req_id)
    refresh_token = first.tokens(auth_req_id)["refresh_token"]
    assert all(0x20 < ord(ch) < 0x7F for ch in refresh_token)
    refreshed = first.post("/o/token/", {"grant_type": "refresh_token", "refresh_token": refresh_token})
    assert refreshed.status_code == 200 and refreshed.json()["access_token"], refreshed.content
    stolen = second.post(
        "/o/token/", {"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"]}
    )
    oauth_error(stolen, 400, "invalid_grant")


def test_fapi_ciba_id1_ensure_mtls_holder_of_key_required(suite_clients, client_auth_type, alice, pki):
    """A token request without the client certificate is refused (4xx); the tokens issued are
    bound to the certificate (``cnf.x5t#S256``) and unusable without it or with another one."""
    first, _ = suite_clients("poll")
    auth_req_id = first.start()
    first.automated_approval(auth_req_id)
    first.tls = None  # the suite's call "without the TLS certificate"
    refused = first.token(auth_req_id)
    assert 400 <= refused.status_code < 500, refused.content
    assert refused.json()["error"] in ("invalid_client", "invalid_request", "invalid_grant")
    first.tls = presenting(first.cert)
    tokens = first.token_response(first.token(auth_req_id), auth_req_id)
    introspection = first.http.post(
        "/o/introspect/", {"token": tokens["access_token"]}, **consent_bearer(alice, scope="introspection")
    )
    assert introspection.json()["cnf"] == {"x5t#S256": first.cert.x5t_s256}
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access_token']}"}
    assert first.http.get("/o/userinfo/", **bearer, **presenting(first.cert)).status_code == 200
    assert first.http.get("/o/userinfo/", **bearer).status_code == 401
    assert first.http.get("/o/userinfo/", **bearer, **presenting(pki.issue("thief"))).status_code == 401
