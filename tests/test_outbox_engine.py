"""The outbox engine (``ciba.outbox_engine``): leases, claims, deferral, the retry plan and
sweeping, once for both outboxes. Each rule is checked on both (the device notifications,
whose entry is the request row, and the callbacks, ``CallbackDelivery`` rows); what each
outbox does with a claimed entry is tested in tests/test_notifications.py and
tests/test_callbacks.py."""

from datetime import timedelta
from unittest import mock

import pytest
from django.core.cache import cache
from django.utils import timezone

from ciba import device_outbox as notifications
from ciba import dispatch, services
from ciba.callbacks import outbox as callback_outbox
from ciba.models import AuthenticationRequest, CallbackDelivery
from ciba.outbox_engine import Outbox, RetryPlan, after_lease

NT = "engine-notification-token-0123456789"
OUTBOXES = {"callbacks": callback_outbox.OUTBOX, "notifications": notifications.OUTBOX}


@pytest.fixture
def entry(alice, make_client):
    """``entry(outbox)`` writes one entry of ``outbox``, due now, its task never sent; its pk."""

    def make(outbox: Outbox, expires_in: int = 60) -> int:
        ping = outbox is callback_outbox.OUTBOX
        endpoint = {"backchannel_client_notification_endpoint": "https://rp.example/cb"} if ping else {}
        app, _ = make_client("ping" if ping else "poll", **endpoint)
        with mock.patch.object(dispatch, "send", return_value=False):
            ar = services.create_request(
                expires_in=expires_in,
                client=app,
                user=alice,
                hint_kind="login_hint",
                scope="openid",
                interval=5,
                client_notification_token=NT if ping else "",
            )
            if not ping:
                return ar.pk
            services.approve(ar, user=alice)
        return CallbackDelivery.objects.get(request=ar).pk

    return make


@pytest.fixture(params=sorted(OUTBOXES))
def owed(request, entry):
    """``(outbox, make)`` for each outbox in turn: ``make()`` writes one of its entries."""
    outbox = OUTBOXES[request.param]
    return outbox, lambda: entry(outbox)


def rows(outbox):
    return outbox.model._default_manager


# --- leases and claims ------------------------------------------------------------------------


def test_each_outbox_is_described_once(settings):
    settings.CIBA = {**settings.CIBA, "CALLBACK_TOTAL_TIMEOUT": 15.0}
    assert callback_outbox.OUTBOX.lease_duration() == timedelta(seconds=25)  # one POST
    assert notifications.OUTBOX.lease_duration() == timedelta(seconds=40)  # the notifiers in turn
    assert callback_outbox.OUTBOX.model is CallbackDelivery
    assert notifications.OUTBOX.model is AuthenticationRequest
    assert {o.name for o in OUTBOXES.values()} <= set(dispatch.SWEEPS)


def test_an_entry_is_claimed_once_until_its_lease_runs_out(owed):
    outbox, make = owed
    pk = make()
    now = timezone.now()
    lease = outbox.claim(pk, now)
    assert lease == now + outbox.lease_duration()
    assert rows(outbox).filter(pk=pk).values_list(outbox.lease_field, flat=True).get() == lease
    assert outbox.claim(pk, now) is None  # held
    assert outbox.claim(pk, lease - timedelta(seconds=1)) is None
    assert outbox.claim(pk, lease + timedelta(seconds=1)) is not None  # its holder is taken for dead


def test_a_claim_sets_the_outboxs_own_fields_in_the_same_update(entry):
    from django.db.models import F

    outbox = callback_outbox.OUTBOX  # it counts an attempt at its claim
    pk = entry(outbox)
    assert outbox.claim(pk, timezone.now(), attempts=F("attempts") + 1)
    assert CallbackDelivery.objects.get(pk=pk).attempts == 1


def test_a_finished_entry_is_never_claimed(owed):
    outbox, make = owed
    pk = make()
    if outbox is callback_outbox.OUTBOX:
        CallbackDelivery.objects.filter(pk=pk).update(state=CallbackDelivery.State.DELIVERED)
    else:
        AuthenticationRequest.objects.filter(pk=pk).update(
            device_notification_status=AuthenticationRequest.NotificationStatus.SENT
        )
    assert outbox.claim(pk, timezone.now()) is None
    assert list(outbox.due(timezone.now())) == []


def test_a_release_gives_back_only_the_callers_own_lease(owed):
    outbox, make = owed
    pk = make()
    now = timezone.now()
    lease = outbox.claim(pk, now)
    assert outbox.release(pk, lease - timedelta(seconds=1)) == 0  # someone else's
    assert outbox.release(pk, lease) == 1
    assert outbox.claim(pk, now) is not None


