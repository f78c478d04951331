"""A conditional UPDATE compiled once (``ciba.statements.update``) changes what the ORM's
``QuerySet.update`` would, with the ORM's own SQL, and leaves to the ORM what it cannot prove."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ciba import services
from ciba.models import AuthenticationRequest, CallbackDelivery
from ciba.models.transitions import conditional_update
from ciba.statements.update import CompiledUpdate

pytestmark = pytest.mark.django_db
State = AuthenticationRequest.State
DState = CallbackDelivery.State


@pytest.fixture
def request_row(alice: Any, make_client: Any) -> AuthenticationRequest:
    app, _ = make_client("poll")
    return services.create_request(
        expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )


@pytest.fixture
def delivery(alice: Any, make_client: Any) -> CallbackDelivery:
    app, _ = make_client("ping")
    ar = services.create_request(
        expires_in=60,
        client=app,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        client_notification_token="nt",
    )
    return CallbackDelivery.objects.create(request=ar, kind=CallbackDelivery.Kind.PING)


def sqls(queries: Any) -> list[str]:
    return [q["sql"] for q in queries.captured_queries]


def test_a_recorded_callback_sends_the_orms_own_update(delivery):
    now = timezone.now()
    fields = {"lease_until": None, "last_status": 204, "last_error": "", "delivered_at": now}
    with CaptureQueriesContext(connection) as orm:
        conditional_update(
            CallbackDelivery.objects.filter(pk=delivery.pk + 1000),
            "state",
            CallbackDelivery.TRANSITIONS,
            DState.DELIVERED,
            **fields,
        )
    for _ in range(2):  # compiled, then reused
        with CaptureQueriesContext(connection) as ours:
            changed = CallbackDelivery.objects.transition(delivery.pk + 1000, DState.DELIVERED, **fields)
        assert changed is False
        assert sqls(ours) == sqls(orm)
    assert CallbackDelivery.objects.transition(delivery.pk, DState.DELIVERED, **fields) is True
    row = CallbackDelivery.objects.get(pk=delivery.pk)
    assert (row.state, row.last_status, row.delivered_at) == (DState.DELIVERED, 204, now)
    assert CallbackDelivery.objects.transition(delivery.pk, DState.DELIVERED, **fields) is False  # once


def test_a_request_is_issued_once_and_never_past_its_expiry(request_row):
    AuthenticationRequest.objects.filter(pk=request_row.pk).update(state=State.APPROVED)
    assert AuthenticationRequest.objects.transition(request_row.pk, State.ISSUED) is True
    assert AuthenticationRequest.objects.transition(request_row.pk, State.ISSUED) is False
    late = timezone.now() + timedelta(minutes=5)
    AuthenticationRequest.objects.filter(pk=request_row.pk).update(state=State.APPROVED)
    assert AuthenticationRequest.objects.transition(request_row.pk, State.ISSUED, now=late) is False
    assert AuthenticationRequest.objects.get(pk=request_row.pk).state == State.APPROVED


def test_a_json_value_is_prepared_by_its_field_on_every_call(request_row):
    statement = CompiledUpdate(AuthenticationRequest, lambda rows, pk: rows.filter(pk=pk))
    for details in ([{"type": "payment_initiation", "amount": "1.00"}], [{"type": "other"}]):
        assert statement.update((request_row.pk,), {"approved_authorization_details": details}) == 1
        assert AuthenticationRequest.objects.get(pk=request_row.pk).approved_authorization_details == details
    assert all(prepared is not None for prepared in statement._prepared.values())


def test_none_and_a_value_for_the_same_column_are_two_shapes(request_row):
    statement = CompiledUpdate(AuthenticationRequest, lambda rows, pk: rows.filter(pk=pk))
    assert statement.update((request_row.pk,), {"requested_expiry": None}) == 1
    assert AuthenticationRequest.objects.get(pk=request_row.pk).requested_expiry is None
    assert statement.update((request_row.pk,), {"requested_expiry": 90}) == 1
    assert AuthenticationRequest.objects.get(pk=request_row.pk).requested_expiry == 90
    assert len(statement._prepared) == 2


def test_an_expression_is_left_to_the_orm(request_row):
    statement = CompiledUpdate(AuthenticationRequest, lambda rows, pk: rows.filter(pk=pk))
    before = AuthenticationRequest.objects.get(pk=request_row.pk).interval
    assert statement.update((request_row.pk,), {"interval": F("interval") + 1}) == 1
    assert AuthenticationRequest.objects.get(pk=request_row.pk).interval == before + 1
    assert list(statement._prepared.values()) == [None]


def test_a_time_condition_is_compared_as_given(request_row):
    """On PostgreSQL the time reaches the database unchanged and the statement is compiled;
    SQLite turns it into text, so the ORM builds it there. Both compare it right."""
    statement = CompiledUpdate(
        AuthenticationRequest, lambda rows, pk, now: rows.filter(pk=pk, expires_at__gt=now)
    )
    now = timezone.now()
    assert statement.update((request_row.pk, now + timedelta(minutes=5)), {"scope": "openid email"}) == 0
    assert statement.update((request_row.pk, now), {"scope": "openid email"}) == 1
    assert AuthenticationRequest.objects.get(pk=request_row.pk).scope == "openid email"
    compiled = all(prepared is not None for prepared in statement._prepared.values())
    assert compiled is (connection.vendor == "postgresql")


def test_a_narrowed_queryset_keeps_its_own_conditions(delivery):
    """``transition`` on a filtered queryset is the ORM's, with that filter."""
    rows = CallbackDelivery.objects.filter(kind=CallbackDelivery.Kind.PUSH_TOKENS)  # not this row's kind
    assert rows.transition(delivery.pk, DState.DELIVERED, delivered_at=timezone.now()) is False
    assert CallbackDelivery.objects.get(pk=delivery.pk).state == DState.PENDING


