"""Batch kicks (``dispatch.kick_after_commit``) are published by a thread of the committing
process, a moment after the commit: never inside the client's or the user's request, never
beside the callback that commit sends, and still due when the batch window ends."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery import current_app

from ciba import dispatch

WINDOW = 0.5


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, float]]:
    """What reaches the broker: (task, countdown, when), with a fresh kicker and no kick yet."""
    sent: list[tuple[str, float, float]] = []

    def send(task: str, *args: Any, countdown: float | None = None, **kwargs: Any) -> bool:
        sent.append((task, countdown or 0.0, time.monotonic()))
        return True

    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    monkeypatch.setattr(dispatch, "_kicked", {})
    monkeypatch.setattr(dispatch, "_kicker", dispatch._Kicker())
    monkeypatch.setattr(dispatch, "send", send)
    return sent


def wait_for(check: Any, timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


@pytest.mark.django_db
def test_the_commit_returns_before_its_kick_is_published_which_is_still_due_when_the_window_ends(
    broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.kick_after_commit(dispatch.NOTIFY_DUE, window=WINDOW)
    committed = time.monotonic()
    assert broker == []  # the request answers without waiting for the broker

    assert wait_for(lambda: broker)
    [(task, countdown, published)] = broker
    assert task == dispatch.NOTIFY_DUE
    assert published - committed >= WINDOW * dispatch.KICK_DELAY_SHARE - 0.01
    due = published + countdown
    assert committed + WINDOW - 0.05 <= due <= committed + WINDOW + 0.01


@pytest.mark.django_db
def test_commits_within_half_a_window_share_one_kick_and_later_ones_send_their_own(
    broker, django_capture_on_commit_callbacks
):
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            dispatch.kick_after_commit(dispatch.WITHDRAW_DUE, window=WINDOW)
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.kick_after_commit(dispatch.NOTIFY_DUE, window=WINDOW)  # another task: its own
    assert wait_for(lambda: len(broker) == 2)
    assert sorted(task for task, _, _ in broker) == sorted([dispatch.WITHDRAW_DUE, dispatch.NOTIFY_DUE])

    time.sleep(WINDOW / 2)
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.kick_after_commit(dispatch.WITHDRAW_DUE, window=WINDOW)
    assert wait_for(lambda: len(broker) == 3)
    assert broker[-1][0] == dispatch.WITHDRAW_DUE


@pytest.mark.django_db
def test_a_kick_the_broker_refused_is_sent_again_by_the_next_commit(
    broker, monkeypatch, django_capture_on_commit_callbacks
):
    refused: list[str] = []
    accepting = dispatch.send  # the broker fixture's

    def refusing(task: str, **options: Any) -> bool:
        refused.append(task)
        return False

    monkeypatch.setattr(dispatch, "send", refusing)
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.kick_after_commit(dispatch.NOTIFY_DUE, window=WINDOW)
    assert wait_for(lambda: refused)

    monkeypatch.setattr(dispatch, "send", accepting)
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.kick_after_commit(dispatch.NOTIFY_DUE, window=WINDOW)  # within the half window
    assert wait_for(lambda: broker)
    assert broker[0][0] == dispatch.NOTIFY_DUE


@pytest.mark.django_db
def test_an_orderly_exit_publishes_the_kicks_still_waiting(broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.kick_after_commit(dispatch.NOTIFY_DUE, window=10.0)  # two seconds' wait
    assert wait_for(lambda: dispatch._kicker._waiting is not None)
    dispatch.flush_kicks()  # what atexit runs
    [(task, countdown, _)] = broker
    assert task == dispatch.NOTIFY_DUE and 9.0 < countdown <= 10.0


@pytest.mark.django_db
def test_a_rolled_back_transaction_kicks_nothing(broker):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        dispatch.kick_after_commit(dispatch.NOTIFY_DUE, window=WINDOW)
        raise RuntimeError("rolled back")
    time.sleep(WINDOW * dispatch.KICK_DELAY_SHARE + 0.1)
    assert broker == []


@pytest.mark.django_db
def test_with_eager_celery_the_task_runs_at_once(monkeypatch, django_capture_on_commit_callbacks):
    ran: list[str] = []
    monkeypatch.setattr(dispatch, "send", lambda task, **options: ran.append(task) or True)
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.kick_after_commit(dispatch.NOTIFY_DUE, window=WINDOW)
    assert ran == [dispatch.NOTIFY_DUE]


@pytest.mark.django_db
def test_a_kick_is_never_run_on_the_kickers_thread_when_celery_turned_eager_since_its_commit(
    broker, django_capture_on_commit_callbacks
):
    """A test's worker stopped and Celery is eager again: the kick is not published, and its
    task is not run on the kicker's thread (where it would hold a database connection)."""
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.kick_after_commit(dispatch.NOTIFY_DUE, window=WINDOW)
    current_app.conf.task_always_eager = True  # undone by the fixture's monkeypatch
    time.sleep(WINDOW * dispatch.KICK_DELAY_SHARE + 0.1)
    assert broker == []