def test_claiming_due_entries_takes_the_oldest_first_and_never_one_twice(owed):
    outbox, make = owed
    pks = [make() for _ in range(3)]
    now = timezone.now()
    for age, pk in enumerate(pks):  # the last written is the oldest due
        rows(outbox).filter(pk=pk).update(**{outbox.due_field: now - timedelta(seconds=10 + age)})
    first = outbox.lease_due(now, 2)
    assert first == [pks[2], pks[1]]
    assert outbox.lease_due(now, 2) == [pks[0]]
    assert outbox.lease_due(now, 2) == []


def test_an_entry_not_yet_due_is_not_claimed_in_a_batch(owed):
    outbox, make = owed
    pk = make()
    now = timezone.now()
    rows(outbox).filter(pk=pk).update(**{outbox.due_field: now + timedelta(seconds=30)})
    assert outbox.lease_due(now, 10) == []
    assert outbox.claim(pk, now) is not None  # a task may still claim it by name


# --- deferral -----------------------------------------------------------------------------------


def test_a_task_finding_its_entry_held_comes_back_when_the_lease_ends(owed, monkeypatch):
    outbox, make = owed
    pk = make()
    later = []
    monkeypatch.setattr(
        dispatch, "later", lambda task, *args, countdown: later.append((task, args, countdown)) or True
    )
    now = timezone.now()
    outbox.claim(pk, now)
    assert outbox.defer("some.task", pk, now) == "deferred"
    ((task, args, countdown),) = later
    assert (task, args) == ("some.task", (pk,))
    assert countdown == outbox.lease_duration().total_seconds() + 1


def test_a_task_finding_its_entry_done_or_unleased_does_nothing(owed, monkeypatch):
    outbox, make = owed
    pk = make()
    monkeypatch.setattr(dispatch, "later", mock.Mock(return_value=True))
    now = timezone.now()
    assert outbox.defer("some.task", pk, now) == "skipped"  # no lease: nobody to wait for
    rows(outbox).filter(pk=pk).delete()
    assert outbox.defer("some.task", pk, now) == "skipped"
    dispatch.later.assert_not_called()


def test_after_lease_without_a_broker_to_schedule_on_is_skipped(monkeypatch):
    now = timezone.now()
    monkeypatch.setattr(dispatch, "later", mock.Mock(return_value=False))  # eager Celery: no "later"
    assert after_lease("some.task", 1, now + timedelta(seconds=5), now) == "skipped"
    assert after_lease("some.task", 1, now - timedelta(seconds=5), now) == "skipped"


# --- the retry plan -----------------------------------------------------------------------------


def test_each_outbox_reads_its_own_retry_settings(settings):
    settings.CIBA = {
        **settings.CIBA,
        "CALLBACK_MAX_RETRIES": 3,
        "CALLBACK_RETRY_BACKOFF_BASE": 1.0,
        "CALLBACK_RETRY_BACKOFF_MAX": 60,
        "NOTIFY_MAX_RETRIES": 7,
        "NOTIFY_RETRY_BACKOFF_BASE": 4.0,
        "NOTIFY_RETRY_BACKOFF_MAX": 30,
    }
    assert callback_outbox.OUTBOX.retry_plan() == RetryPlan(max_retries=3, base=1.0, cap=60)
    assert notifications.OUTBOX.retry_plan() == RetryPlan(max_retries=7, base=4.0, cap=30)


def test_the_delay_backs_off_and_honours_retry_after_within_the_cap():
    plan = RetryPlan(max_retries=8, base=1.0, cap=120)
    assert 0.5 <= plan.delay(1) <= 1.0
    assert 4.0 <= plan.delay(4) <= 8.0
    assert plan.delay(1, retry_after=60) == 60
    assert plan.delay(1, retry_after=10_000) == 120
    assert plan.delay(30) == 120


def test_a_retry_is_planned_only_if_worth_it_within_the_attempts_and_before_the_deadline():
    plan = RetryPlan(max_retries=2, base=10.0, cap=20)
    now = timezone.now()
    far = now + timedelta(hours=1)
    assert 5.0 <= plan.next_delay(1, worth_it=True, now=now, deadline=far) <= 10.0
    assert plan.next_delay(1, worth_it=False, now=now, deadline=far) is None  # a final failure
    assert plan.next_delay(2, worth_it=True, now=now, deadline=far) is not None
    assert plan.next_delay(3, worth_it=True, now=now, deadline=far) is None  # out of attempts
    assert plan.next_delay(1, worth_it=True, now=now, deadline=now + timedelta(seconds=2)) is None
    assert plan.next_delay(1, worth_it=True, now=now, deadline=far, retry_after=15) == 15


