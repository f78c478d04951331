"""``PENDING_CAP_ACTION="supersede"`` (issue 27): at the (client, user) cap a new request
replaces that client's oldest pending one for the user, which becomes cancelled (reason
``superseded``), in the same locked transaction; the block list, the rate and the user-wide
cap still refuse. The concurrent case runs on PostgreSQL: tests/integration/test_cancel_races.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from ciba import services, signals, user_limits
from ciba.errors import AccessDenied, RequestNotPending, TemporarilyUnavailable
from ciba.models import AuthenticationRequest, CallbackDelivery, ClientBlock
from ciba.polling import PollStateUnavailable
from tests.conftest import basic_auth
from tests.protocol import BACKCHANNEL, FORM, oauth_error, poll

State = AuthenticationRequest.State
NO_CAPS = {"MAX_PENDING_PER_USER": None, "MAX_PENDING_PER_CLIENT_USER": None, "USER_REQUEST_RATE": None}


def supersede(**values: Any) -> dict[str, Any]:
    """CIBA settings that supersede at the caps given (every other limit off)."""
    return {
        "CALLBACK_ALLOW_HTTP": True,
        "CALLBACK_ALLOW_PRIVATE_NETWORKS": True,
        **NO_CAPS,
        "PENDING_CAP_ACTION": "supersede",
        **values,
    }


def new(client: Any, user: Any, **extra: Any) -> AuthenticationRequest:
    return services.create_request(
        expires_in=300, client=client, user=user, hint_kind="login_hint", scope="openid", interval=5, **extra
    )


def states(*requests: AuthenticationRequest) -> list[tuple[str, str]]:
    for ar in requests:
        ar.refresh_from_db()
    return [(ar.state, ar.cancel_reason) for ar in requests]


PENDING = (State.PENDING, "")
SUPERSEDED = (State.CANCELLED, "superseded")


@pytest.fixture
def cancelled_signals() -> Iterator[list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        sent.append(kwargs)

    signals.auth_request_cancelled.connect(receiver, weak=False)
    yield sent
    signals.auth_request_cancelled.disconnect(receiver)


@override_settings(CIBA=supersede(MAX_PENDING_PER_CLIENT_USER=2))
def test_at_the_client_cap_the_oldest_pending_request_of_that_client_is_superseded(
    alice, make_client, cancelled_signals, django_capture_on_commit_callbacks
):
    kiosk, _ = make_client()
    shop, _ = make_client()
    first, second = new(kiosk, alice), new(kiosk, alice)
    theirs = new(shop, alice)
    with django_capture_on_commit_callbacks(execute=True):
        third = new(kiosk, alice)
    assert states(first, second, third, theirs) == [SUPERSEDED, PENDING, PENDING, PENDING]
    assert [(s["request"].pk, s["reason"]) for s in cancelled_signals] == [(first.pk, "superseded")]
    with django_capture_on_commit_callbacks(execute=True):
        fourth = new(kiosk, alice)
    assert states(second, third, fourth) == [SUPERSEDED, PENDING, PENDING]


@override_settings(CIBA=supersede(MAX_PENDING_PER_CLIENT_USER=1))
def test_a_decided_or_expired_request_is_not_superseded(alice, make_client):
    kiosk, _ = make_client()
    denied = new(kiosk, alice)
    services.deny(denied, user=alice)
    pending = new(kiosk, alice)
    assert states(denied, pending) == [(State.DENIED, ""), PENDING]
    newest = new(kiosk, alice)
    assert states(denied, pending, newest) == [(State.DENIED, ""), SUPERSEDED, PENDING]


@pytest.mark.parametrize("mode", ["poll", "ping", "push"])
def test_the_superseded_request_sends_no_callback_and_polls_get_expired_token(
    client, alice, make_client, settings, mode
):
    settings.CIBA = supersede(MAX_PENDING_PER_CLIENT_USER=1)
    kiosk, secret = make_client(mode)
    extra = {"client_notification_token": "token-" + "x" * 20} if mode != "poll" else {}
    old = new(kiosk, alice, **extra)
    new(kiosk, alice, **extra)
    assert states(old) == [SUPERSEDED]
    assert not CallbackDelivery.objects.filter(request=old).exists()
    if mode != "push":
        oauth_error(poll(client, kiosk, secret, old.auth_req_id), 400, "expired_token")
    with pytest.raises(RequestNotPending):
        services.approve(old, user=alice)


def test_over_http_the_third_request_is_accepted_and_the_first_withdrawn(
    client, alice, make_client, settings
):
    settings.CIBA = supersede(MAX_PENDING_PER_CLIENT_USER=2)
    kiosk, secret = make_client()
    ids = []
    for _ in range(3):
        response = client.post(
            BACKCHANNEL,
            "scope=openid&login_hint=alice",
            content_type=FORM,
            HTTP_AUTHORIZATION=basic_auth(kiosk.client_id, secret),
        )
        assert response.status_code == 200, response.content
        ids.append(response.json()["auth_req_id"])
    by_id = dict(AuthenticationRequest.objects.values_list("auth_req_id", "state"))
    assert [by_id[i] for i in ids] == [State.CANCELLED, State.PENDING, State.PENDING]
    oauth_error(poll(client, kiosk, secret, ids[0]), 400, "expired_token")


def test_the_default_refuses_instead(alice, make_client, settings):
    settings.CIBA = {**supersede(MAX_PENDING_PER_CLIENT_USER=2), "PENDING_CAP_ACTION": "refuse"}
    kiosk, _ = make_client()
    first, second = new(kiosk, alice), new(kiosk, alice)
    with pytest.raises(AccessDenied):
        new(kiosk, alice)
    assert states(first, second) == [PENDING, PENDING]


@override_settings(CIBA=supersede(MAX_PENDING_PER_CLIENT_USER=2, MAX_PENDING_PER_USER=3))
def test_the_user_wide_cap_still_refuses_a_client_below_its_own_cap(alice, make_client):
    kiosk, _ = make_client()
    shop, _ = make_client()
    mine = new(kiosk, alice)
    theirs = [new(shop, alice), new(shop, alice)]
    with pytest.raises(AccessDenied) as exc:
        new(kiosk, alice)
    assert exc.value.description == user_limits.REFUSAL
    assert states(mine, *theirs) == [PENDING, PENDING, PENDING]


@override_settings(CIBA=supersede(MAX_PENDING_PER_CLIENT_USER=2, MAX_PENDING_PER_USER=3))
def test_a_client_at_its_cap_replaces_its_own_request_when_the_user_is_at_theirs(alice, make_client):
    """The replacement adds nothing to the user's pending count: 3 before, 3 after."""
    kiosk, _ = make_client()
    shop, _ = make_client()
    mine = [new(kiosk, alice), new(kiosk, alice)]
    theirs = new(shop, alice)
    newest = new(kiosk, alice)
    assert states(*mine, theirs, newest) == [SUPERSEDED, PENDING, PENDING, PENDING]
    assert AuthenticationRequest.objects.filter(user=alice, state=State.PENDING).count() == 3


