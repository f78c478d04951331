"""Device notifications: signed webhooks, FCM, Web Push, retries, and failures that never lose a request."""

import base64
import inspect
import json
import logging
import os

import pytest
import requests
from django.test import Client, override_settings
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from ciba import services
from ciba.models import AuthenticationRequest, Device
from tests.conftest import NO_USER_LIMITS, basic_auth

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
WEBHOOK = "ciba.backends.notifiers.WebhookNotifier"
LOG = "ciba.backends.notifiers.LogNotifier"


def start(client, app, secret, body="scope=openid&login_hint=alice&binding_message=W4SCT"):
    response = client.post(
        "/o/backchannel-authentication/",
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    return AuthenticationRequest.objects.get(auth_req_id=response.json()["auth_req_id"])


def webhook_settings(recorder, **extra):
    return {
        "CALLBACK_ALLOW_HTTP": True,  # the test gateway listens on plain http on loopback
        "WEBHOOK_NOTIFIER_ALLOW_PRIVATE_NETWORKS": True,
        "NOTIFIER_CLASSES": [WEBHOOK],
        "WEBHOOK_NOTIFIER_URL": recorder.url("/ciba-events"),
        "WEBHOOK_NOTIFIER_SECRET": SECRET,
        **extra,
    }


def test_the_webhook_is_signed_per_standard_webhooks_and_carries_the_request(
    client, alice, make_client, recorder, django_capture_on_commit_callbacks
):
    Device.objects.create(user=alice, kind="apns", token="apns-token", label="iPhone")
    app, secret = make_client("poll", name="Corner Shop")
    with override_settings(CIBA=webhook_settings(recorder)), django_capture_on_commit_callbacks(execute=True):
        ar = start(client, app, secret)
    assert len(recorder.received) == 1
    path, headers, body = recorder.received[0]
    event = Webhook(SECRET).verify(body, {k.lower(): v for k, v in headers.items()})
    assert event["type"] == "ciba.authentication_requested"
    data = event["data"]
    assert data["auth_req_id"] == ar.auth_req_id
    assert data["client_name"] == "Corner Shop" and data["binding_message"] == "W4SCT"
    assert data["expires_at"] == ar.expires_at.isoformat()
    assert data["devices"] == [
        {"id": str(Device.objects.get().public_id), "kind": "apns", "label": "iPhone", "token": "apns-token"}
    ]
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"another-secret-another-secret-12").decode()).verify(
            body, headers
        )
    ar.refresh_from_db()
    assert (ar.device_notification_status, ar.device_notification_attempts) == ("sent", 1)


def test_transient_failures_are_retried_with_the_same_message_id(
    client, alice, make_client, recorder, django_capture_on_commit_callbacks
):
    recorder.statuses = [503, 429]
    app, secret = make_client("poll")
    with override_settings(CIBA=webhook_settings(recorder)), django_capture_on_commit_callbacks(execute=True):
        ar = start(client, app, secret)
    assert len(recorder.received) == 3
    assert len({headers["webhook-id"] for _, headers, _ in recorder.received}) == 1
    ar.refresh_from_db()
    assert (ar.device_notification_status, ar.device_notification_attempts, ar.device_notification_error) == (
        "sent",
        3,
        "",
    )


def test_a_permanent_failure_is_recorded_and_the_request_survives(
    client, alice, make_client, recorder, django_capture_on_commit_callbacks
):
    recorder.statuses = [400]
    app, secret = make_client("poll")
    with override_settings(CIBA=webhook_settings(recorder)), django_capture_on_commit_callbacks(execute=True):
        ar = start(client, app, secret)
    assert len(recorder.received) == 1  # a 4xx is not retried
    ar.refresh_from_db()
    assert ar.state == "pending"
    assert ar.device_notification_status == "failed"
    assert "HTTP 400" in ar.device_notification_error
    ar.user.set_password("pw")
    device_app = Client()
    device_app.force_login(alice)
    listed = device_app.get("/o/ciba/requests/").json()
    assert [(r["auth_req_id"], r["device_notification_status"]) for r in listed] == [
        (ar.auth_req_id, "failed")
    ]


