"""The service layer: the one place a CIBA request changes state."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ciba import services, signals
from ciba.models import AuthenticationRequest

State = AuthenticationRequest.State


@pytest.fixture
def pending(alice, make_client):
    client, _ = make_client()
    return services.create_request(
        expires_in=300,
        client=client,
        user=alice,
        hint_kind="login_hint",
        scope="openid profile email",
        interval=5,
    )


@pytest.fixture
def received():
    events = []

    def receiver(signal, sender, **kwargs):
        events.append((signal, kwargs))

    hooked = [
        signals.auth_request_created,
        signals.auth_request_approved,
        signals.auth_request_denied,
        signals.auth_request_expired,
        signals.tokens_issued,
    ]
    for s in hooked:
        s.connect(receiver)
    yield events
    for s in hooked:
        s.disconnect(receiver)


def test_approval_records_who_when_and_what(pending, alice):
    services.approve(pending, user=alice, scopes=["email"], acr="urn:acr:high")
    pending.refresh_from_db()
    assert pending.state == State.APPROVED
    assert pending.decided_by == alice and pending.decided_at is not None
    assert pending.granted_scope == "openid email"  # openid is always kept
    assert pending.acr == "urn:acr:high"


def test_an_approval_cannot_add_scopes_that_were_not_requested(pending, alice):
    with pytest.raises(services.InvalidApproval):
        services.approve(pending, user=alice, scopes=["openid", "payments"])
    pending.refresh_from_db()
    assert pending.state == State.PENDING


def test_a_second_decision_is_refused_with_the_current_state(pending, alice):
    services.deny(pending, user=alice)
    again = AuthenticationRequest.objects.get(pk=pending.pk)
    with pytest.raises(services.NotPending) as exc:
        services.approve(again, user=alice)
    assert exc.value.state == State.DENIED


def test_an_expired_request_is_never_approved(pending, alice):
    AuthenticationRequest.objects.filter(pk=pending.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    stale = AuthenticationRequest.objects.get(pk=pending.pk)
    with pytest.raises(services.NotPending) as exc:
        services.approve(stale, user=alice)
    assert exc.value.state == State.EXPIRED
    assert AuthenticationRequest.objects.get(pk=pending.pk).state == State.PENDING  # the sweep marks it


def test_tokens_are_marked_issued_once(pending, alice):
    services.approve(pending, user=alice)
    assert services.mark_issued(pending)
    assert not services.mark_issued(AuthenticationRequest.objects.get(pk=pending.pk))


def test_expire_marks_only_requests_past_expires_at(pending):
    assert not services.expire(pending)
    assert services.expire(pending, now=pending.expires_at + timedelta(seconds=1))
    assert AuthenticationRequest.objects.get(pk=pending.pk).state == State.EXPIRED


def test_signals_fire_after_commit_with_their_arguments(
    alice, make_client, received, django_capture_on_commit_callbacks
):
    client, _ = make_client()
    with django_capture_on_commit_callbacks(execute=True):
        ar = services.create_request(
            expires_in=300, client=client, user=alice, hint_kind="login_hint", scope="openid", interval=5
        )
        assert received == []  # nothing before commit
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(ar, user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.mark_issued(ar)
    assert [(s, sorted(kw)) for s, kw in received] == [
        (signals.auth_request_created, ["request"]),
        (signals.auth_request_approved, ["request", "user"]),
        (signals.tokens_issued, ["request"]),
    ]
    assert received[1][1]["user"] == alice


def test_a_refused_transition_fires_no_signal(pending, alice, received, django_capture_on_commit_callbacks):
    services.deny(pending, user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(services.NotPending):
            services.approve(AuthenticationRequest.objects.get(pk=pending.pk), user=alice)
    assert all(s is not signals.auth_request_approved for s, _ in received)
