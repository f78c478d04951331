"""Every outbound call has a total deadline, and a failed jwks_uri fetch is remembered.

The peers are real TCP servers on loopback (``tests/peers.py``) that stall: one accepts and never answers, one
drips the status line and headers a byte every 0.3 s, one drips the body. Each byte arrives
well inside the read timeout, so only the total deadline can end the call.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.test import override_settings
from requests_hardened import Config
from requests_hardened.ip_filter import InvalidIPAddress

from ciba import outbound, services
from ciba.backends.webhook import WebhookNotifier
from ciba.callbacks.send import post
from ciba.constants import JWT_BEARER_ASSERTION_TYPE
from ciba.models import Device
from ciba.outbound import http as outbound_http
from tests.keys import assertion_claims, rsa_key, sign
from tests.peers import (
    answers_204,
    answers_then_drips,
    drips_body,
    drips_headers,
    drips_unsized_body,
    silent,
)

DEADLINE = 1.0
SHORT = 0.5  # the deadline of the tests that only show it applies to a kind of call
SLACK = 0.5  # what the deadline may be overrun by (scheduling, a loaded CI machine)
CIBA = {
    "CALLBACK_ALLOW_HTTP": True,
    "CALLBACK_ALLOW_PRIVATE_NETWORKS": True,
    "CALLBACK_CONNECT_TIMEOUT": 0.5,
    "CALLBACK_READ_TIMEOUT": 0.5,  # longer than DRIP: every single read succeeds
    "CALLBACK_TOTAL_TIMEOUT": DEADLINE,
}


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


# --- callbacks, the webhook, Web Push ---------------------------------------------------------


@pytest.mark.parametrize("handler", [silent, drips_headers, drips_body, drips_unsized_body])
@override_settings(CIBA=CIBA)
def test_a_stalling_notification_endpoint_is_cut_off_at_the_deadline(peer, handler):
    endpoint = peer(handler)
    outcome, elapsed = timed(lambda: post(endpoint.url, "notification-token", {"auth_req_id": "x"}))
    assert not outcome.delivered and outcome.retry and outcome.error == "timeout"
    assert elapsed < DEADLINE + SLACK
    assert endpoint.connections == 1


@override_settings(CIBA=CIBA)
def test_a_prompt_endpoint_is_still_delivered(peer):
    endpoint = peer(answers_204)
    for _ in range(2):
        outcome, elapsed = timed(lambda: post(endpoint.url, "notification-token", {"auth_req_id": "x"}))
        assert (outcome.delivered, outcome.status) == (True, 204)
        assert elapsed < DEADLINE


@override_settings(CIBA=CIBA)
def test_the_deadline_holds_with_the_ip_filtering_adapter(peer):
    """With private networks refused, requests-hardened's adapter resolves and pins the address;
    the deadline works there too (loopback is allowed here so a local peer can play the host)."""
    endpoint = peer(drips_body)
    config = Config(
        ip_filter_enable=True,
        ip_filter_allow_loopback_ips=True,
        never_redirect=True,
        default_timeout=(0.5, 0.5),
    )
    with outbound_http._Session(config, total_timeout=SHORT) as http:
        assert isinstance(http.get_adapter(endpoint.url), outbound_http.IPFilterAdapter)
        started = time.monotonic()
        with pytest.raises(outbound.DeadlineExceeded), http.get(endpoint.url, stream=True) as response:
            assert response.status_code == 200  # the headers came in time; the body does not
            response.raw.read(1000)
        assert time.monotonic() - started < SHORT + SLACK
    with pytest.raises(InvalidIPAddress), outbound.session(allow_private=False) as http:
        http.get(endpoint.url)  # and the filter itself is still there
    assert endpoint.connections == 1


@override_settings(CIBA={**CIBA, "CALLBACK_TOTAL_TIMEOUT": SHORT})
def test_a_kept_alive_connection_is_under_the_deadline_of_each_call(peer):
    """One session, several calls (Web Push sends a batch so): the second call reuses the first
    one's connection, and is cut off at its own deadline."""
    endpoint = peer(answers_then_drips)
    with outbound.session() as http:
        assert http.post(endpoint.url, data=b"{}").status_code == 204
        time.sleep(SHORT)  # the first call's deadline would have passed by now
        started = time.monotonic()
        with pytest.raises(outbound.DeadlineExceeded):
            http.post(endpoint.url, data=b"{}")
        assert SHORT * 0.9 < time.monotonic() - started < SHORT + SLACK
    assert endpoint.connections == 1