def test_an_unreachable_gateway_is_retried_then_recorded_as_failed(
    client, alice, make_client, django_capture_on_commit_callbacks
):
    app, secret = make_client("poll")
    unreachable = {
        "CALLBACK_ALLOW_HTTP": True,
        "WEBHOOK_NOTIFIER_ALLOW_PRIVATE_NETWORKS": True,
        "NOTIFIER_CLASSES": [WEBHOOK],
        "WEBHOOK_NOTIFIER_URL": "http://127.0.0.1:9/nothing-listens-here",
        "WEBHOOK_NOTIFIER_SECRET": SECRET,
        "NOTIFY_MAX_RETRIES": 2,
    }
    with override_settings(CIBA=unreachable), django_capture_on_commit_callbacks(execute=True):
        ar = start(client, app, secret)
    ar.refresh_from_db()
    assert (ar.device_notification_status, ar.device_notification_attempts) == ("failed", 3)
    assert "ConnectionError" in ar.device_notification_error


def test_only_the_failed_notifier_is_retried(
    client, alice, make_client, recorder, caplog, django_capture_on_commit_callbacks
):
    recorder.statuses = [503]
    app, secret = make_client("poll")
    settings = webhook_settings(recorder, NOTIFIER_CLASSES=[LOG, WEBHOOK])
    with caplog.at_level(logging.INFO, logger="ciba.notifiers"):
        with override_settings(CIBA=settings), django_capture_on_commit_callbacks(execute=True):
            start(client, app, secret)
    assert len(recorder.received) == 2
    assert caplog.text.count("awaits a decision") == 1  # the log notifier ran once