def test_a_lowered_cap_supersedes_enough_to_bring_the_client_one_below_it(alice, make_client, settings):
    settings.CIBA = supersede(MAX_PENDING_PER_CLIENT_USER=2)
    kiosk, _ = make_client()
    old = [new(kiosk, alice), new(kiosk, alice)]
    settings.CIBA = {**settings.CIBA, "MAX_PENDING_PER_CLIENT_USER": 1}
    newest = new(kiosk, alice)
    assert states(*old, newest) == [SUPERSEDED, SUPERSEDED, PENDING]


@override_settings(CIBA=supersede(MAX_PENDING_PER_CLIENT_USER=1, USER_REQUEST_RATE="2/hour"))
@pytest.mark.parametrize("shared_cache", [True, False], ids=["rate in the cache", "rate in the database"])
def test_the_rate_still_refuses_and_nothing_is_superseded(alice, make_client, monkeypatch, shared_cache):
    monkeypatch.setattr(user_limits, "cache_is_shared", lambda: shared_cache)
    kiosk, _ = make_client()
    new(kiosk, alice)
    second = new(kiosk, alice)
    with pytest.raises(AccessDenied):
        new(kiosk, alice)
    assert states(second) == [PENDING]


@override_settings(CIBA=supersede(MAX_PENDING_PER_CLIENT_USER=1))
def test_a_block_still_refuses_and_nothing_is_superseded(alice, make_client):
    kiosk, _ = make_client()
    old = new(kiosk, alice)
    ClientBlock.objects.create(user=alice, client=kiosk)
    with pytest.raises(AccessDenied):
        new(kiosk, alice)
    assert states(old) == [PENDING]


@override_settings(CIBA=supersede(MAX_PENDING_PER_CLIENT_USER=0))
def test_a_cap_of_zero_refuses_there_is_nothing_to_replace(alice, make_client):
    kiosk, _ = make_client()
    with pytest.raises(AccessDenied):
        new(kiosk, alice)


@override_settings(CIBA=supersede(MAX_PENDING_PER_CLIENT_USER=1))
def test_a_victim_decided_between_the_count_and_the_cancel_keeps_its_decision(
    alice, make_client, monkeypatch, cancelled_signals, django_capture_on_commit_callbacks
):
    """The user approves the oldest after the counts were taken: it stays approved, the new
    request is stored (the approval made the room), and nothing is reported cancelled."""
    kiosk, _ = make_client()
    old = new(kiosk, alice)
    real_admit = user_limits.admit

    def admit_then_approve(**kwargs: Any) -> user_limits.Admission:
        admission = real_admit(**kwargs)
        services.approve(AuthenticationRequest.objects.get(pk=old.pk), user=alice)
        return admission

    monkeypatch.setattr(user_limits, "admit", admit_then_approve)
    with django_capture_on_commit_callbacks(execute=True):
        newest = new(kiosk, alice)
    assert states(old, newest) == [(State.APPROVED, ""), PENDING]
    assert cancelled_signals == []


@override_settings(CIBA=supersede(MAX_PENDING_PER_CLIENT_USER=1))
def test_when_the_poll_state_cannot_be_told_nothing_is_superseded_or_stored(alice, make_client, monkeypatch):
    kiosk, _ = make_client()
    old = new(kiosk, alice)

    class Unreachable:
        def finish(self, ar: Any) -> None:
            raise PollStateUnavailable("down")

    monkeypatch.setattr(services, "poll_state", lambda: Unreachable())
    with pytest.raises(TemporarilyUnavailable):
        new(kiosk, alice)
    assert states(old) == [PENDING]
    assert AuthenticationRequest.objects.filter(user=alice).count() == 1


@override_settings(CIBA=supersede(MAX_PENDING_PER_CLIENT_USER=1))
def test_cancelled_requests_are_deleted_with_the_other_finished_ones(alice, make_client):
    from datetime import timedelta

    from django.utils import timezone

    kiosk, _ = make_client()
    old = new(kiosk, alice)
    newest = new(kiosk, alice)
    later = timezone.now() + timedelta(days=2)
    assert services.delete_finished(older_than=timedelta(days=1), now=later) == 1
    assert list(AuthenticationRequest.objects.values_list("pk", flat=True)) == [newest.pk]
    assert not AuthenticationRequest.objects.filter(pk=old.pk).exists()
