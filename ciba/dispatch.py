"""Handing work to Celery: the one place that enqueues tasks, and the one place that survives a
broker outage.

Tasks are addressed by name (the ``@shared_task`` wrappers in ``ciba.tasks`` register them when
the app is ready), so the code that schedules work never imports the code that runs it.

* ``after_commit``: for work about rows the caller is writing. A worker must never look up a
  row its creator might still roll back, so the task is sent once the transaction on
  ``using`` commits (at once when there is none).
* ``send``: for callers outside any transaction of their own (retries, sweeps).
* ``later``: for work that must wait (a lease held by another worker, a slow lane's turn).
* ``run_here``: a task this process may do itself once the commit is done, rather than
  publish it (callbacks: ``ciba.callbacks.inline``); the task is published when it declines.

A broker error never propagates: the client's request or the user's decision already
succeeded, and the durable state (the outbox row, the request's notification status) is what
a sweep or an operator recovers from. It is logged here, and ``on_error`` lets the caller
record it. After one, the process sends nothing for ``DISPATCH_BREAKER_SECONDS``: with the
broker hung every send would wait for its socket timeout, and the sweep sends the work anyway.

Also here: the Celery settings that let workers and publishers ride out a broker outage
(``broker_settings``), and what keeps sweeps single and observable: ``sweeping`` runs a
sweep under a lock in the shared cache, so several beat instances or workers starting one at
once do the work once, and records when it last completed (``last_sweeps``), for
``manage.py ciba_health`` (docs/operations.md).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from celery import current_app
from django.core.cache import cache
from django.db import close_old_connections, transaction

from . import outages
from .conf import ciba_settings

logger = logging.getLogger("ciba.dispatch")

#: Task names: wire values in the broker, so they never change.
NOTIFY_DEVICE = "ciba.notify_authentication_device"
NOTIFY_DUE = "ciba.notify_due_devices"
WITHDRAW_PROMPT = "ciba.withdraw_device_prompt"
WITHDRAW_DUE = "ciba.withdraw_due_prompts"
DELIVER_CALLBACK = "ciba.deliver_callback"
DELIVER_CALLBACK_SLOW = "ciba.deliver_callback_slow"
SWEEP_CALLBACK_OUTBOX = "ciba.sweep_callback_outbox"
SWEEP_NOTIFICATION_OUTBOX = "ciba.sweep_notification_outbox"
#: Both outboxes at once: the one sweep task before each outbox had its own, kept so that
#: messages already queued, and beat schedules that name it, still sweep both.
SWEEP_CALLBACKS = "ciba.sweep_callbacks"
EXPIRE_REQUESTS = "ciba.expire_requests"

#: One queue per kind of work, so a callback never waits behind a burst of device
#: notifications and a slow endpoint of one kind cannot hold up the other (docs/deployment.md).
#: ``ciba-callbacks-slow`` is the slow lane: callbacks to a client endpoint that keeps timing
#: out, one attempt in flight per endpoint, on workers of their own (``ciba.callbacks.lanes``).
#: Every worker may also consume ``ciba-sweeps``: sweeps are locked, so any worker can run them.
#: Sites opt in with ``CELERY_TASK_ROUTES = ciba.dispatch.TASK_ROUTES`` and run workers for
#: the queues (docs/operations.md); without routes everything goes to Celery's default queue.
QUEUES = ("ciba-callbacks", "ciba-callbacks-slow", "ciba-notify", "ciba-sweeps")
TASK_ROUTES = {
    DELIVER_CALLBACK: {"queue": "ciba-callbacks"},
    DELIVER_CALLBACK_SLOW: {"queue": "ciba-callbacks-slow"},
    NOTIFY_DEVICE: {"queue": "ciba-notify"},
    NOTIFY_DUE: {"queue": "ciba-notify"},
    WITHDRAW_PROMPT: {"queue": "ciba-notify"},
    WITHDRAW_DUE: {"queue": "ciba-notify"},
    SWEEP_CALLBACK_OUTBOX: {"queue": "ciba-sweeps"},
    SWEEP_NOTIFICATION_OUTBOX: {"queue": "ciba-sweeps"},
    SWEEP_CALLBACKS: {"queue": "ciba-sweeps"},
    EXPIRE_REQUESTS: {"queue": "ciba-sweeps"},
}
#: The periodic tasks every deployment runs with Celery beat (``CELERY_BEAT_SCHEDULE``): one
#: sweep per outbox, what recovers work a dead worker or a broker outage left behind.
BEAT_SCHEDULE = {
    "ciba-sweep-callback-outbox": {"task": SWEEP_CALLBACK_OUTBOX, "schedule": 30.0},
    "ciba-sweep-notification-outbox": {"task": SWEEP_NOTIFICATION_OUTBOX, "schedule": 30.0},
    "ciba-expire-requests": {"task": EXPIRE_REQUESTS, "schedule": 60.0},
}

#: What each task is about, for log lines an operator can search for.
SUBJECTS = {
    NOTIFY_DEVICE: "the device notification for CIBA request",
    NOTIFY_DUE: "the batch of due device notifications",
    WITHDRAW_PROMPT: "the withdrawal of the device prompt of CIBA request",
    WITHDRAW_DUE: "the batch of due device prompt withdrawals",
    DELIVER_CALLBACK: "CIBA callback",
    DELIVER_CALLBACK_SLOW: "CIBA callback (slow lane)",
    SWEEP_CALLBACK_OUTBOX: "the CIBA callback sweep",
    SWEEP_NOTIFICATION_OUTBOX: "the CIBA device-notification sweep",
    SWEEP_CALLBACKS: "the CIBA outbox sweeps",
    EXPIRE_REQUESTS: "the CIBA expiry sweep",
}

OnError = Callable[[Exception], None]

#: How every ciba task is published: one retry (a stale pooled connection), then give up. A
#: web request must not wait for the broker: the outbox row is written, and the sweep sends it.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}

#: Celery settings (Django's ``CELERY_*`` names) for workers and publishers that ride out a
#: broker outage, whatever the broker (``broker_settings`` adds the Redis part):
WORKER_SETTINGS: dict[str, Any] = {
    # Reconnect after a lost connection, at start-up too, and never give up: Celery's default
    # (100 attempts) ends the worker after an outage of about an hour.
    "CELERY_BROKER_CONNECTION_RETRY": True,
    "CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP": True,
    "CELERY_BROKER_CONNECTION_MAX_RETRIES": None,
    # A channel error (say, Redis answering an error while it loads its data) restarts the
    # consumer like a connection error instead of stopping the worker.
    "CELERY_BROKER_CHANNEL_ERROR_RETRY": True,
    # A task running when the connection breaks finishes and records its outcome in the
    # outbox (its acknowledgement is lost, so the redelivered message finds the row done).
    # Cancelling it could cut a callback off after the client received it, and send it
    # twice. Stated, because Celery 6 changes the default.
    "CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS": False,
    # Keep the database connection across tasks: without it Celery's Django fix-up closes it
    # before and after every task, and every callback paid a new PostgreSQL connection (7.8 ms
    # of 42, docs/performance.md). A connection that is unusable or obsolete (an error,
    # CONN_MAX_AGE, a failed CONN_HEALTH_CHECKS check) is still replaced around each task, as
    # around a web request: ``refresh_connections``, connected by ``ciba.apps``.
    "CELERY_DB_REUSE_MAX": 1000,
}

#: The Redis part: kombu's Redis transport with bounded sockets and a restore of held
#: messages that cannot kill the worker (``ciba.backends.redis_broker``).
REDIS_BROKER_SETTINGS: dict[str, Any] = {
    "CELERY_BROKER_TRANSPORT": "ciba.backends.redis_broker.Transport",
    "CELERY_BROKER_TRANSPORT_OPTIONS": {
        # Seconds; Redis answers in milliseconds, so these only end a call to a hung broker
        # (a publish with its one retry: about a second). The consumer's blocking read has
        # its own server-side timeout.
        "socket_timeout": 0.5,
        "socket_connect_timeout": 0.5,
        "socket_keepalive": True,
        # A consumer whose connection went silent (a dropped route) reconnects within
        # about brpop_timeout + 2 x this many seconds.
        "health_check_interval": 10,
    },
}


def broker_settings(broker_url: str) -> dict[str, Any]:
    """``WORKER_SETTINGS``, plus ``REDIS_BROKER_SETTINGS`` for a ``redis://`` or ``rediss://``
    broker: ``globals().update(broker_settings(CELERY_BROKER_URL))`` in a settings module
    (after which any of them can still be overridden)."""
    redis = urlsplit(broker_url).scheme in ("redis", "rediss")
    return {**WORKER_SETTINGS, **(REDIS_BROKER_SETTINGS if redis else {})}


def refresh_connections(sender: Any = None, task: Any = None, **kwargs: Any) -> None:
    """Before and after each task a worker runs (Celery's ``task_prerun`` and
    ``task_postrun``): replace a database connection that is unusable or obsolete, as Django
    does around each web request (``close_old_connections``: an error left it broken,
    ``CONN_MAX_AGE`` passed, or the next query checks it first, ``CONN_HEALTH_CHECKS``).
    With ``CELERY_DB_REUSE_MAX`` (``WORKER_SETTINGS``) Celery no longer closes it around every
    task, so this is what keeps a broken one from failing the tasks that follow. Not for an
    eager task: it runs inside its caller, perhaps in a transaction."""
    request = getattr(task, "request", None)
    if getattr(request, "is_eager", False):
        return
    close_old_connections()


#: Tasks a process may run itself once the transaction that asked for them commits, instead of
#: publishing them (``run_here``): the task name's runner, and the lease it would hold.
_runners: dict[str, Callable[..., bool]] = {}
_leases: dict[str, Callable[[], timedelta | None]] = {}


def run_here(
    task: str, runner: Callable[..., bool], lease: Callable[[], timedelta | None] | None = None
) -> None:
    """Offer ``task``'s work sent by ``after_commit`` to ``runner(*args, **kwargs)`` first: it
    returns True when it took the work, False to have the task published as usual. A runner
    that takes the work owns it: it must see it done or publish the task itself (the outbox
    row stays the record, and the sweep hands on what nobody finished). ``lease()``, asked
    before the commit, is how long the runner's claim would last if it would take work now,
    else None (``lease_here``)."""
    _runners[task] = runner
    if lease is None:
        _leases.pop(task, None)
    else:
        _leases[task] = lease


def lease_here(task: str) -> timedelta | None:
    """If this process would likely run work for ``task`` sent by ``after_commit`` now, the
    lease its runner would claim: the writer of the outbox row may then write it leased to this
    process in the very transaction that creates it, sparing the runner its claim (a round
    trip) after the commit. Only likely: a runner that declines after all gives the lease back
    before the task is published. None: write the row unleased, as ever."""
    lease = _leases.get(task)
    if lease is None:
        return None
    try:
        return lease()
    except Exception:  # noqa: BLE001 - a wrong guess costs a claim, never the work
        logger.exception("Could not ask whether %s runs here", SUBJECTS.get(task, task))
        return None


def after_commit(
    task: str,
    *args: Any,
    using: str | None = None,
    countdown: float | None = None,
    on_error: OnError | None = None,
    **kwargs: Any,
) -> None:
    """Send ``task(*args, **kwargs)`` once the current transaction on ``using`` commits (or
    hand it to its runner, ``run_here``, when there is no countdown)."""
    transaction.on_commit(
        lambda: _committed(task, args, kwargs, countdown=countdown, on_error=on_error), using=using
    )


def _committed(
    task: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    countdown: float | None,
    on_error: OnError | None,
) -> None:
    runner = _runners.get(task) if countdown is None else None
    if runner is not None:
        try:
            if runner(*args, **kwargs):
                return
        except Exception:  # noqa: BLE001 - a runner's failure must not lose the work
            logger.exception("Could not run %s here; sending it", SUBJECTS.get(task, task))
    send(task, *args, countdown=countdown, on_error=on_error, **kwargs)


def later(task: str, *args: Any, countdown: float) -> bool:
    """Send ``task(*args)`` to run in ``countdown`` seconds; False when nothing was scheduled.

    With eager Celery (development, the fast tests) there is no "later": running it now would
    find the same state again and recurse, so nothing is sent and the periodic sweep, or the
    next request, takes over.
    """
    if current_app.conf.task_always_eager:
        return False
    return send(task, *args, countdown=countdown)


#: When each process last sent (or handed to ``_kicker``) a batch task, by task name
#: (``kick_after_commit``).
_kicked: dict[str, float] = {}

#: The share of a batch window a kick waits, after its commit, before it is published: long
#: enough for the commit's own work to be done first (a ping or push callback sent from this
#: process, the approving request's response: 2-6 ms here), short enough that the task still
#: runs when the window ends (its countdown is what is left of the window).
KICK_DELAY_SHARE = 0.2


def kick_after_commit(task: str, *, window: float, using: str | None = None) -> None:
    """Once the current transaction commits, make sure ``task`` runs within ``window`` seconds:
    send it, due when the window ends, unless this process already sent one in the first half
    of the current window. Work created while a kick is pending is taken by it (its rows are
    committed well before the window ends); work created later sends a new kick.

    The kick is published by a thread of this process (``_kicker``) a fifth of the window
    after the commit, never by the committing request: a Celery publish costs the request
    about 2 ms before its response, and published at once it and the worker receiving it
    compete for the CPU with the callback this commit is sending (docs/performance.md, the
    ninth stop). A lost kick (broker down, process killed before it was published) is covered
    by the periodic sweep; an orderly exit publishes what is pending. With eager Celery nothing
    is deferred: the task runs at once, as ``after_commit`` would run it."""

    def kick() -> None:
        if current_app.conf.task_always_eager:
            send(task)
            return
        now = time.monotonic()
        with _kicker.lock:
            if now - _kicked.get(task, -window) < window / 2:
                return
            _kicked[task] = now
        _kicker.put(task, window, now)

    transaction.on_commit(kick, using=using)


class _Kicker:
    """The thread that publishes ``kick_after_commit``'s kicks, each ``KICK_DELAY_SHARE`` of
    its window after its commit, in the order they came. One per process, started with the
    first kick; a forked child starts its own."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._kicks: queue.SimpleQueue[tuple[str, float, float]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._waiting: tuple[str, float, float] | None = None  # the kick the thread waits to publish

    def put(self, task: str, window: float, committed: float) -> None:
        self._kicks.put((task, window, committed))
        with self.lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="ciba-kicker", daemon=True)
        try:
            self._thread.start()
        except RuntimeError:  # no new threads (the interpreter is shutting down): send it now
            self.flush()

    def _run(self) -> None:
        while True:
            self._waiting = task, window, committed = self._kicks.get()
            time.sleep(max(0.0, committed + window * KICK_DELAY_SHARE - time.monotonic()))
            self._waiting = None
            self._publish(task, window, committed)

    def _publish(self, task: str, window: float, committed: float) -> None:
        if current_app.conf.task_always_eager:
            # Switched on since the commit (a test's worker stopped): the kicker publishes, it
            # never runs a task, which would hold a database connection on this thread.
            logger.debug("Not sending %s: Celery is eager now", SUBJECTS.get(task, task))
            return
        if not send(task, countdown=max(0.0, committed + window - time.monotonic())):
            with self.lock:  # the next commit tries again (the breaker permitting)
                if _kicked.get(task) == committed:
                    del _kicked[task]

    def flush(self) -> None:
        """Publish every pending kick now: at an orderly exit, where the thread (a daemon)
        would be stopped with them. The one it waits on may then be published twice, which
        costs a batch task that finds nothing."""
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self._publish(*waiting)
        while True:
            try:
                task, window, committed = self._kicks.get_nowait()
            except queue.Empty:
                return
            self._publish(task, window, committed)

    def reset(self) -> None:
        """In a forked child: the parent's thread did not come along, nor its kicks."""
        self.__init__()  # type: ignore[misc]


