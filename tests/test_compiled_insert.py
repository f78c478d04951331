"""An INSERT compiled once (``ciba.statements.insert``) stores what ``save(force_insert=True)``
stores, with the ORM's own SQL and values, sends the same signals, and leaves to ``save()``
whatever it cannot prove it sends unchanged."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Now
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ciba.models import AuthenticationRequest, CallbackDelivery, Device
from ciba.statements import insert as insert_module
from ciba.statements.insert import CompiledInsert

pytestmark = pytest.mark.django_db

#: Columns that differ between two requests by design (their identifiers).
OWN = {"id", "auth_req_id", "device_notification_id"}


def new_request(client: Any, user: Any, **fields: Any) -> AuthenticationRequest:
    """A new request as ``services.create_request`` builds it, with every kind of column set."""
    now = timezone.now().replace(microsecond=123456)
    values: dict[str, Any] = {
        "client": client,
        "user": user,
        "hint_kind": AuthenticationRequest.HintKind.LOGIN_HINT,
        "scope": "openid profile",
        "acr_values": "urn:acr:high",
        "binding_message": "W4SCT Ä",
        "requested_expiry": 600,
        "interval": 5,
        "acr_essential": True,
        "authorization_details": [{"type": "payment_initiation", "amount": {"value": "1.50"}}],
        "claims": {"id_token": {"email": None}},
        "request_context": None,
        "resource": ["https://rs.example/"],
        "expires_at": now + timedelta(seconds=600),
        "created_at": now,
        "updated_at": now,
        "device_notification_id": uuid.uuid4().hex,
        "device_notification_due_at": now,
        **fields,
    }
    return AuthenticationRequest(**values)


def row(pk: int) -> dict[str, Any]:
    values = AuthenticationRequest.objects.filter(pk=pk).values().get()
    return {name: value for name, value in values.items() if name not in OWN}


def captured(callable_: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements ``callable_`` sends, as given to the database (SQL and parameters)."""
    sent: list[tuple[str, tuple[Any, ...]]] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append((sql, tuple(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        callable_()
    return sent


def comparable(params: tuple[Any, ...]) -> list[Any]:
    """Parameters with the adapters a backend wraps values in (JSON on PostgreSQL) unwrapped."""
    return [getattr(param, "obj", param) for param in params]


def test_a_new_request_is_stored_with_the_orms_own_statement_and_values(alice, make_client):
    app, _ = make_client("ping")
    statement = CompiledInsert(AuthenticationRequest)
    by_orm = new_request(app, alice)
    orm = captured(lambda: by_orm.save(force_insert=True, using="default"))
    for _ in range(2):  # the first call compiles, the second reuses
        ours_request = new_request(
            app,
            alice,
            auth_req_id=by_orm.auth_req_id + "x",
            device_notification_id=by_orm.device_notification_id,
        )
        ours = captured(lambda request=ours_request: statement.save(request, using="default"))
        assert [sql for sql, _ in ours] == [sql for sql, _ in orm]
        [(_, orm_params)], [(_, our_params)] = orm, ours
        assert comparable(our_params)[1:] == comparable(orm_params)[1:]  # all but auth_req_id
        AuthenticationRequest.objects.filter(pk=ours_request.pk).delete()


def test_the_row_read_back_is_the_orms_column_for_column(alice, make_client):
    app, _ = make_client("push")
    by_orm = new_request(app, alice)
    by_orm.save(force_insert=True, using="default")
    ours = new_request(app, alice)
    CompiledInsert(AuthenticationRequest).save(ours, using="default")
    assert row(ours.pk) == row(by_orm.pk)
    # The defaults the model fills in are stored too, as the ORM stores them.
    stored = AuthenticationRequest.objects.get(pk=ours.pk)
    assert stored.state == AuthenticationRequest.State.PENDING
    assert stored.device_notification_status == AuthenticationRequest.NotificationStatus.QUEUED
    assert stored.approved_authorization_details is None
    assert stored.auth_req_id == ours.auth_req_id


def test_the_instance_gets_its_key_and_is_marked_saved(alice, make_client):
    app, _ = make_client("poll")
    ours = new_request(app, alice)
    CompiledInsert(AuthenticationRequest).save(ours, using="default")
    assert isinstance(ours.pk, int)
    assert AuthenticationRequest.objects.filter(pk=ours.pk, auth_req_id=ours.auth_req_id).exists()
    assert ours._state.adding is False
    assert ours._state.db == "default"
    # A key given beforehand is inserted as given, as save() does.
    given = new_request(app, alice, id=ours.pk + 1000)
    CompiledInsert(AuthenticationRequest).save(given, using="default")
    assert given.pk == ours.pk + 1000
    assert AuthenticationRequest.objects.filter(pk=ours.pk + 1000).exists()


def test_pre_save_and_post_save_receivers_get_what_save_sends_them(alice, make_client):
    app, _ = make_client("poll")
    heard: list[tuple[str, dict[str, Any]]] = []

    def before(sender: Any, instance: Any, **kwargs: Any) -> None:
        kwargs.pop("signal")
        heard.append(("pre_save", {"sender": sender, "adding": instance._state.adding, **kwargs}))
        instance.binding_message = "set by a receiver"

    def after(sender: Any, instance: Any, **kwargs: Any) -> None:
        kwargs.pop("signal")
        heard.append(("post_save", {"sender": sender, "pk": instance.pk is not None, **kwargs}))

    pre_save.connect(before, sender=AuthenticationRequest, weak=False)
    post_save.connect(after, sender=AuthenticationRequest, weak=False)
    try:
        by_orm = new_request(app, alice)
        by_orm.save(force_insert=True, using="default")
        from_orm, heard[:] = list(heard), []
        ours = new_request(app, alice)
        CompiledInsert(AuthenticationRequest).save(ours, using="default")
    finally:
        pre_save.disconnect(before, sender=AuthenticationRequest)
        post_save.disconnect(after, sender=AuthenticationRequest)
    assert heard == from_orm
    assert [name for name, _ in heard] == ["pre_save", "post_save"]
    assert heard[1][1]["created"] is True
    assert AuthenticationRequest.objects.get(pk=ours.pk).binding_message == "set by a receiver"


def test_a_value_that_is_an_expression_is_inserted_by_the_orm_with_one_pair_of_signals(alice, make_client):
    app, _ = make_client("poll")
    heard: list[str] = []

    def listen(sender: Any, **kwargs: Any) -> None:
        heard.append(kwargs["signal"] is pre_save and "pre_save" or "post_save")

    pre_save.connect(listen, sender=AuthenticationRequest, weak=False)
    post_save.connect(listen, sender=AuthenticationRequest, weak=False)
    try:
        ours = new_request(app, alice, updated_at=Now())
        sent = captured(lambda: CompiledInsert(AuthenticationRequest).save(ours, using="default"))
    finally:
        pre_save.disconnect(listen, sender=AuthenticationRequest)
        post_save.disconnect(listen, sender=AuthenticationRequest)
    assert heard == ["pre_save", "post_save"]
    assert len(sent) == 1
    assert ours.pk is not None and ours._state.adding is False
    stored = AuthenticationRequest.objects.get(pk=ours.pk)
    assert abs(stored.updated_at - timezone.now()) < timedelta(minutes=1)


def test_a_model_with_a_save_of_its_own_keeps_it(alice, make_client, monkeypatch):
    app, _ = make_client("poll")
    called: list[Any] = []
    original = AuthenticationRequest.save

    def own_save(self: Any, *args: Any, **kwargs: Any) -> None:
        called.append(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(AuthenticationRequest, "save", own_save)
    ours = new_request(app, alice)
    CompiledInsert(AuthenticationRequest).save(ours, using="default")
    assert called == [{"force_insert": True, "using": "default"}]
    assert AuthenticationRequest.objects.filter(pk=ours.pk).exists()


def test_an_instance_of_another_model_is_saved_by_its_own_save(alice):
    device = Device(user=alice, kind=Device.Kind.WEBPUSH, label="phone", subscription={"endpoint": "x"})
    CompiledInsert(AuthenticationRequest).save(device, using="default")
    assert Device.objects.filter(pk=device.pk).exists()


def test_a_fields_own_pre_save_sets_its_value_as_on_save(alice):
    """``auto_now_add``: the field's ``pre_save`` sets the value on the instance and the row."""
    statement = CompiledInsert(Device)
    for label in ("phone", "tablet"):  # compiled, then reused
        device = Device(user=alice, kind=Device.Kind.WEBPUSH, label=label, subscription={"endpoint": label})
        assert device.created_at is None
        statement.save(device, using="default")
        assert device.created_at is not None
        stored = Device.objects.get(pk=device.pk)
        assert (stored.created_at, stored.label, stored.subscription) == (
            device.created_at,
            label,
            {"endpoint": label},
        )


def test_a_database_that_cannot_return_the_new_key_keeps_save(alice, make_client, monkeypatch):
    app, _ = make_client("poll")
    called: list[Any] = []
    monkeypatch.setattr(insert_module, "_database_eligible", lambda using: False)
    original = AuthenticationRequest.save_base

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        called.append(kwargs.get("force_insert"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(AuthenticationRequest, "save_base", spy)
    ours = new_request(app, alice)
    CompiledInsert(AuthenticationRequest).save(ours, using="default")
    assert called == [True]


def test_a_failed_insert_spoils_the_outer_transaction_as_save_does(alice, make_client):
    app, _ = make_client("poll")
    first = new_request(app, alice)
    CompiledInsert(AuthenticationRequest).save(first, using="default")
    statement = CompiledInsert(AuthenticationRequest)
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            statement.save(new_request(app, alice, auth_req_id=first.auth_req_id), using="default")
        assert connection.needs_rollback is True  # the block is rolled back when it ends
    assert AuthenticationRequest.objects.filter(auth_req_id=first.auth_req_id).count() == 1


def test_an_unsaved_related_object_is_refused_as_save_refuses_it(alice, make_client):
    app, _ = make_client("poll")
    from ciba.models import Application

    unsaved = Application(name="never saved")
    ours = new_request(app, alice)
    ours.client = unsaved
    with (
        CaptureQueriesContext(connection) as queries,
        pytest.raises(ValueError, match="unsaved related object"),
    ):
        CompiledInsert(AuthenticationRequest).save(ours, using="default")
    assert len(queries) == 0


def test_a_new_request_through_the_service_is_one_insert_of_every_column(alice, make_client):
    from ciba import services

    app, _ = make_client("poll")
    with CaptureQueriesContext(connection) as queries:
        ar = services.create_request(
            expires_in=120,
            client=app,
            user=alice,
            hint_kind=AuthenticationRequest.HintKind.LOGIN_HINT,
            scope="openid",
            interval=5,
        )
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    assert inserts[0].count('"') >= 2 * len(AuthenticationRequest._meta.local_concrete_fields)
    assert AuthenticationRequest.objects.get(pk=ar.pk).auth_req_id == ar.auth_req_id


# --- a binary column; an INSERT chained to an UPDATE (the decision's callback row) -----------------


def callback_row(app: Any, user: Any, **fields: Any) -> CallbackDelivery:
    from ciba import services

    ar = services.create_request(
        expires_in=120, client=app, user=user, hint_kind="login_hint", scope="openid", interval=5
    )
    return CallbackDelivery(request=ar, kind=CallbackDelivery.Kind.PUSH_TOKENS, **fields)


def test_a_row_with_a_binary_column_is_inserted_by_the_compiled_statement_with_its_bytes(alice, make_client):
    """A ``BinaryField``'s placeholder is a plain ``%s`` here (only MySQL's differs)."""
    app, _ = make_client("push", backchannel_client_notification_endpoint="https://rp.example/cb")
    ours, theirs = callback_row(app, alice, payload=b"\x00\xffsealed"), callback_row(app, alice)
    statement = CompiledInsert(CallbackDelivery)
    sent = captured(lambda: statement.save(ours, using="default"))
    assert [sql.split()[:3] for sql, _ in sent] == [["INSERT", "INTO", '"ciba_callbackdelivery"']]
    assert statement._statements  # compiled once, not left to save()
    theirs.payload = b"\x00\xffsealed"
    theirs.save(force_insert=True)
    mine, orms = (CallbackDelivery.objects.filter(pk=row.pk).values().get() for row in (ours, theirs))
    own = {"id", "request_id", "created_at", "next_attempt_at"}
    assert {k: bytes(v) if k == "payload" else v for k, v in mine.items() if k not in own} == {
        k: bytes(v) if k == "payload" else v for k, v in orms.items() if k not in own
    }


def test_an_insert_chained_to_an_update_is_declined_with_nothing_sent_where_the_database_cannot_run_it(
    alice, make_client
):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL runs it (tests/integration/test_decision_one_statement.py)")
    app, _ = make_client("push", backchannel_client_notification_endpoint="https://rp.example/cb")
    row = callback_row(app, alice)
    statement = CompiledInsert(CallbackDelivery)
    update = ('UPDATE "ciba_authenticationrequest" SET "acr" = %s WHERE "id" = %s', ["x", row.request_id])
    sent = captured(lambda: statement.save_if(row, update, using="default"))
    assert sent == [] and statement.save_if(row, update, using="default") is None
    assert row._state.adding and row.pk is None
