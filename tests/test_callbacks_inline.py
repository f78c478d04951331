"""A callback is sent by the process that committed it, right after the commit, with the
outbox as the fallback (issue 29): the sender threads, the hand-over from ``ciba.dispatch``,
and the inline attempt's rules (one claim, never the slow lane, a shorter deadline). The same
with real workers and PostgreSQL: tests/integration/test_callbacks_inline.py."""

import threading
import weakref
from unittest import mock

import pytest
from celery import current_app
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from ciba import dispatch
from ciba.callbacks import inline, lanes, outbox
from ciba.checks import Codes, check_worker_settings
from ciba.models import CallbackDelivery
from tests.conftest import approve_ping

NT = "inline-notification-token-0123456789"


def ciba(**extra):
    return override_settings(CIBA={**settings.CIBA, **extra})


@pytest.fixture
def senders():
    pool = inline.Senders()
    yield pool
    assert pool.drain(5)


@pytest.fixture
def published():
    """The callback tasks (and the tests' own) this process publishes, instead of a broker."""
    sent = []

    def send(task, *args, **kwargs):
        if task not in (dispatch.NOTIFY_DUE, dispatch.NOTIFY_DEVICE):
            sent.append((task, args))
        return True

    with mock.patch.object(dispatch, "send", side_effect=send):
        yield sent


# --- the sender threads ---------------------------------------------------------------------


def test_a_sender_takes_a_job_only_when_a_thread_is_free_and_never_queues_one(senders):
    release = threading.Event()
    started = []

    def job(name):
        def run():
            started.append(name)
            release.wait(5)

        return run

    assert senders.submit(job("a"), limit=2)
    assert senders.submit(job("b"), limit=2)
    assert not senders.submit(job("c"), limit=2)  # both busy: declined, not queued
    release.set()
    assert senders.drain(5)
    assert sorted(started) == ["a", "b"]


def test_an_idle_sender_thread_is_reused(senders):
    done = threading.Event()
    names = []

    def first():
        names.append(threading.current_thread().name)

    def second():
        names.append(threading.current_thread().name)
        done.set()

    assert senders.submit(first, limit=1)
    # the one thread comes back idle after its first job
    for _ in range(500):
        if senders._idle:
            break
        threading.Event().wait(0.01)
    assert senders.submit(second, limit=1)
    assert done.wait(5)
    assert len(names) == 2
    assert senders._alive == 1


def test_no_threads_when_the_limit_is_zero(senders):
    assert not senders.submit(lambda: None, limit=0)
    assert senders._alive == 0


def test_a_failing_job_does_not_end_the_sender(senders):
    ran = threading.Event()

    def boom():
        raise RuntimeError("a bug")

    with mock.patch.object(inline.logger, "exception") as logged:
        assert senders.submit(boom, limit=1)
        for _ in range(500):
            if senders._idle:
                break
            threading.Event().wait(0.01)
    assert logged.called and senders._alive == 1
    assert senders.submit(ran.set, limit=1)
    assert ran.wait(5)
    assert senders._alive == 1


# --- the hand-over from ciba.dispatch -------------------------------------------------------


@pytest.mark.django_db
def test_after_commit_offers_the_task_to_its_runner_first(published, django_capture_on_commit_callbacks):
    taken = []
    with mock.patch.dict(dispatch._runners, {"t.test": lambda pk: taken.append(pk) or True}):
        with django_capture_on_commit_callbacks(execute=True):
            dispatch.after_commit("t.test", 7)
    assert taken == [7] and published == []


@pytest.mark.django_db
@pytest.mark.parametrize("runner", [lambda pk: False, mock.Mock(side_effect=RuntimeError("bug"))])
def test_a_runner_that_declines_or_fails_leaves_the_task_to_be_published(
    published, django_capture_on_commit_callbacks, runner
):
    with mock.patch.dict(dispatch._runners, {"t.test": runner}):
        with django_capture_on_commit_callbacks(execute=True):
            dispatch.after_commit("t.test", 7)
    assert published == [("t.test", (7,))]


@pytest.mark.django_db
def test_a_task_with_a_countdown_is_always_published(published, django_capture_on_commit_callbacks):
    runner = mock.Mock(return_value=True)
    with mock.patch.dict(dispatch._runners, {"t.test": runner}):
        with django_capture_on_commit_callbacks(execute=True):
            dispatch.after_commit("t.test", 7, countdown=3)
    assert published == [("t.test", (7,))] and not runner.called