def test_an_approval_marks_a_notified_prompts_withdrawal_in_its_compiled_update(request_row, alice):
    """The decision's UPDATE computes the withdrawal from the row (a CASE on the time): built
    once from stand-ins, it still marks a notified request's prompt, and leaves an unnotified
    one's schedule alone."""
    from ciba.models import authentication_request

    AuthenticationRequest.objects.filter(pk=request_row.pk).update(
        device_notification_attempts=1, device_notification_due_at=None
    )
    services.approve(
        AuthenticationRequest.objects.select_related("client").get(pk=request_row.pk), user=alice
    )
    approved = AuthenticationRequest.objects.get(pk=request_row.pk)
    assert approved.state == State.APPROVED and approved.device_notification_due_at is not None

    other = services.create_request(
        expires_in=60,
        client=request_row.client,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
    )
    due = AuthenticationRequest.objects.get(pk=other.pk).device_notification_due_at
    services.deny(AuthenticationRequest.objects.select_related("client").get(pk=other.pk), user=alice)
    assert AuthenticationRequest.objects.get(pk=other.pk).device_notification_due_at == due
    statements = authentication_request._STATES._statements
    prepared = [p for statement in statements.values() for p in statement._prepared.values()]
    assert prepared and all(p is not None for p in prepared) is (connection.vendor == "postgresql")


def test_a_related_row_given_lazily_is_sent_as_its_key(request_row, alice):
    """A session's user (``request.user``) is a ``SimpleLazyObject``: an approval by session
    records it as the decider like any user."""
    from django.contrib.auth import get_user_model
    from django.utils.functional import SimpleLazyObject

    lazy = SimpleLazyObject(lambda: get_user_model().objects.get(pk=alice.pk))
    statement = CompiledUpdate(AuthenticationRequest, lambda rows, pk: rows.filter(pk=pk))
    for _ in range(2):  # compiled from the lazy user, then reused
        assert statement.update((request_row.pk,), {"decided_by": lazy}) == 1
    assert AuthenticationRequest.objects.get(pk=request_row.pk).decided_by_id == alice.pk
    assert all(prepared is not None for prepared in statement._prepared.values())


def test_a_sealed_payload_is_stored_by_the_compiled_statement_only_where_none_is(delivery):
    """A push body's bytes (a ``BinaryField``, whose placeholder is a plain ``%s`` but on
    MySQL) go through the statement compiled once, as the ORM's UPDATE would send them."""
    statement = CompiledUpdate(CallbackDelivery, lambda rows, pk: rows.filter(pk=pk, payload__isnull=True))
    with CaptureQueriesContext(connection) as orm:
        statement.queryset(delivery.pk + 1000).update(payload=b"\x00\xffsealed")
    with CaptureQueriesContext(connection) as ours:
        assert statement.update((delivery.pk + 1000,), {"payload": b"\x00\xffsealed"}) == 0
    assert sqls(ours) == sqls(orm)
    assert statement.update((delivery.pk,), {"payload": b"\x00\xffsealed"}) == 1
    assert list(statement._prepared.values()) != [None]  # compiled, not left to the ORM
    assert statement.update((delivery.pk,), {"payload": b"another"}) == 0  # one body per row
    assert bytes(CallbackDelivery.objects.get(pk=delivery.pk).payload) == b"\x00\xffsealed"
