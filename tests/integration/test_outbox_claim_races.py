"""Two batch claimers at once on PostgreSQL (``Outbox.claim_due``, one locking statement):
never the same entry, every due entry to one of them."""

import threading
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests import test_outbox_engine as engine_tests

entry, owed, rows = engine_tests.entry, engine_tests.owed, engine_tests.rows


@pytest.fixture
def many(settings):
    """Room for a dozen pending requests of one user."""
    settings.CIBA = {**settings.CIBA, "MAX_PENDING_PER_USER": 50, "MAX_PENDING_PER_CLIENT_USER": 50}


def claim_all(outbox, now: datetime, barrier: threading.Barrier, taken: list[list[int]]) -> None:
    """Claim batches of 3 until none is left, starting at ``barrier``."""
    try:
        barrier.wait()
        mine = []
        lease = {outbox.lease_field: now + timedelta(minutes=1)}
        while batch := outbox.claim_due(now, 3, ("pk",), **lease):
            mine += batch
        taken.append(mine)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_two_claimers_at_a_barrier_never_take_the_same_entry(many, owed):
    outbox, make = owed
    pks = [make() for _ in range(12)]
    for _ in range(5):
        now = timezone.now()
        rows(outbox).filter(pk__in=pks).update(
            **{outbox.due_field: now - timedelta(seconds=1), outbox.lease_field: None}
        )
        barrier, taken = threading.Barrier(2), []
        threads = [threading.Thread(target=claim_all, args=(outbox, now, barrier, taken)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        first, second = taken
        assert not set(first) & set(second)
        assert sorted(first + second) == sorted(pks)
