"""Sending a callback from the process that committed it, right after the commit.

An approval (or a denial, or an expiry's push error) commits its ``CallbackDelivery`` row, and
the callback used to wait for a Celery worker: a publish, a pickup, the worker's database
connection, the claim, the load (about half of the 42 ms from approve to ping,
docs/performance.md). Now ``ciba.dispatch`` offers the row to ``submit`` first
(``dispatch.run_here``, wired by ``ciba.apps``), which hands it to one of a few sender threads
of this process (``CALLBACK_INLINE_SENDERS``), and the web request goes on at once:

* **Exactly one sender.** The thread runs ``outbox.deliver(pk, inline=True)``. When a thread
  was free as the row was written (``lease``, asked through ``dispatch.lease_here``), the row
  was written already claimed (leased, one attempt) in the decision's own transaction: the
  thread sends it without a claim of its own, and anyone else meeting the row (a sweep's task)
  finds it leased or done. Otherwise it claims the row as a worker does (one conditional
  UPDATE). Nothing is published when it succeeds: nothing is sent twice. The row, its
  request, client and user are not read back: the committing request hands over what it wrote
  (``services.committed_callback``), which the claim uses only if it finds the row never
  attempted (``outbox._claim_as_committed``).
* **The outbox is still the fallback.** A failed attempt is recorded and retried by the workers
  as before; an endpoint in the slow lane is never attempted here (it is handed to the slow
  lane's task); no free thread (the threads are busy, or there are none): the task is published
  as before, the row's lease given back first if it was written with one. If the process
  dies before or during the attempt, the row is pending and its lease runs out (one total
  timeout and 10 s): the sweep then hands it to a worker.
* **Never in the request's way, nor in anybody's.** ``submit`` never waits: it hands the row to
  an idle thread, starts one up to the limit, or declines. An attempt here gives up where the
  slow lane begins (``outbox.inline_deadline``), so a slow endpoint holds a thread a few seconds
  at most, and meanwhile other callbacks take the workers' way.
* **Eager Celery** (development, the fast tests): declined, so the task runs in the caller as
  before.

Each thread keeps its database connection between callbacks, replacing it when unusable or
obsolete as a request does (``close_old_connections``), and its connections to clients'
endpoints (``outbound.kept_session``), and ends, closing them, after ``IDLE_SECONDS`` without
work.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import partial

from celery import current_app
from django.db import close_old_connections, connections

from .. import dispatch, services
from ..conf import ciba_settings
from ..outbound import close_kept_session
from . import outbox

logger = logging.getLogger("ciba.delivery")

#: A sender thread with nothing to do for this long ends (and closes its database connection).
IDLE_SECONDS = 60.0

Job = Callable[[], None]


class Senders:
    """A few threads that take one job each and never queue one: ``submit`` declines when none
    is idle and no more may start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._idle = 0  # threads waiting for a job
        self._alive = 0
        self._stopping = False

    def submit(self, job: Job, limit: int) -> bool:
        """Run ``job`` on an idle thread, or a new one if fewer than ``limit`` run; False when
        neither (nothing waits in a queue)."""
        with self._lock:
            if self._stopping or limit <= 0:
                return False
            if self._idle:
                self._idle -= 1
                self._jobs.put(job)
                return True
            if self._alive >= limit:
                return False
            self._alive += 1
        thread = threading.Thread(target=self._run, args=(job,), name="ciba-callback-sender", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no new threads (the interpreter is shutting down)
            with self._lock:
                self._alive -= 1
            return False
        return True

    def would_take(self, limit: int) -> bool:
        """Whether ``submit`` would take a job now (a thread idle, or room for one more)."""
        with self._lock:
            return not self._stopping and limit > 0 and (self._idle > 0 or self._alive < limit)

    def _run(self, job: Job | None) -> None:
        try:
            while job is not None:
                try:
                    job()
                except Exception:  # noqa: BLE001 - one job's bug must not end the sender
                    logger.exception("A CIBA callback sender's job failed")
                job = self._next()
        finally:
            connections.close_all()  # this thread's connections
            close_kept_session()  # and those to clients' endpoints
            with self._lock:
                self._alive -= 1

    def _next(self) -> Job | None:
        with self._lock:
            self._idle += 1
        try:
            return self._jobs.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            with self._lock:
                try:  # handed over between the timeout and the lock: the submitter counted on us
                    return self._jobs.get_nowait()
                except queue.Empty:
                    self._idle -= 1
                    return None

    def drain(self, timeout: float = 30.0) -> bool:
        """Let the running jobs finish and end every thread (closing its connections); True
        when none is left. Meanwhile ``submit`` declines. For tests and orderly shutdowns."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopping = True
        try:
            while time.monotonic() < deadline:
                with self._lock:
                    for _ in range(self._idle):
                        self._jobs.put(None)
                    self._idle = 0
                    if not self._alive:
                        return True
                time.sleep(0.01)
            return False
        finally:
            with self._lock:
                self._stopping = False

    def reset(self) -> None:
        """In a forked child: the parent's threads did not come along."""
        self.__init__()  # type: ignore[misc]


_senders = Senders()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_senders.reset)


