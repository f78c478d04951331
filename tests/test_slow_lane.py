"""A client endpoint that keeps timing out is moved to the slow lane, one attempt in flight at a
time, so other clients' callbacks are not delayed; it comes back after a success
(issue 21, finding 5)."""

import time
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from ciba import callbacks, dispatch
from ciba.callbacks import lanes, outbox
from ciba.models import CallbackDelivery
from ciba.outbound import Outcome
from tests.conftest import approve_ping

NT = "slow-lane-notification-token-0123456789"
URL = "https://rp.example/cb"


def ciba(**extra):
    return override_settings(CIBA={**settings.CIBA, **extra})


# --- the decision ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "elapsed", "lane"),
    [
        (Outcome.ok(204), 0.01, lanes.NORMAL),
        (Outcome.ok(204), 14.0, lanes.NORMAL),  # slow but answered: back to normal
        (Outcome.timeout(), 0.5, lanes.SLOW),  # a connect timeout, say
        (Outcome.failed("HTTP 503", retry=True, status=503), 6.0, lanes.SLOW),  # held a slot 6 s
        (Outcome.failed("HTTP 503", retry=True, status=503), 0.02, None),  # quick: holds no one
        (Outcome.failed("connection error", retry=True), 0.01, None),
        (Outcome.failed("HTTP 400", retry=False, status=400), 0.01, None),
    ],
)
def test_what_an_attempt_says_about_its_endpoints_lane(outcome, elapsed, lane):
    assert lanes.verdict(outcome, elapsed, after=5.0) == lane


def test_without_a_slow_lane_nothing_moves():
    assert lanes.verdict(Outcome.timeout(), 15.0, after=None) is None
    with ciba(CALLBACK_SLOW_LANE_AFTER=0):
        assert lanes.slow_after() is None
        lanes.mark(URL, lanes.SLOW)
        assert not lanes.is_slow(URL)


def test_the_threshold_defaults_to_a_third_of_the_total_timeout():
    with ciba(CALLBACK_TOTAL_TIMEOUT=15.0):
        assert lanes.slow_after() == 5.0
    with ciba(CALLBACK_SLOW_LANE_AFTER=2):
        assert lanes.slow_after() == 2.0


def test_an_attempt_still_hanging_moves_its_endpoint_before_it_ends():
    with ciba(CALLBACK_SLOW_LANE_AFTER=0.05), lanes.watch(URL) as attempt:
        time.sleep(0.2)
        assert lanes.is_slow(URL)  # the endpoint's next callbacks already go elsewhere
    assert attempt.moved and attempt.elapsed >= 0.2


def test_a_quick_attempt_moves_nothing_and_costs_no_cache_write():
    with ciba(CALLBACK_SLOW_LANE_AFTER=1), mock.patch.object(lanes, "mark") as mark:
        with lanes.watch(URL) as attempt:
            pass
        assert lanes.record(URL, Outcome.ok(204), attempt, was_slow=False) == lanes.NORMAL
    mark.assert_not_called()


def test_the_lane_is_forgotten_after_its_time():
    with ciba(CALLBACK_SLOW_LANE_SECONDS=1):
        lanes.mark(URL, lanes.SLOW)
        assert lanes.is_slow(URL)
        time.sleep(1.1)
        assert not lanes.is_slow(URL)


def test_without_a_cache_every_callback_takes_the_normal_lane(monkeypatch):
    monkeypatch.setattr(cache, "get", mock.Mock(side_effect=ConnectionError("cache down")))
    assert not lanes.is_slow(URL)


def test_the_slow_lane_has_one_slot_per_endpoint():
    with lanes.slot(URL, 30) as first, lanes.slot(URL, 30) as second:
        assert first and not second
        with lanes.slot("https://other.example/cb", 30) as other:
            assert other
    with lanes.slot(URL, 30) as again:
        assert again


# --- delivery through the lanes ---------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch):
    """Tasks sent, instead of running them (eager mode would run them inline)."""
    calls = []
    monkeypatch.setattr(dispatch, "send", lambda task, *args, **kw: calls.append((task, *args)) or True)
    monkeypatch.setattr(dispatch, "later", lambda task, *args, **kw: calls.append((task, *args)) or True)
    return calls


