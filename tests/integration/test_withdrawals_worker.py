"""Withdrawn prompts on the production parts (issue 27): a real Celery worker on the Redis
broker sends the device notification and then, once the request is decided, its withdrawal, to
a real Web Push endpoint on loopback, encrypted and VAPID-signed as a push service receives it."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ciba import services
from ciba.backends.webpush import WebPushNotifier
from ciba.models import AuthenticationRequest, Device
from tests.integration.conftest import _running, wait_for

pytest.importorskip("pywebpush", reason="the webpush extra is not installed")


class EnvVapidWebPushNotifier(WebPushNotifier):
    """The shipped notifier with its VAPID key from the worker's environment (the test settings
    module sets none)."""

    required_settings = ()

    def vapid_private_key(self) -> str:
        return os.environ["CIBA_TEST_VAPID_KEY"]

    def vapid_subject(self) -> str:
        return "mailto:ops@example.com"


@pytest.fixture
def vapid_pem() -> str:
    from py_vapid import Vapid

    vapid = Vapid()
    vapid.generate_keys()
    return vapid.private_pem().decode()


@pytest.fixture
def push_worker(transactional_db: Any, tmp_path: Path, vapid_pem: str) -> Iterator[Any]:
    env = {
        "CIBA_TEST_NOTIFIERS": f"{__name__}.EnvVapidWebPushNotifier",
        "CIBA_TEST_VAPID_KEY": vapid_pem,
    }
    yield from _running(("--pool=solo", "--beat", f"--schedule={tmp_path / 'beat-schedule'}"), env=env)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_decided_requests_withdrawal_reaches_a_real_web_push_endpoint(
    push_worker, alice, make_client, recorder
):
    import http_ece

    receiver = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    public = receiver.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    Device.objects.create(
        user=alice,
        kind="webpush",
        subscription={
            "endpoint": recorder.url("/push/phone"),
            "keys": {"p256dh": _b64(public), "auth": _b64(auth)},
        },
    )
    app, _ = make_client("poll", name="Corner Shop")
    ar = services.create_request(
        expires_in=120, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    assert wait_for(lambda: len(recorder.received) == 1), "the prompt was not pushed"
    assert wait_for(
        lambda: AuthenticationRequest.objects.get(pk=ar.pk).device_notification_status == "sent"
    ), "the notification was not recorded"

    services.deny(ar, user=alice)

    assert wait_for(lambda: len(recorder.received) == 2), "the withdrawal was not pushed"
    messages = [
        json.loads(http_ece.decrypt(body, private_key=receiver, auth_secret=auth, version="aes128gcm"))
        for _, _, body in recorder.received
    ]
    assert [m["type"] for m in messages] == ["ciba.authentication_requested", "ciba.authentication_withdrawn"]
    assert messages[1] == {
        "type": "ciba.authentication_withdrawn",
        "auth_req_id": ar.auth_req_id,
        "state": "denied",
        "reason": "",
        "client_name": "Corner Shop",
    }
    assert wait_for(lambda: AuthenticationRequest.objects.get(pk=ar.pk).device_notification_due_at is None)
