"""A decision and its callback row in one statement on PostgreSQL (issue 29).

An approval or a denial is one conditional ``UPDATE`` with the callback's ``INSERT`` chained to
it (``WITH ... UPDATE ... RETURNING``, then ``INSERT ... SELECT``), sent outside any
transaction: one round trip and one commit instead of BEGIN, the UPDATE, the INSERT and COMMIT.
What a client and a user see does not change: both are written or neither, a request decided
already gets no second decision and no second callback, and the poll state is told first, so a
decision it could not be told is not recorded and one that then fails leaves the request's
polls answered right (from the database).
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.db import DataError, connection
from django.test.utils import CaptureQueriesContext

from ciba import dispatch, services
from ciba.errors import RequestNotPending, TemporarilyUnavailable
from ciba.models import ApprovalEvidence, AuthenticationRequest, CallbackDelivery
from ciba.polling import RedisPollState
from ciba.tasks import notify_authentication_device
from tests.conftest import pending_request, start_request
from tests.integration.conftest import redis_poll_state_on
from tests.integration.test_poll_state import poll

NT = "nt-0123456789abcdef0123"

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit, as a web request runs


@pytest.fixture(autouse=True)
def on_postgresql():
    assert connection.vendor == "postgresql", "the production tier runs on PostgreSQL"


@pytest.fixture
def handed_over():
    """The callback rows handed on after the commit (to a sender thread or a worker)."""
    handed: list[int] = []
    with mock.patch.object(dispatch, "after_commit", side_effect=lambda task, pk, **kw: handed.append(pk)):
        yield handed


def writes(queries: CaptureQueriesContext) -> list[str]:
    """Every statement but reads, BEGIN and COMMIT included (Django logs them)."""
    return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SELECT")]


def decision_writes(statements: list[str]) -> list[str]:
    """A transaction's bounds, or a write of a decision or a callback row."""
    return [
        sql
        for sql in statements
        if sql in ("BEGIN", "COMMIT") or 'SET "state"' in sql or '"ciba_callbackdelivery"' in sql
    ]


@pytest.mark.parametrize(
    ("mode", "how", "kind"),
    [("ping", "approve", "ping"), ("push", "approve", "push_tokens"), ("push", "deny", "push_error")],
)
def test_a_decision_and_its_callback_row_are_one_statement_outside_any_transaction(
    make_client, alice, handed_over, mode, how, kind
):
    app, _ = make_client(mode, backchannel_client_notification_endpoint="https://rp.example/cb")
    ar = pending_request(app, alice, NT)
    with CaptureQueriesContext(connection) as queries:
        getattr(services, how)(ar, user=alice)
    statement, *after = writes(queries)
    assert statement.startswith('WITH "updated" AS (UPDATE "ciba_authenticationrequest"')
    assert 'INSERT INTO "ciba_callbackdelivery"' in statement
    assert not decision_writes(after)  # what follows is the prompt's withdrawal, after the commit
    row = CallbackDelivery.objects.get(request=ar)
    assert (row.kind, row.state) == (kind, "pending")
    assert AuthenticationRequest.objects.get(pk=ar.pk).state == ("approved" if how == "approve" else "denied")
    assert handed_over == [row.pk]
    assert not connection.in_atomic_block


def test_a_poll_clients_decision_is_its_update_alone(make_client, alice, handed_over):
    app, _ = make_client("poll")
    ar = pending_request(app, alice, NT)
    with CaptureQueriesContext(connection) as queries:
        services.approve(ar, user=alice)
    statement, *after = writes(queries)
    assert statement.startswith('UPDATE "ciba_authenticationrequest" SET "state" = \'approved\'')
    assert not decision_writes(after)
    assert AuthenticationRequest.objects.get(pk=ar.pk).state == "approved"
    assert handed_over == [] and not CallbackDelivery.objects.exists()