@pytest.fixture
def owed(alice, make_client, sent):
    """The outbox row of an approved ping to ``URL``, its task not run yet."""

    def factory(url=URL):
        app, _ = make_client("ping", backchannel_client_notification_endpoint=url)
        ar = approve_ping(app, alice, NT)
        sent.clear()
        return CallbackDelivery.objects.get(request=ar)

    return factory


def test_a_timeout_moves_the_endpoint_and_its_retry_takes_the_slow_lane(owed, sent):
    row = owed()
    with mock.patch.object(outbox, "post", return_value=Outcome.timeout()):
        assert callbacks.deliver(row.pk) == "retrying"
    assert lanes.is_slow(URL)
    assert sent == [(dispatch.DELIVER_CALLBACK_SLOW, row.pk)]


def test_a_callback_to_a_slow_endpoint_is_handed_to_the_slow_lane_without_an_attempt(owed, sent):
    row = owed()
    lanes.mark(URL, lanes.SLOW)
    with mock.patch.object(outbox, "post") as post:
        assert callbacks.deliver(row.pk) == "slow-lane"
    post.assert_not_called()
    row.refresh_from_db()
    assert row.attempts == 0 and row.lease_until is None and row.state == "pending"
    assert sent == [(dispatch.DELIVER_CALLBACK_SLOW, row.pk)]


def test_a_success_in_the_slow_lane_brings_the_endpoint_back(owed, sent):
    row = owed()
    lanes.mark(URL, lanes.SLOW)
    with mock.patch.object(outbox, "post", return_value=Outcome.ok(204)):
        assert callbacks.deliver(row.pk, slow=True) == "delivered"
    assert not lanes.is_slow(URL)


def test_while_one_attempt_to_a_slow_endpoint_is_in_flight_the_next_waits_in_the_outbox(owed, sent):
    row = owed()
    lanes.mark(URL, lanes.SLOW)
    before = timezone.now()
    with lanes.slot(URL, 30), mock.patch.object(outbox, "post") as post:
        assert callbacks.deliver(row.pk, slow=True) == "throttled"
    post.assert_not_called()
    row.refresh_from_db()
    assert row.attempts == 0 and row.lease_until is None  # no attempt was made or counted
    assert row.next_attempt_at > before  # the sweep leaves it to the task scheduled for later
    assert sent == [(dispatch.DELIVER_CALLBACK_SLOW, row.pk)]


def test_a_callback_still_waiting_for_its_slot_at_expiry_fails(owed, sent):
    row = owed()
    row.request.__class__.objects.filter(pk=row.request_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with lanes.slot(URL, 30):
        assert callbacks.deliver(row.pk, slow=True) == "failed"
    row.refresh_from_db()
    assert "slow lane" in row.last_error


def test_other_endpoints_are_untouched_by_one_in_the_slow_lane(owed, sent):
    slow, other = owed(URL), owed("https://other.example/cb")
    lanes.mark(URL, lanes.SLOW)
    with mock.patch.object(outbox, "post", return_value=Outcome.ok(204)) as post:
        assert callbacks.deliver(other.pk) == "delivered"
        assert callbacks.deliver(slow.pk) == "slow-lane"
    assert post.call_count == 1


def test_the_sweep_hands_each_row_to_its_lanes_task(owed, sent):
    slow, other = owed(URL), owed("https://other.example/cb")
    lanes.mark(URL, lanes.SLOW)
    assert callbacks.sweep() == 2
    assert sorted(sent) == sorted(
        [(dispatch.DELIVER_CALLBACK_SLOW, slow.pk), (dispatch.DELIVER_CALLBACK, other.pk)]
    )


def test_the_slow_lane_task_is_routed_to_its_own_queue():
    assert dispatch.TASK_ROUTES[dispatch.DELIVER_CALLBACK_SLOW] == {"queue": "ciba-callbacks-slow"}
    assert "ciba-callbacks-slow" in dispatch.QUEUES


def test_routes_that_forget_the_slow_lane_are_reported(monkeypatch):
    from celery import current_app

    from ciba.checks import Codes, check_worker_settings

    routes = {
        name: route for name, route in dispatch.TASK_ROUTES.items() if name != dispatch.DELIVER_CALLBACK_SLOW
    }
    monkeypatch.setitem(current_app.conf, "task_routes", routes)
    assert [m.id for m in check_worker_settings()] == [Codes.SLOW_LANE_UNROUTED]
    monkeypatch.setitem(current_app.conf, "task_routes", dispatch.TASK_ROUTES)
    assert check_worker_settings() == []
