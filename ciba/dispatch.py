"""Handing work to Celery: the one place that enqueues tasks, and the one place that survives a
broker outage.

Tasks are addressed by name (the ``@shared_task`` wrappers in ``ciba.tasks`` register them when
the app is ready), so the code that schedules work never imports the code that runs it.

* ``after_commit``: for work about rows the caller is writing. A worker must never look up a
  row its creator might still roll back, so the task is sent once the transaction on
  ``using`` commits (at once when there is none).
* ``send``: for callers outside any transaction of their own (retries, sweeps).

A broker error never propagates: the client's request or the user's decision already
succeeded, and the durable state (the outbox row, the request's notification status) is what
a sweep or an operator recovers from. It is logged here, and ``on_error`` lets the caller
record it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from celery import current_app
from django.db import transaction

logger = logging.getLogger("ciba.dispatch")

#: Task names: wire values in the broker, so they never change.
NOTIFY_DEVICE = "ciba.notify_authentication_device"
NOTIFY_DUE = "ciba.notify_due_devices"
DELIVER_CALLBACK = "ciba.deliver_callback"
SWEEP_CALLBACKS = "ciba.sweep_callbacks"
EXPIRE_REQUESTS = "ciba.expire_requests"

#: One queue per kind of work, so a callback never waits behind a burst of device
#: notifications and a slow endpoint of one kind cannot hold up the other (docs/deployment.md).
#: Sites opt in with ``CELERY_TASK_ROUTES = ciba.dispatch.TASK_ROUTES`` and run workers for
#: the queues (``celery worker -Q ciba-callbacks`` ...); without routes everything goes to
#: Celery's default queue.
QUEUES = ("ciba-callbacks", "ciba-notify", "ciba-sweeps")
TASK_ROUTES = {
    DELIVER_CALLBACK: {"queue": "ciba-callbacks"},
    NOTIFY_DEVICE: {"queue": "ciba-notify"},
    NOTIFY_DUE: {"queue": "ciba-notify"},
    SWEEP_CALLBACKS: {"queue": "ciba-sweeps"},
    EXPIRE_REQUESTS: {"queue": "ciba-sweeps"},
}
#: The periodic tasks every deployment runs with Celery beat (``CELERY_BEAT_SCHEDULE``): the
#: outbox sweep is what recovers work a dead worker or a broker outage left behind.
BEAT_SCHEDULE = {
    "ciba-sweep-callbacks": {"task": SWEEP_CALLBACKS, "schedule": 30.0},
    "ciba-expire-requests": {"task": EXPIRE_REQUESTS, "schedule": 60.0},
}

#: What each task is about, for log lines an operator can search for.
SUBJECTS = {
    NOTIFY_DEVICE: "the device notification for CIBA request",
    NOTIFY_DUE: "the batch of due device notifications",
    DELIVER_CALLBACK: "CIBA callback",
    SWEEP_CALLBACKS: "the CIBA callback sweep",
    EXPIRE_REQUESTS: "the CIBA expiry sweep",
}

OnError = Callable[[Exception], None]


def after_commit(
    task: str,
    *args: Any,
    using: str | None = None,
    countdown: float | None = None,
    on_error: OnError | None = None,
    **kwargs: Any,
) -> None:
    """Send ``task(*args, **kwargs)`` once the current transaction on ``using`` commits."""
    transaction.on_commit(
        lambda: send(task, *args, countdown=countdown, on_error=on_error, **kwargs), using=using
    )


def later(task: str, *args: Any, countdown: float) -> bool:
    """Send ``task(*args)`` to run in ``countdown`` seconds; False when nothing was scheduled.

    With eager Celery (development, the fast tests) there is no "later": running it now would
    find the same state again and recurse, so nothing is sent and the periodic sweep, or the
    next request, takes over.
    """
    if current_app.conf.task_always_eager:
        return False
    return send(task, *args, countdown=countdown)


#: When each process last sent a batch task, by task name (``kick_after_commit``).
_kicked: dict[str, float] = {}


def kick_after_commit(task: str, *, window: float, using: str | None = None) -> None:
    """Once the current transaction commits, make sure ``task`` runs within ``window`` seconds:
    send it with that countdown unless this process already sent one in the first half of
    the current window. Work created while a kick is pending is taken by it (its rows are
    committed well before the countdown ends); work created later sends a new kick. A lost
    kick (broker down, process killed) is covered by the periodic sweep. With eager Celery
    nothing is deferred: the task runs at once, as ``after_commit`` would run it."""

    def kick() -> None:
        if current_app.conf.task_always_eager:
            send(task)
            return
        now = time.monotonic()
        if now - _kicked.get(task, -window) < window / 2:
            return
        if send(task, countdown=window):
            _kicked[task] = now

    transaction.on_commit(kick, using=using)


def after_lease(task: str, pk: int, lease_until: datetime | None, now: datetime) -> str:
    """Come back to an outbox row another run holds (alive, or dead mid-attempt: a redelivered
    task lands here) when its lease ends, instead of dropping the only message that would.
    ``"deferred"`` when a task was scheduled, ``"skipped"`` otherwise (no lease, or it ended)."""
    if lease_until is None or lease_until < now:
        return "skipped"
    countdown = (lease_until - now).total_seconds() + 1
    return "deferred" if later(task, pk, countdown=countdown) else "skipped"


def send(
    task: str, *args: Any, countdown: float | None = None, on_error: OnError | None = None, **kwargs: Any
) -> bool:
    """Send ``task(*args, **kwargs)`` now; False (logged, ``on_error`` called) if the broker failed."""
    try:
        registered = current_app.tasks.get(task)
        if registered is None:  # not imported in this process: send it by name
            current_app.send_task(task, args=args, kwargs=kwargs, countdown=countdown)
        elif countdown is None:
            registered.delay(*args, **kwargs)
        else:
            registered.apply_async(args=args, kwargs=kwargs, countdown=countdown)
    except Exception as exc:  # noqa: BLE001 - a broker outage must not fail the caller
        subject = " ".join([SUBJECTS.get(task, task), *map(str, args[:1])])
        logger.error("Could not enqueue %s: %s", subject, type(exc).__name__)
        if on_error is not None:
            on_error(exc)
        return False
    return True
