"""Withdrawn prompts (issue 27): once a request stops being actionable, every notifier that told
the user's device takes the prompt back, durably (retried, swept), never holding up the decision."""

import base64
import json
import os
import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from standardwebhooks import Webhook

from ciba import device_outbox, services
from ciba.models import AuthenticationRequest, Device
from tests.conftest import NO_USER_LIMITS

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
WEBHOOK = "ciba.backends.notifiers.WebhookNotifier"
WEBPUSH = "ciba.backends.webpush.WebPushNotifier"


def webhook_settings(recorder, **extra):
    return {
        **NO_USER_LIMITS,
        "CALLBACK_ALLOW_HTTP": True,
        "CALLBACK_ALLOW_PRIVATE_NETWORKS": True,
        "WEBHOOK_NOTIFIER_ALLOW_PRIVATE_NETWORKS": True,
        "NOTIFIER_CLASSES": [WEBHOOK],
        "WEBHOOK_NOTIFIER_URL": recorder.url("/ciba-events"),
        "WEBHOOK_NOTIFIER_SECRET": SECRET,
        **extra,
    }


def events(recorder):
    return [
        Webhook(SECRET).verify(body, {k.lower(): v for k, v in headers.items()})
        for _, headers, body in recorder.received
    ]


def notified_request(alice, app, capture, **fields):
    with capture(execute=True):
        ar = services.create_request(
            expires_in=120,
            client=app,
            user=alice,
            hint_kind="login_hint",
            scope="openid",
            interval=5,
            binding_message="W4SCT",
            **fields,
        )
    ar.refresh_from_db()
    assert ar.device_notification_status == "sent"
    return ar


