"""Sweeps run on any worker, once at a time, and say when they last completed; a broker
failure makes the process stop sending for a moment instead of waiting on every send
(issue 21, finding 4)."""

import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.core.cache import cache
from django.utils import timezone

from ciba import callbacks, dispatch
from ciba.callbacks import outbox
from ciba.models import CallbackDelivery
from tests.conftest import approve_ping

NT = "sweep-notification-token-0123456789"


def owed_pings(alice, make_client, recorder, count=3):
    """Approved ping requests whose callback tasks were never sent (a broker outage)."""
    app, _ = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/cb"))
    with mock.patch.object(dispatch, "send", return_value=False):
        for _ in range(count):
            approve_ping(app, alice, NT)
    return list(CallbackDelivery.objects.order_by("pk").values_list("pk", flat=True))


# --- one sweep at a time --------------------------------------------------------------------


def test_a_sweep_started_while_another_runs_does_nothing():
    with dispatch.sweeping("callbacks") as first:
        with dispatch.sweeping("callbacks") as second:
            assert first is True and second is False
        with dispatch.sweeping("notifications") as other_outbox:
            assert other_outbox is True  # each outbox has its own lock
    with dispatch.sweeping("callbacks") as after:
        assert after is True  # released when the holder finished


def test_sweeps_started_at_once_by_several_workers_do_the_work_once(monkeypatch):
    """Five beat instances (or workers) start the callback sweep at the same moment: one does
    the work, the others find the lock taken and return at once."""
    rows = [(1, "https://rp.example/cb"), (2, "https://rp.example/cb"), (3, "https://other.example/cb")]
    sent, barrier, results = [], threading.Barrier(5), []
    monkeypatch.setattr(dispatch, "send", lambda task, pk, **kw: sent.append(pk) or True)

    def hand_out(now, limit):
        time.sleep(0.2)  # all five are inside the sweep together
        return rows

    monkeypatch.setattr(outbox, "_hand_out", hand_out)

    def run():
        barrier.wait()
        results.append(callbacks.sweep())

    threads = [threading.Thread(target=run) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 0, 0, 0, 3]
    assert sorted(sent) == [1, 2, 3]


def test_without_the_lock_row_claims_still_hand_each_row_out_once(alice, make_client, recorder, monkeypatch):
    """The cache (and so the lock) is down: two sweeps run, but each row's hand-out is a
    conditional UPDATE, so the second finds nothing due."""
    pks = owed_pings(alice, make_client, recorder)
    sent = []
    monkeypatch.setattr(dispatch, "send", lambda task, pk, **kw: sent.append(pk) or True)
    monkeypatch.setattr(cache, "add", mock.Mock(side_effect=ConnectionError("cache down")))
    assert callbacks.sweep() == 3
    assert callbacks.sweep() == 0  # the handed-out rows wait for their tasks
    assert sorted(sent) == pks


def test_a_handed_out_row_whose_task_is_lost_is_handed_out_again_later(
    alice, make_client, recorder, monkeypatch
):
    (pk, *_) = owed_pings(alice, make_client, recorder, count=1)
    sent = []
    monkeypatch.setattr(dispatch, "send", lambda task, pk, **kw: sent.append(pk) or True)
    assert callbacks.sweep() == 1
    later = timezone.now() + outbox.handoff_duration() + timedelta(seconds=1)
    assert callbacks.sweep(now=later) == 1  # its message never ran: the row is due again
    assert sent == [pk, pk]


def test_a_row_the_sweep_could_not_send_is_due_again_at_once(alice, make_client, recorder, monkeypatch):
    owed_pings(alice, make_client, recorder, count=2)
    monkeypatch.setattr(dispatch, "send", lambda *a, **kw: False)  # the broker failed mid-sweep
    assert callbacks.sweep() == 2
    monkeypatch.setattr(dispatch, "send", lambda *a, **kw: True)
    assert callbacks.sweep() == 2


def test_each_sweep_records_when_it_completed_for_the_health_check(alice, make_client, recorder):
    from ciba.tasks import expire_requests, sweep_callbacks

    assert dispatch.last_sweeps() == {"callbacks": None, "notifications": None, "expiry": None}
    before = time.time()
    sweep_callbacks.apply().get()
    expire_requests.apply().get()
    done = dispatch.last_sweeps()
    assert all(before <= done[name] <= time.time() for name in dispatch.SWEEPS)


def test_a_sweep_that_fails_records_nothing_and_frees_its_lock():
    with pytest.raises(RuntimeError), dispatch.sweeping("callbacks"):
        raise RuntimeError("database gone")
    assert dispatch.last_sweeps()["callbacks"] is None
    with dispatch.sweeping("callbacks") as mine:
        assert mine


def test_a_sweep_runs_without_its_lock_when_the_cache_is_down(monkeypatch):
    monkeypatch.setattr(cache, "add", mock.Mock(side_effect=ConnectionError("cache down")))
    with dispatch.sweeping("callbacks") as mine:
        assert mine  # sweeping matters more than sweeping once


# --- the breaker: one failed send, then none for a moment ------------------------------------