def test_claims_that_never_recorded_exhaust_the_plan():
    plan = RetryPlan(max_retries=2, base=1.0, cap=10)
    assert not plan.exhausted(3)  # the first attempt and two retries
    assert plan.exhausted(4)


# --- sweeping ------------------------------------------------------------------------------------


def test_a_sweep_that_claims_moves_each_entry_ahead_and_makes_an_unsent_one_due_again(entry):
    outbox = callback_outbox.OUTBOX
    assert outbox.handoff
    sent, unsent = entry(outbox), entry(outbox)
    now = timezone.now()

    def send(handed):
        assert sorted(handed) == sorted([sent, unsent])
        return [unsent]

    assert outbox.sweep(lambda at: outbox.hand_out(at, 10), send, now) == 2
    due = dict(rows(outbox).values_list("pk", outbox.due_field))
    assert due[sent] == now + outbox.handoff_duration()
    assert due[unsent] == now
    assert [pk for pk in outbox.due(now).values_list("pk", flat=True)] == [unsent]


def test_a_sweep_that_only_reads_leaves_new_entries_to_their_own_task(entry):
    outbox = notifications.OUTBOX  # the batch task claims due entries: a hand-out may not move them
    assert not outbox.handoff
    pk = entry(outbox)
    now = timezone.now()
    assert outbox.hand_out(now, 10) == []  # within the grace
    later = now + outbox.sweep_grace + timedelta(seconds=1)
    assert outbox.hand_out(later, 10) == [pk]
    assert outbox.hand_out(later, 10) == [pk]  # nothing claimed: the task claims it


def test_a_sweep_runs_once_at_a_time_and_records_when_it_completed(owed):
    outbox, make = owed
    make()
    hand_out = mock.Mock(return_value=[])
    with dispatch.sweeping(outbox.name):
        assert outbox.sweep(hand_out, mock.Mock()) == 0  # another holds the lock
        hand_out.assert_not_called()
        assert dispatch.last_sweeps()[outbox.name] is None
    cache.clear()
    send = mock.Mock()
    assert outbox.sweep(hand_out, send) == 0
    send.assert_not_called()  # nothing to send
    assert dispatch.last_sweeps()[outbox.name] is not None


def test_the_backlog_counts_what_is_pending_and_what_no_worker_holds_too_long(owed):
    outbox, make = owed
    pks = [make(), make(), make()]
    now = timezone.now()
    assert outbox.backlog(now, now - timedelta(seconds=300)) == (3, 0, None)
    old = now - timedelta(seconds=500)
    rows(outbox).filter(pk__in=pks[:2]).update(**{outbox.due_field: old})
    outbox.claim(pks[1], now)  # held by a live worker: not overdue
    assert outbox.backlog(now, now - timedelta(seconds=300)) == (3, 1, old)


# --- one sweep task per outbox ---------------------------------------------------------------------


def test_each_outbox_has_its_own_sweep_task_on_the_sweep_queue_and_in_the_beat_schedule():
    from ciba import tasks

    scheduled = {entry["task"] for entry in dispatch.BEAT_SCHEDULE.values()}
    for task in (dispatch.SWEEP_CALLBACK_OUTBOX, dispatch.SWEEP_NOTIFICATION_OUTBOX):
        assert task in scheduled
        assert dispatch.TASK_ROUTES[task] == {"queue": "ciba-sweeps"}
    assert dispatch.SWEEP_CALLBACKS not in scheduled  # kept for queued messages only
    assert dispatch.TASK_ROUTES[dispatch.SWEEP_CALLBACKS] == {"queue": "ciba-sweeps"}
    assert tasks.sweep_callback_outbox.name == dispatch.SWEEP_CALLBACK_OUTBOX
    assert tasks.sweep_notification_outbox.name == dispatch.SWEEP_NOTIFICATION_OUTBOX


def test_each_sweep_task_sweeps_its_outbox_alone_and_the_old_name_sweeps_both(alice, make_client):
    from ciba import tasks

    tasks.sweep_notification_outbox.apply().get()
    assert dispatch.last_sweeps()["notifications"] is not None
    assert dispatch.last_sweeps()["callbacks"] is None
    tasks.sweep_callback_outbox.apply().get()
    assert dispatch.last_sweeps()["callbacks"] is not None
    cache.clear()
    tasks.sweep_callbacks.apply().get()
    assert None not in (dispatch.last_sweeps()["callbacks"], dispatch.last_sweeps()["notifications"])
