"""The plan's flows that must succeed (or fail as the user or the clock decides)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ciba.models import AuthenticationRequest
from tests.conformance.conftest import POTENTIALLY_BAD_BINDING_MESSAGE
from tests.protocol import oauth_error


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


@pytest.mark.xfail(strict=True, reason="certificate-bound access tokens (RFC 8705): issue 16")
def test_fapi_ciba_id1_ensure_mtls_holder_of_key_required(suite_clients, alice):
    first, _ = suite_clients("poll")
    auth_req_id = first.start()
    first.automated_approval(auth_req_id)
    tokens = first.tokens(auth_req_id)
    introspection = first.post("/o/introspect/", {"token": tokens["access_token"]})
    assert introspection.json().get("cnf", {}).get("x5t#S256")