_kicker = _Kicker()


def flush_kicks() -> None:
    """Publish the kicks waiting in this process now (``kick_after_commit``): at an orderly
    exit (registered with ``atexit``), and before a test stops its worker."""
    _kicker.flush()


atexit.register(flush_kicks)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_kicker.reset)


class BrokerUnavailable(Exception):
    """Nothing was sent: the broker failed moments ago (``DISPATCH_BREAKER_SECONDS``)."""


#: After a failed send, the process sends nothing for ``DISPATCH_BREAKER_SECONDS`` (then one
#: send probes): with the broker hung, every send would wait for the broker's socket timeout,
#: inside a client's request. What is not sent is in an outbox, and the sweep sends it once the
#: broker is back. The same breaker as the cache's and the database's (``ciba.outages``).
breaker = outages.Breaker("The Celery broker")


def send(
    task: str, *args: Any, countdown: float | None = None, on_error: OnError | None = None, **kwargs: Any
) -> bool:
    """Send ``task(*args, **kwargs)`` now; False (logged, ``on_error`` called) if the broker
    failed now or moments ago (the breaker)."""
    if not breaker.allow():
        subject = " ".join([SUBJECTS.get(task, task), *map(str, args[:1])])
        logger.info("Not sending %s: the broker failed moments ago; the sweep will send it", subject)
        if on_error is not None:
            on_error(BrokerUnavailable())
        return False
    try:
        registered = current_app.tasks.get(task)
        options = {"countdown": countdown, "retry_policy": PUBLISH_RETRY_POLICY}
        if registered is None:  # not imported in this process: send it by name
            current_app.send_task(task, args=args, kwargs=kwargs, **options)
        else:
            registered.apply_async(args=args, kwargs=kwargs, **options)
    except Exception as exc:  # noqa: BLE001 - a broker outage must not fail the caller
        subject = " ".join([SUBJECTS.get(task, task), *map(str, args[:1])])
        logger.error("Could not enqueue %s: %s", subject, type(exc).__name__)
        seconds = float(ciba_settings.DISPATCH_BREAKER_SECONDS or 0)
        if seconds and not current_app.conf.task_always_eager:  # eager: no broker to protect from
            breaker.trip(type(exc).__name__, seconds)
        if on_error is not None:
            on_error(exc)
        return False
    breaker.succeeded()
    return True


