"""One watchdog thread for every deadline of the outbound calls, instead of a thread per call.

Each outbound call arms a watchdog (``http._Deadline``, its total deadline) and each callback
attempt another (``ciba.callbacks.lanes.watch``, the slow lane's threshold). They were
``threading.Timer`` objects: a new thread per alarm, and ``Thread.start`` waits until the new
thread runs, which needs the GIL. In a web process sending a callback right after its commit
(``ciba.callbacks.inline``), the request thread still finishing the approve response holds the
GIL, so each start could wait a whole switch interval (5 ms) before the POST even began.

Here an alarm is an entry in a heap that one daemon thread waits on: arming it takes a lock
and, at most, wakes that thread; nothing waits for it. The thread ends after ``LINGER_SECONDS``
with nothing armed (so an idle process keeps no thread) and starts again with the next alarm.
What an alarm runs, it runs on that thread, so it must be quick and never block (shutting a
socket down); an action that may block (a cache write) starts a thread of its own when it
fires, which happens only when the alarm was not cancelled in time: the rare case.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("ciba.outbound")

#: The watchdog thread ends after this many seconds with no alarm armed.
LINGER_SECONDS = 1.0


class Alarm:
    """One armed alarm: ``cancel`` it once it is no longer needed."""

    __slots__ = ("_action", "_alarms", "fired", "when")

    def __init__(self, alarms: Alarms, when: float, action: Callable[[], None]) -> None:
        self._alarms = alarms
        self._action: Callable[[], None] | None = action
        self.when = when
        #: The action ran (or is running): it was not cancelled in time.
        self.fired = False

    def cancel(self) -> bool:
        """Disarm; True if the action has not run and now never will."""
        alarms = self._alarms
        with alarms.lock:
            if self.fired:
                return False
            if self._action is not None:
                self._action = None
                alarms._live -= 1
                if not alarms._live:
                    alarms._wake.notify()  # nothing left to wait for: linger from now
            return True

    def _take(self) -> Callable[[], None] | None:
        """Under the lock: the action to run now, marking the alarm fired (None if cancelled)."""
        action, self._action = self._action, None
        if action is not None:
            self.fired = True
            self._alarms._live -= 1
        return action


class Alarms:
    """A heap of alarms and the one thread that fires them on time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._heap: list[tuple[float, int, Alarm]] = []
        self._order = itertools.count()
        self._live = 0  # armed and neither fired nor cancelled
        self._running = False

    def after(self, seconds: float, action: Callable[[], None]) -> Alarm:
        """Run ``action`` on the watchdog thread in ``seconds`` unless cancelled first."""
        alarm = Alarm(self, time.monotonic() + seconds, action)
        with self.lock:
            earliest = not self._heap or alarm.when < self._heap[0][0]
            heapq.heappush(self._heap, (alarm.when, next(self._order), alarm))
            self._live += 1
            if not self._running:
                self._running = True
                start = True
            else:
                start = False
                if earliest:
                    self._wake.notify()
        if start:
            thread = threading.Thread(target=self._run, name="ciba-outbound-alarms", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # the interpreter is shutting down: no alarm will fire
                with self.lock:
                    self._running = False
        return alarm

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            with self.lock:
                now = time.monotonic()
                due: list[Callable[[], None]] = []
                while self._heap and (self._heap[0][2]._action is None or self._heap[0][0] <= now):
                    _, _, alarm = heapq.heappop(self._heap)
                    action = alarm._take()
                    if action is not None:
                        due.append(action)
                if not self._live:
                    self._heap.clear()  # only cancelled alarms are left
                if not due:
                    if self._heap:
                        idle_since = None
                        self._wake.wait(self._heap[0][0] - now)
                        continue
                    if idle_since is None:
                        idle_since = now
                    if now - idle_since >= LINGER_SECONDS:
                        self._running = False
                        return
                    self._wake.wait(LINGER_SECONDS - (now - idle_since))
                    continue
            idle_since = None
            for action in due:
                try:
                    action()
                except Exception:  # noqa: BLE001 - one alarm's failure must not stop the others
                    logger.exception("An outbound call's watchdog failed")

    def reset(self) -> None:
        """In a forked child: the parent's thread did not come along."""
        self.__init__()  # type: ignore[misc]


alarms = Alarms()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=alarms.reset)


def after(seconds: float, action: Callable[[], None]) -> Alarm:
    """Run ``action`` (quick, never blocking) in ``seconds`` on the one watchdog thread, unless
    the returned alarm is cancelled first."""
    return alarms.after(seconds, action)
