"""Claiming a batch of due entries (``Outbox.claim_due``), as each outbox's batch task and
sweep do: the oldest first, each entry once, what the caller asked for as it was before the
claim; on PostgreSQL, in one statement (tests/integration/test_outbox_claim_races.py: two
claimers at once)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests import test_outbox_engine as engine_tests

#: The engine's tests' fixtures: one entry of either outbox, due now.
entry, owed, rows = engine_tests.entry, engine_tests.owed, engine_tests.rows

pytestmark = pytest.mark.django_db


def aged(outbox, pks, now):
    """Make ``pks`` due, the last one the oldest."""
    for age, pk in enumerate(pks):
        rows(outbox).filter(pk=pk).update(**{outbox.due_field: now - timedelta(seconds=10 + age)})


def test_a_batch_claim_is_one_statement_on_postgresql(owed):
    outbox, make = owed
    pks = [make() for _ in range(3)]
    now = timezone.now()
    aged(outbox, pks, now)
    with CaptureQueriesContext(connection) as queries:
        assert outbox.lease_due(now, 10) == pks[::-1]
    if connection.vendor != "postgresql":
        return  # SQLite serialises writers: one conditional UPDATE per entry is the claim
    (statement,) = [q["sql"] for q in queries.captured_queries]
    assert "SKIP LOCKED" in statement and "RETURNING" in statement
    leases = rows(outbox).filter(pk__in=pks).values_list(outbox.lease_field, flat=True)
    assert set(leases) == {now + outbox.lease_duration()}


def test_a_batch_claim_returns_the_columns_as_they_were_before_it_the_oldest_first(owed):
    outbox, make = owed
    pks = [make() for _ in range(4)]
    now = timezone.now()
    aged(outbox, pks, now)
    later = now + timedelta(minutes=5)
    claimed = outbox.claim_due(now, 3, ("pk", outbox.due_field), **{outbox.due_field: later})
    assert (
        claimed == [(pk, now - timedelta(seconds=10 + age)) for age, pk in reversed(list(enumerate(pks)))][:3]
    )
    assert set(rows(outbox).filter(pk__in=pks[1:]).values_list(outbox.due_field, flat=True)) == {later}
    assert outbox.claim_due(now, 3, ("pk",), **{outbox.due_field: later}) == [pks[0]]
    assert outbox.claim_due(now, 3, ("pk",), **{outbox.due_field: later}) == []


def test_a_batch_claim_reads_columns_across_relations(entry):
    from ciba.callbacks import outbox as callback_outbox

    outbox = callback_outbox.OUTBOX
    pks = [entry(outbox) for _ in range(2)]
    now = timezone.now()
    aged(outbox, pks, now)
    columns = ("pk", "request__client__backchannel_client_notification_endpoint")
    assert outbox.hand_out(now, 10, columns) == [(pk, "https://rp.example/cb") for pk in reversed(pks)]
    assert outbox.hand_out(now, 10, columns) == []  # moved one lease ahead


def test_a_batch_claim_skips_entries_that_are_finished_or_held(owed):
    outbox, make = owed
    pks = [make() for _ in range(3)]
    now = timezone.now()
    aged(outbox, pks, now)
    assert outbox.claim(pks[1], now) is not None  # held by a task of its own
    assert outbox.lease_due(now, 10) == [pks[2], pks[0]]