def test_callbacks_are_offered_to_the_sender_threads():
    assert dispatch._runners[dispatch.DELIVER_CALLBACK] is inline.submit


def test_eager_celery_declines_so_the_task_runs_in_the_caller_as_before(monkeypatch):
    monkeypatch.setitem(current_app.conf, "task_always_eager", True)
    with mock.patch.object(inline._senders, "submit") as submit:
        assert inline.submit(1) is False
    assert not submit.called


def test_without_sender_threads_every_callback_goes_to_the_workers(monkeypatch):
    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    with ciba(CALLBACK_INLINE_SENDERS=0):
        assert inline.limit() == 0
        assert inline.submit(1) is False
    with mock.patch.object(inline._senders, "submit", return_value=True) as submit:
        assert inline.submit(1) is True
    assert submit.call_args.args[1] == 2  # the default


def test_the_sender_count_is_checked():
    for bad in (-1, 1.5, "2", True):
        with ciba(CALLBACK_INLINE_SENDERS=bad):
            assert Codes.WORKER_SETTINGS in [m.id for m in check_worker_settings()], bad
    with ciba(CALLBACK_INLINE_SENDERS=0):
        assert [m.id for m in check_worker_settings()] == []


# --- the inline attempt ------------------------------------------------------------------------


def queued_ping(make_client, alice, url):
    app, _ = make_client("ping", backchannel_client_notification_endpoint=url)
    with mock.patch.object(dispatch, "after_commit"):  # the row only: this test sends it
        ar = approve_ping(app, alice, NT)
    return CallbackDelivery.objects.get(request=ar)


@pytest.mark.django_db(transaction=True)
def test_an_inline_attempt_delivers_once_and_publishes_nothing(
    make_client, alice, recorder, published, django_capture_on_commit_callbacks
):
    row = queued_ping(make_client, alice, recorder.url("/cb"))
    assert inline.send(row.pk) == "delivered"
    assert len(recorder.received) == 1 and published == []
    row.refresh_from_db()
    assert (row.state, row.attempts, row.lease_until) == ("delivered", 1, None)
    assert outbox.deliver(row.pk) == "skipped"  # a worker or the sweep meeting it later
    assert len(recorder.received) == 1


@pytest.mark.django_db(transaction=True)
def test_an_inline_attempt_leaves_a_row_another_sender_holds(
    make_client, alice, recorder, published, django_capture_on_commit_callbacks
):
    row = queued_ping(make_client, alice, recorder.url("/cb"))
    assert outbox.OUTBOX.claim(row.pk, timezone.now()) is not None  # a worker's attempt
    assert inline.send(row.pk) == "taken"
    assert recorder.received == [] and published == []  # no deferral either: the holder records


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_in_the_slow_lane_is_never_called_inline(
    make_client, alice, recorder, published, django_capture_on_commit_callbacks
):
    url = recorder.url("/cb")
    row = queued_ping(make_client, alice, url)
    lanes.mark(url, lanes.SLOW)
    assert inline.send(row.pk) == "slow-lane"
    assert recorder.received == []
    assert published == [(dispatch.DELIVER_CALLBACK_SLOW, (row.pk,))]
    row.refresh_from_db()
    assert (row.state, row.attempts, row.lease_until) == ("pending", 0, None)


@pytest.mark.django_db(transaction=True)
def test_a_failed_inline_attempt_is_retried_by_the_workers(
    make_client, alice, recorder, published, django_capture_on_commit_callbacks
):
    recorder.statuses = [503]
    row = queued_ping(make_client, alice, recorder.url("/cb"))
    assert inline.send(row.pk) == "retrying"
    assert [task for task, _ in published] == [dispatch.DELIVER_CALLBACK]
    assert outbox.deliver(row.pk) == "delivered"  # the worker's retry
    assert len(recorder.received) == 2


@pytest.mark.django_db(transaction=True)
def test_an_unexpected_error_inline_hands_the_row_to_a_worker(
    make_client, alice, recorder, published, django_capture_on_commit_callbacks
):
    row = queued_ping(make_client, alice, recorder.url("/cb"))
    with (
        mock.patch.object(outbox, "deliver", side_effect=RuntimeError("bug")),
        mock.patch.object(inline.logger, "exception") as logged,
    ):
        assert inline.send(row.pk) is None
    assert logged.called
    assert published == [(dispatch.DELIVER_CALLBACK, (row.pk,))]