# --- sweeps: one at a time, and when each last completed ----------------------------------------

#: The sweeps, by the name their lock and record go under.
SWEEPS = ("callbacks", "notifications", "expiry")
#: The longest one sweep may hold its lock; a sweep is bounded (a few hundred rows per run),
#: so a lock this old belongs to a process that died mid-sweep.
SWEEP_LOCK_SECONDS = 120
_LOCK_KEY = "ciba:sweep:lock:{}"
_DONE_KEY = "ciba:sweep:done:{}"


@contextmanager
def sweeping(name: str) -> Iterator[bool]:
    """Run the sweep ``name`` at most once at a time across every process sharing the cache:
    yields True to the one caller that holds its lock, False to any other caller meanwhile
    (who should do nothing). On leaving, the holder records the time, which ``last_sweeps``
    reads. If the cache fails, the sweep runs unlocked (``fail open``): each outbox's row
    claims already make a second sweep harmless, and sweeping matters more than sweeping once.
    """
    token = secrets.token_hex(8)
    key = _LOCK_KEY.format(name)
    try:
        held = cache.add(key, token, SWEEP_LOCK_SECONDS)
    except Exception as exc:  # noqa: BLE001 - a cache outage must not stop the sweep
        logger.warning("Sweep %s runs without its lock: the cache failed (%s)", name, type(exc).__name__)
        held, token = True, ""
    if not held:
        yield False
        return
    completed = False
    try:
        yield True
        completed = True
    finally:
        _release(key, token, name, completed)


def _release(key: str, token: str, name: str, completed: bool) -> None:
    try:
        if completed:
            cache.set(_DONE_KEY.format(name), time.time(), None)
        if token and cache.get(key) == token:
            cache.delete(key)
    except Exception as exc:  # noqa: BLE001 - the lock times out by itself
        logger.warning(
            "Could not record the end of sweep %s: the cache failed (%s)", name, type(exc).__name__
        )


def last_sweeps() -> dict[str, float | None]:
    """When each sweep last completed (a Unix time), ``None`` for one never recorded; raises
    what the cache raises when it cannot be read."""
    found = cache.get_many([_DONE_KEY.format(name) for name in SWEEPS])
    return {name: found.get(_DONE_KEY.format(name)) for name in SWEEPS}
