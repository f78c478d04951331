"""The lifecycle of a CIBA request: pending → approved | denied | expired; approved → issued."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ciba.models import AuthenticationRequest

State = AuthenticationRequest.State


@pytest.fixture
def pending(alice, make_client):
    client, _ = make_client()
    return AuthenticationRequest.objects.create(
        client=client,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        expires_at=timezone.now() + timedelta(minutes=5),
        interval=5,
    )


def test_auth_req_ids_are_url_safe_and_carry_at_least_160_bits(pending):
    other = AuthenticationRequest(auth_req_id=AuthenticationRequest._meta.get_field("auth_req_id").default())
    for value in (pending.auth_req_id, other.auth_req_id):
        assert len(value) * 6 >= 160
        assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert pending.auth_req_id != other.auth_req_id


def test_an_approved_request_is_issued_exactly_once(pending):
    assert pending.transition_to(State.APPROVED, decided_at=timezone.now())
    assert AuthenticationRequest.objects.transition(pending.pk, State.ISSUED)
    assert not AuthenticationRequest.objects.transition(pending.pk, State.ISSUED)
    pending.refresh_from_db()
    assert pending.state == State.ISSUED


def test_a_decided_request_cannot_be_decided_again(pending):
    assert pending.transition_to(State.DENIED)
    assert not AuthenticationRequest.objects.transition(pending.pk, State.APPROVED)
    pending.refresh_from_db()
    assert pending.state == State.DENIED


def test_a_pending_request_cannot_be_issued(pending):
    assert not pending.transition_to(State.ISSUED)
    assert pending.state == State.PENDING


def test_past_expires_at_a_request_behaves_as_expired_before_any_sweep(pending):
    later = pending.expires_at + timedelta(seconds=1)
    assert pending.effective_state(later) == State.EXPIRED
    assert not pending.transition_to(State.APPROVED, now=later)
    assert pending.expires_in(later) == 0


def test_only_requests_past_expires_at_can_be_marked_expired(pending):
    assert not pending.transition_to(State.EXPIRED)
    assert list(AuthenticationRequest.objects.past_expiry()) == []
    later = pending.expires_at + timedelta(seconds=1)
    assert list(AuthenticationRequest.objects.past_expiry(later)) == [pending]
    assert pending.transition_to(State.EXPIRED, now=later)
    assert not pending.transition_to(State.EXPIRED, now=later)


def test_an_approved_request_not_collected_in_time_expires(pending):
    pending.transition_to(State.APPROVED)
    later = pending.expires_at + timedelta(seconds=1)
    assert pending.effective_state(later) == State.EXPIRED
    assert not AuthenticationRequest.objects.transition(pending.pk, State.ISSUED, now=later)


def test_str_never_shows_the_whole_auth_req_id(pending):
    assert pending.auth_req_id not in str(pending)