def test_an_inline_attempt_gives_up_where_the_slow_lane_begins():
    with ciba(CALLBACK_TOTAL_TIMEOUT=15.0):
        assert outbox.inline_deadline() == 5.0
    with ciba(CALLBACK_TOTAL_TIMEOUT=15.0, CALLBACK_SLOW_LANE_AFTER=2):
        assert outbox.inline_deadline() == 2.0
    with ciba(CALLBACK_TOTAL_TIMEOUT=3.0, CALLBACK_SLOW_LANE_AFTER=0):  # no slow lane
        assert outbox.inline_deadline() == 3.0


@pytest.mark.django_db(transaction=True)
def test_a_slow_endpoint_times_out_inline_and_moves_to_the_slow_lane(
    make_client, alice, recorder, published, django_capture_on_commit_callbacks
):
    recorder.delays = [2]
    url = recorder.url("/cb")
    row = queued_ping(make_client, alice, url)
    with ciba(CALLBACK_SLOW_LANE_AFTER=0.3):
        assert inline.send(row.pk) == "retrying"
        assert lanes.is_slow(url)
    row.refresh_from_db()
    assert row.last_error == "timeout"
    assert [task for task, _ in published] == [dispatch.DELIVER_CALLBACK_SLOW]


def test_post_gives_up_at_the_deadline_it_is_given_and_else_at_the_settings():
    from ciba.callbacks import send

    limits = []

    def session(total_timeout=None):
        limits.append(total_timeout)
        raise send.requests.ConnectionError("no network here")

    with mock.patch.object(send, "kept_session", side_effect=session):
        send.post("http://127.0.0.1:9/cb", NT, {})
        with send.deadline(1.5):
            send.post("http://127.0.0.1:9/cb", NT, {})
    assert limits == [None, 1.5]  # None: the session's default, CALLBACK_TOTAL_TIMEOUT


# --- workers keep their database connection (tests/integration/test_worker_connections.py) ----


def test_workers_keep_their_connection_and_replace_it_around_each_task_when_it_is_old_or_broken():
    from celery.signals import task_postrun, task_prerun

    assert dispatch.broker_settings("redis://127.0.0.1:6379/0")["CELERY_DB_REUSE_MAX"] >= 100
    for signal in (task_prerun, task_postrun):
        receivers = [r() if isinstance(r, weakref.ReferenceType) else r for _, r in signal.receivers]
        assert dispatch.refresh_connections in receivers


@pytest.mark.parametrize(("eager", "closed"), [(False, True), (True, False)])
def test_connections_are_refreshed_around_worker_tasks_but_never_inside_an_eager_caller(eager, closed):
    task = mock.Mock()
    task.request.is_eager = eager
    with mock.patch.object(dispatch, "close_old_connections") as refresh:
        dispatch.refresh_connections(sender=task, task=task)
    assert refresh.called is closed


# --- the row handed over by the committing request, not read back (issue 29) ---------------------


def delivery_statements(queries):
    return [q["sql"].split()[0] for q in queries.captured_queries if "ciba_callbackdelivery" in q["sql"]]


