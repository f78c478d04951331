"""The user pushes back (issue 27): "I did not ask for this" denies a request exactly as a
denial does, records the report, optionally blocks the client, and tells the site."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from ciba import services, signals
from ciba.errors import AccessDenied, RequestNotPending
from ciba.models import AuthenticationRequest, CallbackDelivery, ClientBlock

State = AuthenticationRequest.State
NO_CAPS = {"MAX_PENDING_PER_USER": None, "MAX_PENDING_PER_CLIENT_USER": None, "USER_REQUEST_RATE": None}


def new(client: Any, user: Any) -> AuthenticationRequest:
    token = {"client_notification_token": "abc"} if client.receives_notifications else {}
    return services.create_request(
        expires_in=300, client=client, user=user, hint_kind="login_hint", scope="openid", interval=5, **token
    )


@pytest.fixture
def reported() -> Any:
    events: list[dict[str, Any]] = []

    def receiver(signal: Any, sender: Any, **kwargs: Any) -> None:
        events.append({"signal": signal, **kwargs})

    signals.auth_request_reported.connect(receiver)
    signals.auth_request_denied.connect(receiver)
    yield events
    signals.auth_request_reported.disconnect(receiver)
    signals.auth_request_denied.disconnect(receiver)


def test_a_report_denies_records_when_and_blocks_nothing_unless_asked(
    alice, make_client, reported, django_capture_on_commit_callbacks
):
    kiosk, _ = make_client()
    ar = new(kiosk, alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.report(ar, user=alice, block=False)
    ar.refresh_from_db()
    assert ar.state == State.DENIED and ar.decided_by == alice
    assert ar.reported_at is not None and ar.reported_at == ar.decided_at
    assert not ClientBlock.objects.exists()
    assert [e["signal"] for e in reported] == [signals.auth_request_denied, signals.auth_request_reported]
    assert reported[1]["request"] == ar and reported[1]["user"] == alice and reported[1]["blocked"] is False
    new(kiosk, alice)  # not blocked: the client may ask again


def test_the_signal_waits_for_the_commit(alice, make_client, reported, django_capture_on_commit_callbacks):
    ar = new(make_client()[0], alice)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.report(ar, user=alice, block=True)
    assert reported == [] and len(callbacks) == 2


def test_a_report_with_block_keeps_the_client_from_asking_again(
    alice, make_client, reported, django_capture_on_commit_callbacks
):
    kiosk, _ = make_client()
    shop, _ = make_client()
    ar = new(kiosk, alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.report(ar, user=alice, block=True)
    block = ClientBlock.objects.get()
    assert (block.user, block.client, block.reported_request) == (alice, kiosk, ar)
    assert reported[-1]["blocked"] is True
    with pytest.raises(AccessDenied):
        new(kiosk, alice)
    new(shop, alice)  # only that client is blocked


@override_settings(CIBA=NO_CAPS)
def test_the_block_holds_without_any_cap(alice, make_client):
    kiosk, _ = make_client()
    services.report(new(kiosk, alice), user=alice, block=True)
    with pytest.raises(AccessDenied):
        new(kiosk, alice)


def test_blocking_twice_keeps_one_block_with_the_first_report(alice, make_client):
    kiosk, _ = make_client()
    first = new(kiosk, alice)
    second = new(kiosk, alice)
    services.report(first, user=alice, block=True)
    services.report(second, user=alice, block=True)  # pending from before the block
    assert ClientBlock.objects.get().reported_request == first
    second.refresh_from_db()
    assert second.state == State.DENIED and second.reported_at is not None


@pytest.mark.parametrize("decide", ["approve", "deny", "report", "expire"])
def test_a_request_no_longer_pending_is_not_reported_and_nothing_is_blocked(
    alice, make_client, decide, reported
):
    from datetime import timedelta

    from django.utils import timezone

    kiosk, _ = make_client()
    ar = new(kiosk, alice)
    if decide == "expire":
        AuthenticationRequest.objects.filter(pk=ar.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        expected = State.EXPIRED
    elif decide == "report":
        services.report(AuthenticationRequest.objects.get(pk=ar.pk), user=alice, block=False)
        expected = State.DENIED
    else:
        getattr(services, decide)(AuthenticationRequest.objects.get(pk=ar.pk), user=alice)
        expected = State.APPROVED if decide == "approve" else State.DENIED
    reported.clear()
    with pytest.raises(RequestNotPending) as exc:
        services.report(ar, user=alice, block=True)
    assert exc.value.state == expected
    assert not ClientBlock.objects.exists() and reported == []
    assert AuthenticationRequest.objects.get(pk=ar.pk).reported_at is None or decide == "report"


@pytest.mark.parametrize(
    ("mode", "kind", "error"), [("push", "push_error", "access_denied"), ("ping", "ping", "")]
)
def test_the_client_is_told_as_of_any_denial(alice, make_client, mode, kind, error):
    app, _ = make_client(mode)
    ar = new(app, alice)
    services.report(ar, user=alice, block=True)
    delivery = CallbackDelivery.objects.get(request=ar)
    assert (delivery.kind, delivery.error_code) == (kind, error)


def test_a_poll_client_learns_access_denied_as_of_any_denial(client, alice, make_client):
    from tests.conftest import basic_auth, start_request

    kiosk, secret = make_client()
    auth_req_id = start_request(client, kiosk, secret, "scope=openid&login_hint=alice")
    services.report(AuthenticationRequest.objects.get(auth_req_id=auth_req_id), user=alice, block=True)
    response = client.post(
        "/o/token/",
        f"grant_type=urn%3Aopenid%3Aparams%3Agrant-type%3Aciba&auth_req_id={auth_req_id}",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(kiosk.client_id, secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "access_denied"


def test_unblock_lets_the_client_ask_again(alice, make_client):
    kiosk, _ = make_client()
    services.report(new(kiosk, alice), user=alice, block=True)
    assert services.unblock(alice, kiosk) is True
    assert services.unblock(alice, kiosk) is False
    new(kiosk, alice)


def test_a_block_is_per_user(alice, make_client, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    kiosk, _ = make_client()
    services.report(new(kiosk, alice), user=alice, block=True)
    new(kiosk, bob)
