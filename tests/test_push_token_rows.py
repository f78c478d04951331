"""A push's token rows, however they are written (issue 29): the rows DOT writes, each announced.

On PostgreSQL the request's issue, the token rows and the stored body are one statement
(``ciba.statements.chain``; tests/integration/test_push_one_statement.py counts it); elsewhere
the same rows are written one by one. Either way what a client, a resource server or a site's
signal receivers see must not change: the rows are the rows DOT writes for the same approval,
each linked to the others and announced with ``pre_save`` and ``post_save``; a request that
expired first gets no token at all.
"""

from __future__ import annotations

import json
from datetime import timedelta
from unittest import mock

import jwt
import pytest
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Lower
from django.db.models.signals import post_save, pre_save
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_id_token_model, get_refresh_token_model

from ciba import dispatch, services, tokens
from ciba.callbacks import outbox
from ciba.models import AccessTokenGrant, CallbackDelivery, OriginalAuthentication
from ciba.statements import chain

NT = "client-notification-token-0123456789"
ACCESS, REFRESH, ID_TOKEN = get_access_token_model(), get_refresh_token_model(), get_id_token_model()
TOKEN_ROWS = (ID_TOKEN, ACCESS, REFRESH, OriginalAuthentication)
DETAILS = [
    {
        "type": "payment_initiation",
        "instructedAmount": {"currency": "EUR", "amount": "12.50"},
        "creditorName": "Merchant A",
        "creditorAccount": {"iban": "DE02100100109307118603"},
    }
]
JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"


@pytest.fixture
def approve_push(make_client, alice, recorder):
    """Approve a push request (its row written, not yet sent); return its callback row."""
    app, _ = make_client("push", backchannel_client_notification_endpoint=recorder.url("/cb"))

    def approve(**request_fields):
        ar = services.create_request(
            expires_in=60,
            client=app,
            user=alice,
            hint_kind="login_hint",
            scope="openid profile email",
            interval=5,
            client_notification_token=NT,
        )
        if request_fields:
            type(ar).objects.filter(pk=ar.pk).update(**request_fields)
            ar.refresh_from_db()
        with mock.patch.object(dispatch, "after_commit"):  # the row only: the test sends it
            services.approve(ar, user=alice)
        return CallbackDelivery.objects.select_related("request__client", "request__user").get(request=ar)

    return approve


def row_values(row, *, ignore=()) -> dict:
    """A row's columns, without what differs between any two token responses."""
    differs = {
        "id",
        "token",
        "token_checksum",
        "jti",
        "token_family",
        "created",
        "updated",
        "expires",
        "auth_time",
    }
    return {
        field.name: getattr(row, field.attname)
        for field in type(row)._meta.concrete_fields
        if field.name not in differs | set(ignore)
    }


@pytest.mark.django_db(transaction=True)
def test_pushed_token_rows_are_the_rows_dot_writes_for_the_same_approval(approve_push, recorder):
    """DOT's own ``_create_*`` wrote the first request's rows; the push's chain the second's."""
    by_dot, pushed = approve_push(authorization_details=DETAILS), approve_push(authorization_details=DETAILS)
    with transaction.atomic():
        assert services.mark_issued(by_dot.request)
        tokens.mint_for_push(by_dot.request)  # no chain: DOT saves each row
    assert outbox.deliver(pushed.pk) == "delivered"
    links = {"id_token", "source_refresh_token", "access_token", "refresh_token"}
    for model in (*TOKEN_ROWS, AccessTokenGrant):
        first, second = model.objects.order_by("pk")
        assert row_values(first, ignore=links) == row_values(second, ignore=links), model.__name__
    access_dot, access_push = ACCESS.objects.order_by("pk")
    assert access_push.id_token_id == ID_TOKEN.objects.order_by("pk").last().pk
    assert access_push.expires - access_dot.expires < timedelta(seconds=30)
    assert REFRESH.objects.order_by("pk").last().access_token_id == access_push.pk
    pushed.request.refresh_from_db()
    original = OriginalAuthentication.objects.order_by("pk").last()
    assert original.auth_time == (pushed.request.auth_time or pushed.request.decided_at)