@pytest.mark.django_db(transaction=True)
def test_the_committing_process_sends_its_callback_without_reading_the_row_back(
    make_client, alice, recorder, published
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    row = queued_ping(make_client, alice, recorder.url("/cb"))
    with CaptureQueriesContext(connection) as queries:
        assert inline.send(row.pk) == "delivered"
    assert delivery_statements(queries) == ["UPDATE", "UPDATE"]  # the claim, the record
    ping = f'{{"auth_req_id": "{row.request.auth_req_id}"}}'.encode()
    assert [body for _, _, body in recorder.received] == [ping]
    row.refresh_from_db()
    assert (row.state, row.attempts, row.lease_until) == ("delivered", 1, None)


@pytest.mark.django_db(transaction=True)
def test_a_row_attempted_elsewhere_since_its_commit_is_read_back_and_counted_right(
    make_client, alice, recorder, published
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    recorder.statuses = [503]
    row = queued_ping(make_client, alice, recorder.url("/cb"))
    CallbackDelivery.objects.filter(pk=row.pk).update(attempts=1)  # a worker's attempt, recorded
    with CaptureQueriesContext(connection) as queries:
        assert inline.send(row.pk) == "retrying"
    assert "SELECT" in delivery_statements(queries)
    row.refresh_from_db()
    assert row.attempts == 2 and row.lease_until is None


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_approval_leaves_nothing_for_the_senders(make_client, alice, published):
    from django.db import transaction

    from ciba import services

    app, _ = make_client("ping")
    with pytest.raises(RuntimeError), transaction.atomic():
        ar = approve_ping(app, alice, NT)
        pk = CallbackDelivery.objects.get(request=ar).pk
        raise RuntimeError("the site's view failed after the approval")
    assert services.committed_callback(pk) is None
    assert not CallbackDelivery.objects.filter(pk=pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_callback_the_senders_decline_is_left_to_a_worker_and_not_kept(
    make_client, alice, recorder, published, monkeypatch
):
    from ciba import services

    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    row = queued_ping(make_client, alice, recorder.url("/cb"))
    with ciba(CALLBACK_INLINE_SENDERS=0):
        assert inline.submit(row.pk) is False
    assert services.committed_callback(row.pk) is None
    assert outbox.deliver(row.pk) == "delivered"  # the worker reads the row itself
    assert len(recorder.received) == 1


# --- the row written already claimed for a free sender ------------------------------------------


@pytest.fixture
def sending_process(monkeypatch):
    """A process whose sender threads would take a callback now (not eager Celery, threads
    free), as a web process under the production settings."""
    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    assert inline.drain(5)


@pytest.mark.django_db(transaction=True)
def test_a_row_is_written_claimed_for_a_free_sender_which_sends_it_without_a_claim(
    make_client, alice, recorder, published, sending_process
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    before = timezone.now()
    row = queued_ping(make_client, alice, recorder.url("/cb"))
    lease = outbox.OUTBOX.lease_duration()
    assert row.attempts == 1 and before + lease <= row.lease_until <= timezone.now() + lease
    assert outbox.deliver(row.pk) == "deferred"  # a worker or a sweep meeting it meanwhile
    assert recorder.received == []
    with CaptureQueriesContext(connection) as queries:
        assert inline.send(row.pk) == "delivered"
    assert delivery_statements(queries) == ["UPDATE"]  # the record: no claim after the commit
    row.refresh_from_db()
    assert (row.state, row.attempts, row.lease_until) == ("delivered", 1, None)
    assert len(recorder.received) == 1


@pytest.mark.django_db(transaction=True)
def test_a_row_written_claimed_that_no_sender_takes_after_all_is_given_back_to_the_workers(
    make_client, alice, recorder, published, sending_process
):
    row = queued_ping(make_client, alice, recorder.url("/cb"))
    assert row.lease_until is not None
    with ciba(CALLBACK_INLINE_SENDERS=0):  # every thread taken between the write and the commit
        assert inline.submit(row.pk) is False
    row.refresh_from_db()
    assert (row.attempts, row.lease_until) == (0, None)  # at once, not when the lease runs out
    assert outbox.deliver(row.pk) == "delivered"
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("delivered", 1) and len(recorder.received) == 1


@pytest.mark.django_db(transaction=True)
def test_a_row_is_written_unclaimed_when_no_sender_would_take_it(make_client, alice, recorder, monkeypatch):
    monkeypatch.setitem(current_app.conf, "task_always_eager", True)
    assert queued_ping(make_client, alice, recorder.url("/a")).lease_until is None
    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    with ciba(CALLBACK_INLINE_SENDERS=0):
        row = queued_ping(make_client, alice, recorder.url("/b"))
    assert (row.attempts, row.lease_until) == (0, None)


@pytest.mark.django_db(transaction=True)
def test_a_claim_written_long_ago_is_not_relied_on_and_waits_for_the_sweep(
    make_client, alice, recorder, published, sending_process
):
    """A sender that only runs when half of the row's lease is gone (a stalled process) does not
    send it: past its lease a sweep may hand it to a worker, and it would be sent twice."""
    from ciba import services

    row = queued_ping(make_client, alice, recorder.url("/cb"))
    soon = timezone.now() + outbox.OUTBOX.lease_duration() / 4
    CallbackDelivery.objects.filter(pk=row.pk).update(lease_until=soon)
    services._committed[row.pk].lease_until = soon
    assert inline.send(row.pk) == "taken"
    assert recorder.received == []
    row.refresh_from_db()
    assert (row.state, row.attempts, row.lease_until) == ("pending", 1, soon)