def test_a_stalling_webhook_gateway_is_a_transient_failure(peer, alice, make_client):
    gateway = peer(drips_headers)
    app, _ = make_client("poll")
    ar = services.create_request(
        expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    settings = {
        **CIBA,
        "CALLBACK_TOTAL_TIMEOUT": SHORT,
        "WEBHOOK_NOTIFIER_URL": gateway.url,
        "WEBHOOK_NOTIFIER_SECRET": "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode(),
        "WEBHOOK_NOTIFIER_ALLOW_PRIVATE_NETWORKS": True,
    }
    with override_settings(CIBA=settings):
        outcome, elapsed = timed(lambda: WebhookNotifier().send(auth_request=ar, devices=[]))
    assert not outcome.delivered and outcome.retry
    assert outcome.error == "webhook: DeadlineExceeded"
    assert elapsed < SHORT + SLACK


def test_a_stalling_web_push_service_is_a_transient_failure(peer, alice, make_client):
    pytest.importorskip("pywebpush", reason="the webpush extra is not installed")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from py_vapid import Vapid

    from ciba.backends.webpush import WebPushNotifier

    service = peer(drips_body)
    public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    b64 = lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")  # noqa: E731
    device = Device.objects.create(
        user=alice,
        kind="webpush",
        subscription={"endpoint": service.url, "keys": {"p256dh": b64(public), "auth": b64(os.urandom(16))}},
    )
    vapid = Vapid()
    vapid.generate_keys()
    app, _ = make_client("poll")
    ar = services.create_request(
        expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    settings = {
        **CIBA,
        "CALLBACK_TOTAL_TIMEOUT": SHORT,
        "WEBPUSH_VAPID_PRIVATE_KEY": vapid.private_pem().decode(),
        "WEBPUSH_VAPID_SUBJECT": "mailto:ops@example.com",
    }
    with override_settings(CIBA=settings):
        outcome, elapsed = timed(lambda: WebPushNotifier().send(auth_request=ar, devices=[device]))
    assert not outcome.delivered and outcome.retry
    assert outcome.error.endswith("DeadlineExceeded")
    assert elapsed < SHORT + SLACK


# --- jwks_uri -----------------------------------------------------------------------------------

KEY = rsa_key()
JWKS_TIMEOUT = 0.3


def backchannel(client: Any, app: Any) -> tuple[Any, float]:
    assertion = sign(assertion_claims(app.client_id, "http://testserver/o"), KEY, "RS256", "k1")
    body = (
        "scope=openid&login_hint=alice"
        f"&client_assertion_type={JWT_BEARER_ASSERTION_TYPE}&client_assertion={assertion}"
    )
    return timed(
        lambda: client.post(
            "/o/backchannel-authentication/", body, content_type="application/x-www-form-urlencoded"
        )
    )


@override_settings(
    CIBA={
        **CIBA,
        "JWKS_FETCH_TIMEOUT": JWKS_TIMEOUT,
        "JWKS_FAILURE_CACHE_SECONDS": 1,
        "CALLBACK_READ_TIMEOUT": 10,
    }
)
def test_an_unanswering_jwks_uri_fails_once_then_at_once(client, alice, make_client, peer, caplog):
    """A black-holed jwks_uri costs one fetch of at most JWKS_FETCH_TIMEOUT; until the failure
    expires, the client's assertions are refused without calling it again."""
    black_hole = peer(silent)
    app, _ = make_client(
        "poll", token_endpoint_auth_method="private_key_jwt", jwks_uri=black_hole.url + "?key=s3cret"
    )
    with caplog.at_level("INFO"):
        response, elapsed = backchannel(client, app)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert JWKS_TIMEOUT * 0.9 < elapsed < JWKS_TIMEOUT + SLACK
    assert "jwks_uri could not be fetched" in caplog.text and "s3cret" not in caplog.text + response.text

    for _ in range(3):
        response, elapsed = backchannel(client, app)
        assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
        assert elapsed < 0.2
    assert black_hole.connections == 1

    time.sleep(1.05)  # the remembered failure expires: the URL is tried again
    response, elapsed = backchannel(client, app)
    assert response.status_code == 401 and elapsed > JWKS_TIMEOUT * 0.9
    assert black_hole.connections == 2

    cache.clear()
    backchannel(client, app)
    assert black_hole.connections == 3