def limit() -> int:
    """How many callbacks this process may send at once right after their commit."""
    return int(ciba_settings.CALLBACK_INLINE_SENDERS or 0)


def lease() -> timedelta | None:
    """``ciba.dispatch``'s question before the commit (``dispatch.lease_here``): a sender
    thread would take a callback now, so its row may be written already claimed by this
    process, for a claim's lease: the sender then sends it without claiming it after the
    commit (a round trip on the way to the client's endpoint). None with eager Celery,
    ``CALLBACK_INLINE_SENDERS`` 0, or every thread busy."""
    if current_app.conf.task_always_eager or not _senders.would_take(limit()):
        return None
    return outbox.OUTBOX.lease_duration()


def submit(delivery_pk: int) -> bool:
    """``ciba.dispatch``'s runner for ``ciba.deliver_callback``: hand the row to a sender
    thread; False (publish the task) with eager Celery, with ``CALLBACK_INLINE_SENDERS`` 0, or
    when no thread is free, after giving back the lease the row was written with, if any (a
    thread was free before the commit and is not now): the worker then claims it at once."""
    if current_app.conf.task_always_eager or not _senders.submit(partial(send, delivery_pk), limit()):
        written = services.committed_callback(delivery_pk)  # a worker takes it, and reads the row itself
        if written is not None and written.lease_until is not None:
            outbox.give_back(written)
        return False
    return True


def send(delivery_pk: int) -> str | None:
    """One attempt right after the commit, on a sender thread; on an unexpected error the task
    is published (a worker claims the row once whatever lease this attempt took runs out)."""
    close_old_connections()
    try:
        with prompt_switching():
            return outbox.deliver(delivery_pk, inline=True)
    except Exception:  # noqa: BLE001 - the workers take over; the row is the record
        logger.exception(
            "CIBA callback %s: the attempt after the commit failed; a worker takes it", delivery_pk
        )
        dispatch.send(dispatch.DELIVER_CALLBACK, delivery_pk)
        return None
    finally:
        close_old_connections()


#: Python's thread switch interval while a sender thread has a callback in hand (the
#: interpreter's default is 5 ms): ``prompt_switching``.
SWITCH_INTERVAL = 0.0005

_switching = threading.Lock()
_switching_users = 0
_switching_saved = 0.0


@contextmanager
def prompt_switching() -> Iterator[None]:
    """Switch threads every ``SWITCH_INTERVAL`` while a callback is being sent from here.

    The sender thread starts while the request thread that committed is still answering the
    approve request (``bench.breakdown --parts hops``: in 47 of 50 approvals), and that thread
    holds the GIL: each time one of the sender's round trips (the claim, the lane check, the
    connect, the POST) comes back, the sender waits for the GIL for up to the switch interval,
    5 ms by default (docs/performance.md). For the few milliseconds a callback is in hand the
    interval is cut, and restored when the last sender is done (unless someone else changed it
    meanwhile). The request thread's work is not lessened, only interleaved more finely with
    the sender's; Python's cost of a switch is a few microseconds."""
    global _switching_users, _switching_saved
    with _switching:
        if not _switching_users:
            _switching_saved = sys.getswitchinterval()
            if _switching_saved > SWITCH_INTERVAL:
                sys.setswitchinterval(SWITCH_INTERVAL)
        _switching_users += 1
    try:
        yield
    finally:
        with _switching:
            _switching_users -= 1
            if not _switching_users and sys.getswitchinterval() == min(SWITCH_INTERVAL, _switching_saved):
                sys.setswitchinterval(_switching_saved)


def drain(timeout: float = 30.0) -> bool:
    """Finish the callbacks being sent here and end the sender threads (``Senders.drain``)."""
    return _senders.drain(timeout)
