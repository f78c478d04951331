"""Users register the devices that should be told about their CIBA requests."""

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from ciba.models import Device

API = "/o/ciba/devices/"
SUBSCRIPTION = {
    "endpoint": "https://push.example.net/send/abc",
    "keys": {
        # A real P-256 public key and a 16-byte secret: registration checks both.
        "p256dh": "BGXeFf7LfsPN-1cPqHq3HOHxjonVl2sHBXzbv_X_hbdgZ9hQmLaQO62CvrDJiPefHylenBKFxYCxmYNhIO0bv34",
        "auth": "c2l4dGVlbi1ieXRlLWtleQ",
    },
}


def as_user(user):
    token = get_access_token_model().objects.create(
        user=user, token=uuid.uuid4().hex, scope="ciba:consent", expires=timezone.now() + timedelta(hours=1)
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {token.token}")


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob")


def test_a_user_adds_lists_and_removes_their_devices(alice):
    api = as_user(alice)
    created = api.post(
        API, {"kind": "fcm", "token": "fcm-token-1", "label": "Pixel"}, content_type="application/json"
    )
    assert created.status_code == 201, created.content
    device = created.json()
    assert device["kind"] == "fcm" and device["label"] == "Pixel"
    assert "token" not in device  # push tokens are credentials: never echoed back
    assert [d["id"] for d in api.get(API).json()] == [device["id"]]
    assert api.delete(f"{API}{device['id']}/").status_code == 204
    assert api.get(API).json() == []


def test_web_push_devices_register_a_subscription(alice):
    api = as_user(alice)
    response = api.post(
        API, {"kind": "webpush", "subscription": SUBSCRIPTION}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    assert Device.objects.get().subscription == SUBSCRIPTION


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "fcm"},
        {"kind": "fcm", "token": "x" * 5000},
        {"kind": "fcm", "token": "a\x00b"},
        {"kind": "webpush"},
        {"kind": "webpush", "subscription": {**SUBSCRIPTION, "endpoint": "http://push.example.net/x"}},
        {"kind": "webpush", "subscription": {"endpoint": SUBSCRIPTION["endpoint"], "keys": {"auth": "x"}}},
        {"kind": "carrier-pigeon", "token": "coo"},
    ],
)
def test_bad_device_registrations_are_refused(alice, body):
    response = as_user(alice).post(API, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert not Device.objects.exists()


def test_nobody_sees_or_removes_someone_elses_device(alice, bob):
    device = Device.objects.create(user=alice, kind="fcm", token="alice-token")
    bobs = as_user(bob)
    assert bobs.get(API).json() == []
    assert bobs.get(f"{API}{device.public_id}/").status_code == 404
    assert bobs.delete(f"{API}{device.public_id}/").status_code == 404
    assert Device.objects.filter(pk=device.pk).exists()


def test_anonymous_callers_cannot_register_devices(db):
    assert Client().post(API, {"kind": "fcm", "token": "t"}, content_type="application/json").status_code in (
        401,
        403,
    )