def test_a_broken_notifier_never_fails_the_client_request(
    client, alice, make_client, django_capture_on_commit_callbacks
):
    app, secret = make_client("poll")
    with (
        override_settings(CIBA={"NOTIFIER_CLASSES": [WEBHOOK]}),
        django_capture_on_commit_callbacks(execute=True),
    ):
        ar = start(client, app, secret)  # the webhook notifier is not configured: ImproperlyConfigured
    ar.refresh_from_db()
    assert ar.state == "pending" and ar.device_notification_status == "failed"
    assert "WEBHOOK_NOTIFIER_URL" in ar.device_notification_error


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"WEBHOOK_NOTIFIER_ALLOW_PRIVATE_NETWORKS": False}, "public host"),
        ({"CALLBACK_ALLOW_HTTP": False}, "https"),
    ],
)
def test_the_webhook_gateway_must_be_public_https_unless_allowed(
    client, alice, make_client, recorder, django_capture_on_commit_callbacks, extra, words
):
    app, secret = make_client("poll")
    with (
        override_settings(CIBA=webhook_settings(recorder, **extra)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        ar = start(client, app, secret)
    assert recorder.received == []
    ar.refresh_from_db()
    assert ar.device_notification_status == "failed" and words in ar.device_notification_error


def test_a_request_decided_before_the_worker_ran_is_not_notified(alice, make_client, recorder):
    from ciba.tasks import notify_authentication_device

    app, _ = make_client("poll")
    ar = services.create_request(
        expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    services.deny(ar, user=alice)
    with override_settings(CIBA=webhook_settings(recorder)):
        assert notify_authentication_device.apply(args=[ar.pk]).get() == "skipped"
    assert recorder.received == []


# --- FCM: the library builds the message; only its HTTP call is stubbed ---------------------------


@pytest.fixture
def firebase_app(monkeypatch):
    firebase_admin = pytest.importorskip("firebase_admin", reason="the fcm extra is not installed")
    from firebase_admin import _http_client, credentials
    from google.auth.credentials import AnonymousCredentials

    class Anonymous(credentials.Base):
        def get_credential(self):
            return AnonymousCredentials()

    sent = []

    def body(self, method, url, **kwargs):
        sent.append((method, url, kwargs["json"]))
        return {"name": "projects/ciba-test/messages/1"}

    monkeypatch.setattr(_http_client.JsonHttpClient, "body", body)
    app = firebase_admin.initialize_app(
        Anonymous(), {"projectId": "ciba-test"}, name=f"ciba-test-{os.getpid()}-{id(sent)}"
    )
    yield app, sent
    firebase_admin.delete_app(app)


def test_fcm_addresses_installation_ids_as_fid(alice, make_client, firebase_app):
    from firebase_admin import messaging

    from ciba.backends.fcm import FcmNotifier

    assert "fid" in inspect.signature(messaging.Message).parameters  # firebase-admin >= 7.7 (the fcm extra)
    app, sent = firebase_app
    Device.objects.create(user=alice, kind="fcm", token="cH2xK9fLq3Vw7ZtY1bN4aQ")
    client, _ = make_client("poll")
    ar = services.create_request(
        expires_in=60, client=client, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    with override_settings(CIBA={"FCM_APP_NAME": app.name}):
        assert FcmNotifier().send(auth_request=ar, devices=list(Device.objects.all())).delivered
    assert sent[0][2]["message"]["fid"] == "cH2xK9fLq3Vw7ZtY1bN4aQ"


def test_fcm_sends_a_high_priority_data_message_to_each_fcm_device(alice, make_client, firebase_app):
    from ciba.backends.fcm import FcmNotifier

    app, sent = firebase_app
    Device.objects.create(user=alice, kind="fcm", token="fcm-token-1")
    Device.objects.create(user=alice, kind="webpush", subscription={"endpoint": "https://x", "keys": {}})
    client, _ = make_client("poll", name="Corner Shop")
    ar = services.create_request(
        expires_in=120,
        client=client,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        binding_message="W4SCT",
    )
    with override_settings(CIBA={"FCM_APP_NAME": app.name}):
        assert FcmNotifier().send(auth_request=ar, devices=list(Device.objects.all())).delivered
    assert len(sent) == 1
    method, url, payload = sent[0]
    assert method == "post" and url.endswith("/projects/ciba-test/messages:send")
    message = payload["message"]
    assert message["token"] == "fcm-token-1"  # a registration token
    assert message["data"]["auth_req_id"] == ar.auth_req_id
    assert message["data"]["binding_message"] == "W4SCT"
    assert message["data"]["client_name"] == "Corner Shop"
    assert json.loads(message["data"]["scopes"])[0]["scope"] == "openid"
    assert message["android"]["priority"] == "high"
    assert 100 <= int(message["android"]["ttl"].rstrip("s")) <= 120


# --- Web Push: the library encrypts and signs; only the HTTP transport is stubbed ---------------------


class RecordingAdapter(requests.adapters.BaseAdapter):
    def __init__(self, status=201):
        super().__init__()
        self.status, self.requests = status, []

    def send(self, request, **kwargs):
        self.requests.append(request)
        response = requests.Response()
        response.status_code, response.request, response._content = self.status, request, b""
        return response

    def close(self):
        pass


def test_web_push_sends_an_encrypted_vapid_signed_message(alice, make_client, monkeypatch):
    pytest.importorskip("pywebpush", reason="the webpush extra is not installed")
    import http_ece
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from py_vapid import Vapid

    from ciba.backends.webpush import WebPushNotifier

    receiver = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    public = receiver.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    b64 = lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")  # noqa: E731
    Device.objects.create(
        user=alice,
        kind="webpush",
        subscription={
            "endpoint": "https://push.example.net/send/abc",
            "keys": {"p256dh": b64(public), "auth": b64(auth)},
        },
    )
    vapid = Vapid()
    vapid.generate_keys()
    key_pem = vapid.private_pem().decode()
    adapter = RecordingAdapter()
    monkeypatch.setattr(WebPushNotifier, "session", lambda self: _session_with(adapter))
    client, _ = make_client("poll")
    ar = services.create_request(
        expires_in=60, client=client, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    with override_settings(
        CIBA={"WEBPUSH_VAPID_PRIVATE_KEY": key_pem, "WEBPUSH_VAPID_SUBJECT": "mailto:ops@example.com"}
    ):
        assert WebPushNotifier().send(auth_request=ar, devices=list(Device.objects.all())).delivered
    (request,) = adapter.requests
    assert request.url == "https://push.example.net/send/abc"
    assert request.headers["content-encoding"] == "aes128gcm"
    assert request.headers["Authorization"].startswith("vapid t=")
    assert 50 <= int(request.headers["ttl"]) <= 60
    plain = http_ece.decrypt(request.body, private_key=receiver, auth_secret=auth, version="aes128gcm")
    assert json.loads(plain)["auth_req_id"] == ar.auth_req_id


def test_a_gone_web_push_subscription_is_a_permanent_failure(alice, make_client, monkeypatch):
    pytest.importorskip("pywebpush", reason="the webpush extra is not installed")
    from py_vapid import Vapid

    from ciba.backends.webpush import WebPushNotifier

    vapid = Vapid()
    vapid.generate_keys()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    receiver = ec.generate_private_key(ec.SECP256R1())
    public = receiver.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    b64 = lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")  # noqa: E731
    Device.objects.create(
        user=alice,
        kind="webpush",
        subscription={
            "endpoint": "https://push.example.net/gone",
            "keys": {"p256dh": b64(public), "auth": b64(os.urandom(16))},
        },
    )
    monkeypatch.setattr(WebPushNotifier, "session", lambda self: _session_with(RecordingAdapter(status=410)))
    client, _ = make_client("poll")
    ar = services.create_request(
        expires_in=60, client=client, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    settings = {
        "WEBPUSH_VAPID_PRIVATE_KEY": vapid.private_pem().decode(),
        "WEBPUSH_VAPID_SUBJECT": "mailto:o@example.com",
    }
    with override_settings(CIBA=settings):
        outcome = WebPushNotifier().send(auth_request=ar, devices=list(Device.objects.all()))
    assert not outcome.delivered and outcome.retry is False and "410" in outcome.error


def _session_with(adapter):
    session = requests.Session()
    session.mount("https://", adapter)
    return session


# --- the notifier contract ----------------------------------------------------------------


class PerDeviceNotifier:
    """A notifier as a site writes one on the base: one call per device of its kind."""

    reached: list = []


def _per_device_notifier(fail_tokens=(), transient=True):
    from ciba.backends.notifier_base import BaseNotifier
    from ciba.errors import NotificationError

    class Notifier(BaseNotifier):
        device_kind = "apns"

        def send_one(self, *, auth_request, target, context):
            if target.token in fail_tokens:
                raise NotificationError(f"apns {target.token}: HTTP 503", transient=transient)
            PerDeviceNotifier.reached.append(target.token)

    return Notifier


def test_the_base_notifier_reaches_each_device_of_its_kind_and_counts_one_success_as_sent(alice, make_client):
    PerDeviceNotifier.reached = []
    for token in ("one", "two", "three"):
        Device.objects.create(user=alice, kind="apns", token=token)
    Device.objects.create(user=alice, kind="fcm", token="not-mine")
    app, _ = make_client("poll")
    ar = services.create_request(
        expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    outcome = _per_device_notifier(fail_tokens={"two"})().send(
        auth_request=ar, devices=list(Device.objects.all())
    )
    assert outcome.delivered and sorted(PerDeviceNotifier.reached) == ["one", "three"]
    everything_fails = _per_device_notifier(fail_tokens={"one", "two", "three"}, transient=False)()
    outcome = everything_fails.send(auth_request=ar, devices=list(Device.objects.all()))
    assert not outcome.delivered and not outcome.retry and "apns two" in outcome.error


def test_a_sites_own_notifier_runs_after_commit_and_the_notification_is_recorded_sent(
    client, alice, make_client, django_capture_on_commit_callbacks
):
    app, secret = make_client("poll")
    with (
        override_settings(CIBA={"NOTIFIER_CLASSES": ["tests.integration.notifiers.CacheRecordingNotifier"]}),
        django_capture_on_commit_callbacks(execute=True),
    ):
        ar = start(client, app, secret)
    from django.core.cache import cache

    assert cache.get(f"ciba-test-notified:{ar.auth_req_id}") == "W4SCT"
    ar.refresh_from_db()
    assert ar.device_notification_status == "sent"


def test_a_sent_notification_is_not_marked_failed_by_a_late_duplicate_run(alice, make_client):
    app, _ = make_client("poll")
    ar = services.create_request(
        expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    Status = AuthenticationRequest.NotificationStatus
    assert AuthenticationRequest.objects.record_notification(ar.pk, Status.SENT)
    assert not AuthenticationRequest.objects.record_notification(
        ar.pk, Status.FAILED, device_notification_error="x"
    )
    ar.refresh_from_db()
    assert ar.device_notification_status == "sent" and ar.device_notification_error == ""
    assert services.resend_device_notification(ar)  # an operator may always re-send
    ar.refresh_from_db()
    assert ar.device_notification_status == "queued"


# --- The outbox: nothing is lost to a broker outage or a dead worker -------------------------------


def _queued_request(alice, make_client, **fields):
    """A request whose notification task never ran (the broker was down at commit time)."""
    from datetime import timedelta

    from django.utils import timezone

    app, _ = make_client("poll")
    ar = services.create_request(
        expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    AuthenticationRequest.objects.filter(pk=ar.pk).update(
        device_notification_due_at=timezone.now() - timedelta(seconds=60), **fields
    )
    return ar


def test_a_notification_whose_task_never_ran_is_sent_by_the_sweep(alice, make_client, recorder):
    from ciba.tasks import sweep_callbacks

    ar = _queued_request(alice, make_client)
    with override_settings(CIBA=webhook_settings(recorder)):
        assert sweep_callbacks.apply().get() == 1
        assert sweep_callbacks.apply().get() == 0  # sent once: nothing left to sweep
    ar.refresh_from_db()
    assert ar.device_notification_status == "sent"
    assert len(recorder.received) == 1


def test_a_fresh_notification_is_left_to_its_own_task_by_the_sweep(alice, make_client, recorder):
    from ciba.tasks import sweep_callbacks

    app, _ = make_client("poll")
    services.create_request(
        expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    with override_settings(CIBA=webhook_settings(recorder)):
        assert sweep_callbacks.apply().get() == 0
    assert recorder.received == []


def test_a_notification_held_by_a_running_worker_is_neither_swept_nor_sent_twice(
    alice, make_client, recorder
):
    from datetime import timedelta

    from django.utils import timezone

    from ciba.tasks import notify_authentication_device, sweep_callbacks

    held = timezone.now() + timedelta(seconds=30)
    ar = _queued_request(alice, make_client, device_notification_lease_until=held)
    with override_settings(CIBA=webhook_settings(recorder)):
        assert sweep_callbacks.apply().get() == 0
        assert notify_authentication_device.apply(args=[ar.pk]).get() == "skipped"
        # The holder died: once its lease has run out, the next run sends it.
        AuthenticationRequest.objects.filter(pk=ar.pk).update(
            device_notification_lease_until=timezone.now() - timedelta(seconds=1)
        )
        assert notify_authentication_device.apply(args=[ar.pk]).get() == "sent"
    assert len(recorder.received) == 1


@pytest.mark.parametrize("end", ["expired", "denied"])
def test_the_sweep_does_not_notify_a_request_that_is_over(alice, make_client, recorder, end):
    from datetime import timedelta

    from django.utils import timezone

    from ciba.tasks import sweep_callbacks

    ar = _queued_request(alice, make_client)
    if end == "expired":
        AuthenticationRequest.objects.filter(pk=ar.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    else:
        services.deny(AuthenticationRequest.objects.get(pk=ar.pk), user=alice)
    with override_settings(CIBA=webhook_settings(recorder)):
        assert sweep_callbacks.apply().get() == 0
    assert recorder.received == []


# --- batched device notifications (NOTIFY_BATCH_WINDOW) -------------------------------------


def _pending(client_app, user, n, message="BATCH"):
    return [
        services.create_request(
            expires_in=120,
            client=client_app,
            user=user,
            hint_kind="login_hint",
            scope="openid",
            interval=5,
            binding_message=f"{message}{i}",
        )
        for i in range(n)
    ]


def test_a_batch_task_notifies_every_due_request_once_and_records_each(
    alice, make_client, recorder, settings
):
    """What a worker does with one ``ciba.notify_due_devices`` task: every due entry, in
    batches smaller than the backlog, each sent once and recorded ``sent``."""
    from ciba import device_outbox as notifications

    settings.CIBA = {**webhook_settings(recorder), **NO_USER_LIMITS, "NOTIFY_BATCH_SIZE": 4}
    app, _ = make_client("poll")
    requests_ = _pending(app, alice, 10)  # the test's transaction never commits: no task ran
    decided, expired = requests_[0], requests_[1]
    services.deny(decided, user=alice)
    AuthenticationRequest.objects.filter(pk=expired.pk).update(expires_at=expired.created_at)
    assert recorder.received == []
    assert notifications.notify_due() == 8
    ids = [json.loads(body)["data"]["binding_message"] for _, _, body in recorder.received]
    assert sorted(ids) == sorted(f"BATCH{i}" for i in range(2, 10))
    assert AuthenticationRequest.objects.filter(device_notification_status="sent").count() == 8
    assert notifications.notify_due() == 0  # nothing is due twice
    assert len(recorder.received) == 8


def test_in_a_batch_a_failing_notification_is_recorded_alone(alice, make_client, recorder, settings):
    from ciba import device_outbox as notifications

    settings.CIBA = {**webhook_settings(recorder), **NO_USER_LIMITS}
    app, _ = make_client("poll")
    _pending(app, alice, 3)
    recorder.statuses = [204, 400, 204]  # the second POST is refused for good
    assert notifications.notify_due() == 3
    statuses = sorted(AuthenticationRequest.objects.values_list("device_notification_status", flat=True))
    assert statuses == ["failed", "sent", "sent"]
    failed = AuthenticationRequest.objects.get(device_notification_status="failed")
    assert failed.device_notification_attempts == 1 and "400" in failed.device_notification_error


def test_a_batch_reads_each_client_once_and_each_notification_names_its_own(
    alice, make_client, recorder, settings
):
    """The batch attaches one instance per client (one query) instead of one per request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from ciba import device_outbox as notifications

    settings.CIBA = {**webhook_settings(recorder), **NO_USER_LIMITS}
    first, _ = make_client("poll", name="First RP")
    second, _ = make_client("poll", name="Second RP")
    _pending(first, alice, 2)
    _pending(second, alice, 2, message="OTHER")
    table = first._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        assert notifications.notify_due() == 4
    assert sum(f'FROM "{table}"' in q["sql"] for q in queries.captured_queries) == 1
    names = sorted(json.loads(body)["data"]["client_name"] for _, _, body in recorder.received)
    assert names == ["First RP", "First RP", "Second RP", "Second RP"]


def test_a_batch_leaves_out_a_request_whose_client_is_gone(alice, make_client, recorder, settings):
    """A client deleted between the claim and the read of its requests: nothing is sent."""
    from unittest import mock

    from django.utils import timezone

    from ciba import device_outbox as notifications

    settings.CIBA = {**webhook_settings(recorder), **NO_USER_LIMITS}
    app, _ = make_client("poll")
    requests_ = _pending(app, alice, 2)
    with mock.patch.object(
        notifications.AuthenticationRequest._meta.get_field("client").related_model._base_manager,
        "in_bulk",
        return_value={},
    ):
        assert notifications._run_batch([ar.pk for ar in requests_], timezone.now()) == 0
    assert recorder.received == []