@pytest.mark.parametrize(
    ("decide", "state", "reason"),
    [
        (lambda ar, user: services.approve(ar, user=user), "approved", ""),
        (lambda ar, user: services.deny(ar, user=user), "denied", ""),
        (lambda ar, user: services.report(ar, user=user, block=False), "denied", ""),
        (lambda ar, user: services.cancel(ar, reason="client"), "cancelled", "client"),
        (lambda ar, user: services.cancel(ar, reason="superseded"), "cancelled", "superseded"),
    ],
)
def test_a_decided_or_cancelled_request_withdraws_its_prompt_with_a_signed_webhook_event(
    alice, make_client, recorder, django_capture_on_commit_callbacks, decide, state, reason
):
    app, _ = make_client("poll", name="Corner Shop")
    with override_settings(CIBA=webhook_settings(recorder)):
        ar = notified_request(alice, app, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            decide(ar, alice)
    requested, withdrawn = events(recorder)
    assert requested["type"] == "ciba.authentication_requested"
    assert withdrawn["type"] == "ciba.authentication_withdrawn"
    assert withdrawn["data"]["auth_req_id"] == ar.auth_req_id
    assert (withdrawn["data"]["state"], withdrawn["data"]["reason"]) == (state, reason)
    assert withdrawn["data"]["client_name"] == "Corner Shop"
    # Its own message id, derived from the notification's, so a gateway de-duplicates retries.
    first, second = (headers["webhook-id"] for _, headers, _ in recorder.received)
    assert second == first + "_withdrawn"
    ar.refresh_from_db()
    assert ar.device_notification_due_at is None and ar.device_notification_status == "sent"


def test_an_expired_request_withdraws_its_prompt_when_the_expiry_sweep_marks_it(
    alice, make_client, recorder, django_capture_on_commit_callbacks
):
    app, _ = make_client("poll")
    with override_settings(CIBA=webhook_settings(recorder)):
        ar = notified_request(alice, app, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            assert services.expire_due(now=ar.expires_at + timedelta(seconds=1)) == 1
    assert [e["type"] for e in events(recorder)][-1] == "ciba.authentication_withdrawn"
    assert events(recorder)[-1]["data"]["state"] == "expired"


def test_a_request_decided_before_any_notification_withdraws_nothing(
    alice, make_client, recorder, django_capture_on_commit_callbacks
):
    app, _ = make_client("poll")
    with override_settings(CIBA=webhook_settings(recorder)):
        # Created without its after-commit work: no worker has notified the device yet.
        ar = services.create_request(
            expires_in=120, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
        )
        with django_capture_on_commit_callbacks(execute=True):
            services.deny(ar, user=alice)
        assert device_outbox.withdraw(ar.pk) == "skipped"
        assert device_outbox.sweep() == 0
    assert recorder.received == []


def test_a_withdrawal_that_fails_is_retried_and_never_touches_the_decision(
    alice, make_client, recorder, django_capture_on_commit_callbacks, monkeypatch
):
    app, _ = make_client("poll")
    with override_settings(CIBA=webhook_settings(recorder)):
        ar = notified_request(alice, app, django_capture_on_commit_callbacks)
        sent = []
        monkeypatch.setattr(
            device_outbox.dispatch, "send", lambda *args, **kwargs: sent.append((args, kwargs))
        )
        recorder.statuses = [503]
        with django_capture_on_commit_callbacks(execute=True):
            services.approve(ar, user=alice)
        assert device_outbox.withdraw(ar.pk) == "retrying"
        ar.refresh_from_db()
        assert ar.state == "approved"  # the decision stands
        assert ar.device_notification_retry == {"withdrawal_attempts": 1, "notifiers": [WEBHOOK]}
        assert ar.device_notification_error.startswith("withdrawal: WebhookNotifier")
        (_, (retry, options)) = sent
        assert retry == ("ciba.withdraw_device_prompt", ar.pk) and options["countdown"] > 0
        assert ar.device_notification_due_at > timezone.now()
        assert not device_outbox.WITHDRAWALS.due(timezone.now()).filter(pk=ar.pk).exists()  # not yet
        assert device_outbox.withdraw(ar.pk) == "withdrawn"
    assert [e["type"] for e in events(recorder)] == ["ciba.authentication_requested"] + [
        "ciba.authentication_withdrawn"
    ] * 2
    ar.refresh_from_db()
    assert ar.device_notification_due_at is None and ar.device_notification_retry is None


def test_a_withdrawal_whose_task_was_lost_is_sent_by_the_notification_sweep(
    alice, make_client, recorder, django_capture_on_commit_callbacks, monkeypatch
):
    app, _ = make_client("poll")
    with override_settings(CIBA=webhook_settings(recorder)):
        ar = notified_request(alice, app, django_capture_on_commit_callbacks)
        sent = []
        monkeypatch.setattr(device_outbox.dispatch, "send", lambda *args, **kwargs: sent.append(args))
        with django_capture_on_commit_callbacks(execute=True):
            services.deny(ar, user=alice)
        assert sent == [("ciba.withdraw_due_prompts",)]  # lost with the broker
        monkeypatch.undo()
        assert len(recorder.received) == 1
        ten_seconds_on = timezone.now() + timedelta(seconds=11)
        assert device_outbox.sweep(now=ten_seconds_on) == 1
    assert [e["type"] for e in events(recorder)][-1] == "ciba.authentication_withdrawn"


def test_a_withdrawal_survives_a_process_that_dies_right_after_the_decision_commits(
    alice, make_client, recorder, django_capture_on_commit_callbacks
):
    """The withdrawal is owed by the decision's own UPDATE: if the process dies after the
    commit, before any after-commit work (the receivers, the task), the sweep still sends it."""
    app, _ = make_client("poll")
    with override_settings(CIBA=webhook_settings(recorder)):
        ar = notified_request(alice, app, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=False):  # committed; nothing after it ran
            services.deny(ar, user=alice)
        assert len(recorder.received) == 1
        ten_seconds_on = timezone.now() + timedelta(seconds=11)
        assert device_outbox.sweep(now=ten_seconds_on) == 1
    assert [e["type"] for e in events(recorder)][-1] == "ciba.authentication_withdrawn"


def test_a_decision_while_the_notification_is_in_flight_is_withdrawn_after_it(
    alice, make_client, recorder, django_capture_on_commit_callbacks
):
    """The notifiers ran with the request pending; it was decided before they recorded the
    outcome: the record itself makes the withdrawal owed, so the prompt just sent goes too."""
    app, _ = make_client("poll")
    with override_settings(CIBA=webhook_settings(recorder, NOTIFY_BATCH_WINDOW=0)):
        ar = services.create_request(
            expires_in=120, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
        )
        now = timezone.now()
        assert device_outbox.OUTBOX.claim(ar.pk, now) is not None  # a worker holds it
        with django_capture_on_commit_callbacks(execute=True):
            services.approve(ar, user=alice)
        assert recorder.received == []  # the withdrawal waits for the notification's lease
        held = AuthenticationRequest.objects.select_related("client").get(pk=ar.pk)
        failed = device_outbox._attempt(held, list(Device.objects.filter(user=alice)))
        device_outbox._record(held, failed, now)
        ar.refresh_from_db()
        assert ar.device_notification_status == "sent" and ar.device_notification_due_at is not None
        assert device_outbox.withdraw(ar.pk) == "withdrawn"
    assert [e["type"] for e in events(recorder)] == [
        "ciba.authentication_requested",
        "ciba.authentication_withdrawn",
    ]


def test_a_notifier_without_withdrawals_counts_as_withdrawn(alice, make_client):
    from ciba.backends.notifier_base import BaseNotifier

    class PromptOnly(BaseNotifier):
        def send_one(self, *, auth_request, target, context):
            pass

    app, _ = make_client("poll")
    ar = services.create_request(
        expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    assert PromptOnly().withdraw(auth_request=ar, devices=[]).delivered


# --- Web Push: a real HTTP push endpoint on loopback receives the encrypted withdrawal ------------


def _subscription(recorder):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    receiver = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    public = receiver.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    b64 = lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")  # noqa: E731
    endpoint = recorder.url("/push/browser-1")
    return receiver, auth, {"endpoint": endpoint, "keys": {"p256dh": b64(public), "auth": b64(auth)}}


def test_a_withdrawal_reaches_a_real_web_push_endpoint_encrypted_and_vapid_signed(
    alice, make_client, recorder, django_capture_on_commit_callbacks
):
    pytest.importorskip("pywebpush", reason="the webpush extra is not installed")
    import http_ece
    from py_vapid import Vapid

    receiver, auth, subscription = _subscription(recorder)
    Device.objects.create(user=alice, kind="webpush", subscription=subscription)
    vapid = Vapid()
    vapid.generate_keys()
    ciba = {
        **NO_USER_LIMITS,
        "CALLBACK_ALLOW_HTTP": True,
        "CALLBACK_ALLOW_PRIVATE_NETWORKS": True,
        "NOTIFIER_CLASSES": [WEBPUSH],
        "WEBPUSH_VAPID_PRIVATE_KEY": vapid.private_pem().decode(),
        "WEBPUSH_VAPID_SUBJECT": "mailto:ops@example.com",
    }
    app, _ = make_client("poll", name="Corner Shop")
    with override_settings(CIBA=ciba):
        ar = notified_request(alice, app, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            services.cancel(ar, reason="client")
    (_, prompt_headers, _), (path, headers, body) = recorder.received
    prompt_headers, headers = ({k.lower(): v for k, v in h.items()} for h in (prompt_headers, headers))
    assert path == "/push/browser-1"
    assert headers["content-encoding"] == "aes128gcm" and headers["authorization"].startswith("vapid t=")
    assert headers["urgency"] == "normal" and prompt_headers["urgency"] == "high"
    assert int(headers["ttl"]) == 24 * 3600  # outlives the request: the prompt stays until removed
    message = json.loads(http_ece.decrypt(body, private_key=receiver, auth_secret=auth, version="aes128gcm"))
    assert message == {
        "type": "ciba.authentication_withdrawn",
        "auth_req_id": ar.auth_req_id,
        "state": "cancelled",
        "reason": "client",
        "client_name": "Corner Shop",
    }


# --- FCM: the library builds the message; only its HTTP call is stubbed ------------------------------


def test_fcm_withdraws_with_a_data_message_that_wakes_nothing(alice, make_client, monkeypatch):
    firebase_admin = pytest.importorskip("firebase_admin", reason="the fcm extra is not installed")
    from firebase_admin import _http_client, credentials
    from google.auth.credentials import AnonymousCredentials

    from ciba.backends.fcm import FcmNotifier

    class Anonymous(credentials.Base):
        def get_credential(self):
            return AnonymousCredentials()

    sent = []
    monkeypatch.setattr(
        _http_client.JsonHttpClient,
        "body",
        lambda self, method, url, **kwargs: sent.append(kwargs["json"]) or {"name": "m/1"},
    )
    fb = firebase_admin.initialize_app(
        Anonymous(), {"projectId": "ciba-test"}, name=f"withdraw-{os.getpid()}"
    )
    try:
        Device.objects.create(user=alice, kind="fcm", token="fcm-token-1")
        app, _ = make_client("poll", name="Corner Shop")
        ar = services.create_request(
            expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
        )
        services.deny(ar, user=alice)
        with override_settings(CIBA={"FCM_APP_NAME": fb.name}):
            assert FcmNotifier().withdraw(auth_request=ar, devices=list(Device.objects.all())).delivered
    finally:
        firebase_admin.delete_app(fb)
    (payload,) = sent
    message = payload["message"]
    assert message["token"] == "fcm-token-1"
    assert message["data"] == {
        "type": "ciba.authentication_withdrawn",
        "auth_req_id": ar.auth_req_id,
        "state": "denied",
        "reason": "",
        "client_name": "Corner Shop",
    }
    assert message["android"]["priority"] == "normal"
    assert message["apns"]["headers"] == {"apns-priority": "5", "apns-push-type": "background"}


def test_decisions_within_a_batch_window_share_one_task_which_withdraws_each_prompt_once(
    alice, make_client, recorder, django_capture_on_commit_callbacks, monkeypatch
):
    """With a broker (not eager), a deciding process no longer publishes a task per decision:
    the first decision of a window sends the batch task, due after the window; it withdraws
    every due prompt, each exactly once, and the next run finds nothing."""
    from celery import current_app

    from ciba import dispatch

    app, _ = make_client("poll")
    with override_settings(CIBA=webhook_settings(recorder, NOTIFY_BATCH_WINDOW=0.5)):
        first, second = (notified_request(alice, app, django_capture_on_commit_callbacks) for _ in range(2))
        sent = []
        monkeypatch.setitem(current_app.conf, "task_always_eager", False)
        monkeypatch.setattr(dispatch, "_kicked", {})
        monkeypatch.setattr(dispatch, "_kicker", dispatch._Kicker())
        monkeypatch.setattr(dispatch, "send", lambda *args, **kwargs: sent.append((args, kwargs)) or True)
        with django_capture_on_commit_callbacks(execute=True):
            services.approve(first, user=alice)
        with django_capture_on_commit_callbacks(execute=True):
            services.deny(second, user=alice)
        time.sleep(0.3)  # past the kick's delay (a fifth of the window)
        [(args, options)] = sent
        assert args == ("ciba.withdraw_due_prompts",) and 0.3 < options["countdown"] <= 0.4
        monkeypatch.undo()
        assert device_outbox.withdraw_due() == 2
        assert device_outbox.withdraw_due() == 0
    types = [e["type"] for e in events(recorder)]
    assert types.count("ciba.authentication_withdrawn") == 2
    ids = {e["data"]["auth_req_id"] for e in events(recorder) if e["type"] == "ciba.authentication_withdrawn"}
    assert ids == {first.auth_req_id, second.auth_req_id}
    for ar in (first, second):
        ar.refresh_from_db()
        assert ar.device_notification_due_at is None