@pytest.mark.django_db(transaction=True)
def test_a_pushed_access_token_is_linked_to_the_id_token_the_servers_key_set_signed(approve_push, recorder):
    """A client with ``id_token_signed_response_alg``: its ID token is ``ciba.signing``'s, and the
    access token pushed with it names it, as DOT's own rows do."""
    from ciba import signing

    signing.generate_key("EC")
    pushed = approve_push()
    type(pushed.request.client).objects.filter(pk=pushed.request.client.pk).update(
        id_token_signed_response_alg="ES256"
    )
    assert outbox.deliver(pushed.pk) == "delivered"
    [body] = [json.loads(received[2]) for received in recorder.received]
    access = ACCESS.objects.select_related("id_token").get()
    assert access.id_token is not None
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert str(access.id_token.jti) == claims["jti"]


@pytest.mark.django_db(transaction=True)
def test_every_pushed_token_row_is_announced_to_signal_receivers_once(approve_push, recorder):
    delivery = approve_push()
    seen: list[tuple[str, str, bool]] = []

    def before(sender, instance, **kwargs):
        seen.append(("pre_save", sender.__name__, instance.pk is None))

    def after(sender, instance, created, **kwargs):
        seen.append(("post_save", sender.__name__, instance.pk is not None and created))

    pre_save.connect(before)
    post_save.connect(after)
    try:
        assert outbox.deliver(delivery.pk) == "delivered"
    finally:
        pre_save.disconnect(before)
        post_save.disconnect(after)
    names = [model.__name__ for model in TOKEN_ROWS]
    for signal in ("pre_save", "post_save"):
        announced = [(model, fine) for kind, model, fine in seen if kind == signal and model in names]
        assert announced == [(model, True) for model in names], signal


@pytest.mark.django_db(transaction=True)
def test_a_push_whose_request_expired_before_the_statement_writes_no_token(approve_push, recorder):
    delivery = approve_push()
    type(delivery.request).objects.filter(pk=delivery.request_id).update(
        expires_at=delivery.request.expires_at - timedelta(hours=1)
    )
    assert outbox.deliver(delivery.pk) == "delivered"
    body = json.loads(recorder.received[0][2])
    assert body["error"] == "expired_token"
    assert [model.objects.count() for model in TOKEN_ROWS] == [0, 0, 0, 0]


@pytest.mark.django_db(transaction=True)
def test_a_token_row_a_signal_receiver_gives_an_expression_is_still_written_with_it(approve_push, recorder):
    """A value the ORM must put in the statement itself cannot ride in the chain's parameters:
    the rows are then written one by one, the receiver's expression included."""
    delivery = approve_push()

    def lower_scope(sender, instance, **kwargs):
        instance.scope = Lower(Value("OPENID PROFILE"))

    pre_save.connect(lower_scope, sender=ID_TOKEN)
    try:
        assert outbox.deliver(delivery.pk) == "delivered"
    finally:
        pre_save.disconnect(lower_scope, sender=ID_TOKEN)
    assert "access_token" in json.loads(recorder.received[0][2])
    id_token = ID_TOKEN.objects.get()
    assert id_token.scope == "openid profile"
    assert ACCESS.objects.get().id_token_id == id_token.pk
    assert [model.objects.count() for model in TOKEN_ROWS] == [1, 1, 1, 1]


def test_a_row_linked_to_one_not_yet_in_the_chain_is_refused_before_anything_is_sent(alice, make_client):
    app, _ = make_client("push", backchannel_client_notification_endpoint="https://rp.example/cb")
    rows = chain.Chain("default")
    unsaved = ID_TOKEN(user=alice, application=app, scope="openid", expires=timezone.now())
    access = ACCESS(user=alice, application=app, scope="openid", expires=timezone.now(), id_token=unsaved)
    with pytest.raises(ValueError, match="not earlier in the chain"):
        rows.add(access, id_token=unsaved)
    assert ACCESS.objects.count() == 0 and ID_TOKEN.objects.count() == 0