@pytest.fixture
def real_broker(monkeypatch):
    """This process sends to a broker (not eager) that refuses every publish."""
    from celery import current_app

    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    publishes = []

    def refuse(*args, **kwargs):
        publishes.append(args)
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(current_app, "send_task", refuse)
    for task in current_app.tasks.values():
        monkeypatch.setattr(task, "apply_async", refuse, raising=False)
    dispatch.breaker.reset()
    yield publishes
    dispatch.breaker.reset()


def test_after_a_failed_send_the_process_sends_nothing_for_a_while(real_broker, caplog):
    assert dispatch.send(dispatch.DELIVER_CALLBACK, 1) is False
    errors = []
    assert dispatch.send(dispatch.DELIVER_CALLBACK, 2, on_error=errors.append) is False
    assert len(real_broker) == 1  # the second send did not wait for the broker
    assert isinstance(errors[0], dispatch.BrokerUnavailable)
    assert "Could not enqueue CIBA callback 1" in caplog.text


def test_the_breaker_closes_after_its_time(real_broker, settings):
    settings.CIBA = {**settings.CIBA, "DISPATCH_BREAKER_SECONDS": 0.05}
    dispatch.send(dispatch.DELIVER_CALLBACK, 1)
    time.sleep(0.1)
    dispatch.send(dispatch.DELIVER_CALLBACK, 2)
    assert len(real_broker) == 2


def test_publishing_gives_up_after_one_retry():
    """A web request must not wait for the broker: Celery's default retries three times."""
    with mock.patch("celery.app.task.Task.apply_async") as publish:
        dispatch.send(dispatch.DELIVER_CALLBACK, 1)
    assert publish.call_args.kwargs["retry_policy"]["max_retries"] == 1


# --- the Celery settings that keep workers alive ----------------------------------------------


def test_a_redis_broker_gets_the_outage_proof_transport_and_workers_never_stop_reconnecting():
    settings = dispatch.broker_settings("redis://127.0.0.1:6379/0")
    assert settings["CELERY_BROKER_TRANSPORT"] == "ciba.backends.redis_broker.Transport"
    assert settings["CELERY_BROKER_CONNECTION_MAX_RETRIES"] is None
    assert settings["CELERY_BROKER_TRANSPORT_OPTIONS"]["socket_timeout"] > 0
    other = dispatch.broker_settings("amqp://guest@localhost//")
    assert "CELERY_BROKER_TRANSPORT" not in other and other["CELERY_BROKER_CONNECTION_MAX_RETRIES"] is None


def test_the_transport_forgets_a_message_whose_acknowledgement_failed():
    """A hung broker: the acknowledgement times out, and the message must stop counting against
    the prefetch limit, or the worker stops fetching for good."""
    from kombu.transport.virtual import QoS as VirtualQoS

    from ciba.backends.redis_broker import QoS

    class Channel:
        connection_errors = (ConnectionError,)
        do_restore = False

    qos = QoS.__new__(QoS)
    VirtualQoS.__init__(qos, Channel(), prefetch_count=1)
    qos._delivered["tag"] = object()
    assert not qos.can_consume()
    with (
        mock.patch("kombu.transport.redis.QoS.ack", side_effect=ConnectionError("timed out")),
        pytest.raises(ConnectionError),
    ):
        qos.ack("tag")
    assert qos.can_consume()


@pytest.mark.parametrize("settle", ["ack", "reject"])
def test_a_message_held_across_a_reconnection_is_forgotten_not_acknowledged_on_its_closed_channel(settle):
    """The worker reconnected on a new channel; a task it held from the old one finishes. kombu
    would rebuild the closed channel's pool and fail (the worker died: "Unrecoverable error")."""
    from kombu.transport.virtual import QoS as VirtualQoS

    from ciba.backends.redis_broker import QoS

    class Channel:
        connection_errors = (ConnectionError,)
        do_restore = False
        closed = True
        connection = None

    qos = QoS.__new__(QoS)
    VirtualQoS.__init__(qos, Channel(), prefetch_count=1)
    qos._delivered["tag"] = object()
    with mock.patch(f"kombu.transport.redis.QoS.{settle}", side_effect=AttributeError("no client")) as kombus:
        getattr(qos, settle)("tag")
    assert not kombus.called and qos.can_consume()


def test_the_transport_survives_a_restore_that_cannot_reach_redis():
    from ciba.backends.redis_broker import QoS

    qos = QoS.__new__(QoS)
    qos._delivered = {"a": 1, "b": 2}
    with mock.patch("kombu.transport.redis.QoS.restore_unacked", side_effect=AttributeError("no pool")):
        assert qos.restore_unacked() == []
    assert qos._delivered == {}


def test_a_redis_broker_without_the_outage_settings_is_reported_at_deploy(monkeypatch):
    from celery import current_app

    from ciba.checks import Codes, check_broker_hardening

    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    monkeypatch.setitem(current_app.conf, "broker_url", "redis://127.0.0.1:6379/0")
    monkeypatch.setitem(current_app.conf, "broker_transport", None)
    monkeypatch.setitem(current_app.conf, "broker_connection_max_retries", 100)
    (warning,) = check_broker_hardening()
    assert warning.id == Codes.BROKER_NOT_HARDENED
    assert "broker_transport, broker_connection_max_retries" in warning.msg
    for name, value in dispatch.broker_settings("redis://127.0.0.1:6379/0").items():
        monkeypatch.setitem(current_app.conf, name.removeprefix("CELERY_").lower(), value)
    assert check_broker_hardening() == []
