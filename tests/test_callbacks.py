"""Ping and push callbacks (CIBA §10.2, §10.3, §12): exact payloads, durable and safe delivery."""

import json
import logging
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from ciba import services
from ciba.callbacks import outbox as delivery
from ciba.constants import AUTH_REQ_ID_CLAIM, RT_HASH_CLAIM
from ciba.models import AuthenticationRequest, CallbackDelivery
from ciba.oauth.validators import token_hash
from ciba.tasks import sweep_callbacks
from tests.conftest import approve_ping, basic_auth

NT = "client-notification-token-0123456789"


def ciba(**extra):
    return override_settings(CIBA={**settings.CIBA, **extra})


@pytest.fixture
def endpoint_client(make_client, recorder):
    def factory(mode):
        return make_client(mode, backchannel_client_notification_endpoint=recorder.url("/cb"))

    return factory


def start(client, app, secret):
    response = client.post(
        "/o/backchannel-authentication/",
        f"scope=openid+profile&login_hint=alice&client_notification_token={NT}",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    return AuthenticationRequest.objects.select_related("client", "user").get(
        auth_req_id=response.json()["auth_req_id"]
    )


def decide(ar, how, capture):
    with capture(execute=True):
        if how == "approve":
            services.approve(ar, user=ar.user)
        else:
            services.deny(ar, user=ar.user)


def only_post(recorder):
    assert len(recorder.received) == 1, recorder.received
    path, headers, body = recorder.received[0]
    assert path == "/cb"
    assert headers["Authorization"] == f"Bearer {NT}"
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


@pytest.mark.parametrize("how", ["approve", "deny"])
def test_ping_after_a_decision_carries_only_the_auth_req_id(
    client, alice, endpoint_client, recorder, django_capture_on_commit_callbacks, how
):
    app, secret = endpoint_client("ping")
    ar = start(client, app, secret)
    decide(ar, how, django_capture_on_commit_callbacks)
    assert only_post(recorder) == {"auth_req_id": ar.auth_req_id}
    row = CallbackDelivery.objects.get()
    assert (row.kind, row.state, row.attempts, row.last_status) == ("ping", "delivered", 1, 204)


def test_poll_clients_never_receive_callbacks(
    client, alice, make_client, recorder, django_capture_on_commit_callbacks
):
    app, secret = make_client("poll")
    ar = start(client, app, secret)
    decide(ar, "approve", django_capture_on_commit_callbacks)
    assert recorder.received == [] and not CallbackDelivery.objects.exists()


def test_push_delivers_tokens_bound_to_the_request(
    client, alice, endpoint_client, recorder, django_capture_on_commit_callbacks
):
    app, secret = endpoint_client("push")
    ar = start(client, app, secret)
    decide(ar, "approve", django_capture_on_commit_callbacks)
    body = only_post(recorder)
    assert {"auth_req_id", "access_token", "token_type", "refresh_token", "expires_in", "id_token"} <= set(
        body
    )
    assert body["auth_req_id"] == ar.auth_req_id and body["token_type"] == "Bearer"
    jwks = client.get("/o/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(body["id_token"])
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        body["id_token"], key, algorithms=["RS256"], audience=app.client_id, issuer="http://testserver/o"
    )
    assert claims[AUTH_REQ_ID_CLAIM] == ar.auth_req_id
    assert claims["at_hash"] == token_hash(body["access_token"])
    assert claims[RT_HASH_CLAIM] == token_hash(body["refresh_token"])
    assert AuthenticationRequest.objects.get(pk=ar.pk).state == "issued"
    userinfo = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == str(alice.pk)


def test_a_push_denial_sends_the_section_12_error(
    client, alice, endpoint_client, recorder, django_capture_on_commit_callbacks
):
    app, secret = endpoint_client("push")
    ar = start(client, app, secret)
    decide(ar, "deny", django_capture_on_commit_callbacks)
    body = only_post(recorder)
    assert set(body) == {"error", "error_description", "auth_req_id"}
    assert (body["error"], body["auth_req_id"]) == ("access_denied", ar.auth_req_id)


def test_push_clients_hear_about_expiry_and_ping_clients_do_not(
    client, alice, endpoint_client, recorder, django_capture_on_commit_callbacks
):
    push_app, push_secret = endpoint_client("push")
    ping_app, ping_secret = endpoint_client("ping")
    push_ar, ping_ar = start(client, push_app, push_secret), start(client, ping_app, ping_secret)
    AuthenticationRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.expire_due() == 2
    body = only_post(recorder)
    assert (body["error"], body["auth_req_id"]) == ("expired_token", push_ar.auth_req_id)
    assert AuthenticationRequest.objects.get(pk=ping_ar.pk).state == "expired"


def test_an_endpoint_failing_twice_then_succeeding_gets_one_identical_delivery(
    client, alice, endpoint_client, recorder, django_capture_on_commit_callbacks
):
    recorder.statuses = [503, 503]
    app, secret = endpoint_client("push")
    ar = start(client, app, secret)
    decide(ar, "approve", django_capture_on_commit_callbacks)
    bodies = [body for _, _, body in recorder.received]
    assert len(bodies) == 3 and len(set(bodies)) == 1  # the same tokens, never minted twice
    row = CallbackDelivery.objects.get()
    assert (row.state, row.attempts, row.last_status) == ("delivered", 3, 204)
    assert get_access_token_model().objects.count() == 1
    assert AuthenticationRequest.objects.get(pk=ar.pk).state == "issued"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 301])
