"""Celery workers keep their PostgreSQL connection from one task to the next
(``CELERY_DB_REUSE_MAX`` in ``ciba.dispatch.WORKER_SETTINGS``: Celery's Django fix-up used to
close it around every task, and every callback paid a new connection), and replace it when it
broke, as Django does around a web request (``close_old_connections`` on ``task_prerun`` and
``task_postrun``; issue 29).

The callbacks here go through the worker: this process sends none itself
(``CALLBACK_INLINE_SENDERS`` 0)."""

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from ciba.callbacks import inline
from ciba.dispatch import WORKER_SETTINGS
from ciba.models import CallbackDelivery
from tests.conftest import approve_ping
from tests.integration.conftest import wait_for

NT = "worker-connection-notification-token-0123456789"


@pytest.fixture(autouse=True)
def callbacks_through_the_worker():
    assert inline.drain(30)  # no sender thread of this process holds a connection
    with override_settings(CIBA={**settings.CIBA, "CALLBACK_INLINE_SENDERS": 0}):
        yield


def others() -> set[int]:
    """Backends connected to the test database other than this process's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {pid for (pid,) in cursor.fetchall()}


def delivered_ping(app, alice, recorder):
    before = len(recorder.received)
    ar = approve_ping(app, alice, NT)
    assert wait_for(lambda: CallbackDelivery.objects.filter(request=ar, state="delivered").exists())
    assert len(recorder.received) == before + 1
    return ar


def test_the_worker_settings_keep_connections():
    assert WORKER_SETTINGS["CELERY_DB_REUSE_MAX"] >= 100


@pytest.mark.django_db(transaction=True)
def test_the_worker_keeps_its_connection_from_one_callback_to_the_next(
    prefork_worker, alice, make_client, recorder
):
    app, _ = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/cb"))
    delivered_ping(app, alice, recorder)
    first = wait_for(others)
    assert len(first) == 1, first  # still open after the task: Celery no longer closes it
    delivered_ping(app, alice, recorder)
    delivered_ping(app, alice, recorder)
    assert others() == first  # the same connection served every task


@pytest.mark.django_db(transaction=True)
def test_a_task_after_the_connection_was_broken_still_succeeds(prefork_worker, alice, make_client, recorder):
    app, _ = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/cb"))
    delivered_ping(app, alice, recorder)
    (old,) = wait_for(others)
    with connection.cursor() as cursor:  # the server ends it, as a restart or a failover would
        cursor.execute("SELECT pg_terminate_backend(%s)", [old])
    assert wait_for(lambda: old not in others())
    delivered_ping(app, alice, recorder)  # the task replaced it instead of failing
    delivered_ping(app, alice, recorder)
    replaced = others()
    assert len(replaced) == 1 and old not in replaced