def test_a_callback_row_that_cannot_be_written_leaves_the_request_undecided(make_client, alice, handed_over):
    app, _ = make_client("ping", backchannel_client_notification_endpoint="https://rp.example/cb")
    ar = pending_request(app, alice, NT)
    unwritable = CallbackDelivery(request=ar, kind="ping", error_code="x" * 500)  # longer than its column
    with mock.patch.object(services, "_callback_row", return_value=unwritable), pytest.raises(DataError):
        services.approve(ar, user=alice)
    assert AuthenticationRequest.objects.get(pk=ar.pk).state == "pending"
    assert not CallbackDelivery.objects.exists() and handed_over == []
    # ... and the request can still be decided
    services.deny(AuthenticationRequest.objects.select_related("client").get(pk=ar.pk), user=alice)
    assert CallbackDelivery.objects.get(request=ar).kind == "ping"


def test_a_request_decided_already_gets_no_second_decision_and_no_second_callback(
    make_client, alice, handed_over
):
    app, _ = make_client("ping", backchannel_client_notification_endpoint="https://rp.example/cb")
    ar = pending_request(app, alice, NT)
    stale = AuthenticationRequest.objects.select_related("client").get(pk=ar.pk)
    services.approve(ar, user=alice)
    with pytest.raises(RequestNotPending) as refused:
        services.deny(stale, user=alice)
    assert refused.value.state == "approved"
    assert AuthenticationRequest.objects.get(pk=ar.pk).state == "approved"
    assert CallbackDelivery.objects.filter(request=ar).count() == 1 and len(handed_over) == 1


def test_an_approval_with_evidence_is_still_one_transaction_with_its_proof(make_client, alice, handed_over):
    app, _ = make_client("ping", backchannel_client_notification_endpoint="https://rp.example/cb")
    ar = pending_request(app, alice, NT)
    services.approve(ar, user=alice, amr=["pwd"], evidence={"method": "password", "level": "aal1"})
    assert ApprovalEvidence.objects.filter(auth_request=ar).count() == 1
    assert CallbackDelivery.objects.filter(request=ar).count() == 1


# --- the poll state (Redis) is told first ------------------------------------------------------


@pytest.fixture
def redis_polls(settings: Any) -> RedisPollState:
    return redis_poll_state_on(settings)


def test_a_decision_that_fails_after_the_poll_state_was_told_leaves_its_polls_answered_pending(
    client, make_client, alice, redis_polls, handed_over
):
    app, secret = make_client("ping", backchannel_client_notification_endpoint="https://rp.example/cb")
    body = f"scope=openid&login_hint=alice&client_notification_token={NT}"
    auth_req_id = start_request(client, app, secret, body)
    ar = AuthenticationRequest.objects.select_related("client").get(auth_req_id=auth_req_id)
    notify_authentication_device.apply((ar.pk,))  # recorded pending in Redis, as the worker does
    unwritable = CallbackDelivery(request=ar, kind="ping", error_code="x" * 500)
    with mock.patch.object(services, "_callback_row", return_value=unwritable), pytest.raises(DataError):
        services.approve(ar, user=alice)

    answer = poll(client, app, secret, auth_req_id)  # the tombstone sends it to the database
    assert answer.status_code == 400 and answer.json()["error"] == "authorization_pending"

    services.approve(AuthenticationRequest.objects.select_related("client").get(pk=ar.pk), user=alice)
    tokens = poll(client, app, secret, auth_req_id)  # and, approved after all, its tokens
    assert tokens.status_code == 200 and "access_token" in tokens.json()


def test_with_the_poll_state_unreachable_a_ping_approval_records_nothing(make_client, alice, settings):
    app, _ = make_client("ping", backchannel_client_notification_endpoint="https://rp.example/cb")
    ar = pending_request(app, alice, NT)
    settings.CIBA = {
        **settings.CIBA,
        "POLL_STATE_CLASS": "ciba.polling.RedisPollState",
        "POLL_STATE_REDIS_URL": "redis://127.0.0.1:9/0",  # nothing listens
    }
    with pytest.raises(TemporarilyUnavailable):
        services.approve(ar, user=alice)
    assert AuthenticationRequest.objects.get(pk=ar.pk).state == "pending"
    assert not CallbackDelivery.objects.exists()