def test_a_client_error_or_redirect_is_final_and_pushed_tokens_are_revoked(
    client, alice, endpoint_client, recorder, django_capture_on_commit_callbacks, status
):
    recorder.statuses = [status]
    app, secret = endpoint_client("push")
    ar = start(client, app, secret)
    decide(ar, "approve", django_capture_on_commit_callbacks)
    assert len(recorder.received) == 1  # never retried, never redirected
    row = CallbackDelivery.objects.get()
    assert (row.state, row.last_status) == ("failed", status)
    assert get_access_token_model().objects.count() == 0
    assert all(rt.revoked for rt in get_refresh_token_model().objects.all())
    assert AuthenticationRequest.objects.get(pk=ar.pk).state == "issued"  # still never minted twice


def test_retries_stop_when_the_request_expires(
    client, alice, endpoint_client, recorder, django_capture_on_commit_callbacks
):
    recorder.statuses = [503] * 50
    app, secret = endpoint_client("ping")
    ar = start(client, app, secret)
    AuthenticationRequest.objects.filter(pk=ar.pk).update(expires_at=timezone.now() + timedelta(seconds=2))
    # The first retry would wait 5-10 s (jitter), past the 2 s the request has left.
    with ciba(CALLBACK_RETRY_BACKOFF_BASE=10.0), django_capture_on_commit_callbacks(execute=True):
        services.approve(AuthenticationRequest.objects.get(pk=ar.pk), user=alice)
    assert len(recorder.received) == 1
    assert CallbackDelivery.objects.get().state == "failed"


def test_retry_after_is_honoured_within_the_cap():
    with ciba(CALLBACK_RETRY_BACKOFF_BASE=1.0, CALLBACK_RETRY_BACKOFF_MAX=120):
        assert 0.5 <= delivery.retry_delay(1) <= 1.0
        assert 4.0 <= delivery.retry_delay(4) <= 8.0
        assert delivery.retry_delay(1, retry_after=60) == 60
        assert delivery.retry_delay(1, retry_after=10_000) == 120


@pytest.mark.parametrize(
    "allow, reason",
    [({"CALLBACK_ALLOW_HTTP": False}, "https"), ({"CALLBACK_ALLOW_PRIVATE_NETWORKS": False}, "private")],
)
def test_http_or_private_endpoints_are_refused_unless_allowed(
    client, alice, endpoint_client, recorder, django_capture_on_commit_callbacks, allow, reason
):
    app, secret = endpoint_client("ping")
    ar = start(client, app, secret)
    with ciba(**allow), django_capture_on_commit_callbacks(execute=True):
        services.approve(ar, user=alice)
    assert recorder.received == []
    row = CallbackDelivery.objects.get()
    assert row.state == "failed" and reason in row.last_error


def test_a_callback_survives_a_broker_outage_and_is_swept_later(
    client, alice, endpoint_client, recorder, django_capture_on_commit_callbacks, monkeypatch
):
    from ciba import tasks

    app, secret = endpoint_client("ping")
    ar = start(client, app, secret)

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("broker unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(tasks.deliver_callback, "apply_async", broker_down)
        decide(ar, "approve", django_capture_on_commit_callbacks)
    assert recorder.received == []
    assert CallbackDelivery.objects.get().state == "pending"  # written with the decision
    assert sweep_callbacks.apply().get() == 1
    assert only_post(recorder) == {"auth_req_id": ar.auth_req_id}
    assert sweep_callbacks.apply().get() == 0


def approved_ping(alice, make_client, recorder):
    """The outbox row of an approved ping request, not yet handed to a worker."""
    app, _ = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/cb"))
    approve_ping(app, alice, NT)
    return CallbackDelivery.objects.get()


def test_a_leased_callback_is_not_sent_twice(alice, make_client, recorder):
    row = approved_ping(alice, make_client, recorder)  # on_commit not run: nothing sent yet
    CallbackDelivery.objects.filter(pk=row.pk).update(lease_until=timezone.now() + timedelta(seconds=30))
    assert delivery.deliver(row.pk) == "skipped"
    assert delivery.due() == []
    CallbackDelivery.objects.filter(pk=row.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert delivery.due() == [row.pk]
    assert delivery.deliver(row.pk) == "delivered"
    assert delivery.deliver(row.pk) == "skipped"
    assert len(recorder.received) == 1


def test_a_callback_whose_attempts_keep_dying_is_given_up_not_retried_for_ever(alice, make_client, recorder):
    """Each claim counts an attempt; claims that never record (the worker died each time) end
    the row as failed once the retry budget is spent, rather than killing workers for ever."""
    row = approved_ping(alice, make_client, recorder)
    spent = settings.CIBA.get("CALLBACK_MAX_RETRIES", 8) + 1
    CallbackDelivery.objects.filter(pk=row.pk).update(
        attempts=spent, lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert delivery.deliver(row.pk) == "failed"
    row.refresh_from_db()
    assert row.state == "failed" and "worker lost" in row.last_error
    assert recorder.received == []


def test_no_token_reaches_the_logs(
    client, alice, endpoint_client, recorder, caplog, django_capture_on_commit_callbacks
):
    recorder.statuses = [400]
    app, secret = endpoint_client("push")
    ar = start(client, app, secret)
    with caplog.at_level(logging.DEBUG):
        decide(ar, "approve", django_capture_on_commit_callbacks)
    body = json.loads(recorder.received[0][2])
    for secret_value in (NT, body["access_token"], body["refresh_token"], body["id_token"], ar.auth_req_id):
        assert secret_value not in caplog.text


def test_push_payloads_are_encrypted_at_rest(
    client, alice, endpoint_client, recorder, django_capture_on_commit_callbacks
):
    app, secret = endpoint_client("push")
    ar = start(client, app, secret)
    decide(ar, "approve", django_capture_on_commit_callbacks)
    stored = bytes(CallbackDelivery.objects.get().payload)
    body = json.loads(recorder.received[0][2])
    assert body["access_token"].encode() not in stored and b"access_token" not in stored
