"""The slow lane: a client endpoint that keeps timing out gets one worker slot of its own.

Every callback attempt holds a worker slot until the endpoint answers or the deadline
(``CALLBACK_TOTAL_TIMEOUT``) passes. One hanging endpoint, retried with backoff, used to hold
the ``ciba-callbacks`` workers again and again, and every other client's pings waited behind it
(issue 21, finding 5). Now:

* An attempt still running after ``CALLBACK_SLOW_LANE_AFTER`` seconds (a third of the total
  timeout unless set), or one that timed out, moves its endpoint to the slow lane: a mark in
  the shared cache, set while the attempt is still hanging, so the endpoint's next callbacks
  are already routed away from the normal workers.
* A callback to an endpoint in the slow lane is sent as ``ciba.deliver_callback_slow``, routed
  to the ``ciba-callbacks-slow`` queue with workers of its own, where at most one attempt per
  endpoint is in flight (a slot in the cache); the endpoint's other callbacks wait their turn
  in the outbox, not in a worker.
* The first success, in either lane, brings the endpoint back to the normal lane; so does
  ``CALLBACK_SLOW_LANE_SECONDS`` without a slow attempt.

The state lives in the cache every process shares (the verdicts and slots are keyed by a hash
of the endpoint URL, never the URL). If the cache fails, every callback takes the normal
lane, as before there was a slow one: the slow lane can make a callback late, never lost.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.core.cache import cache

from ..conf import ciba_settings
from ..outbound import Outcome, alarms

logger = logging.getLogger("ciba.delivery")

NORMAL, SLOW = "normal", "slow"
_SLOW_KEY = "ciba:callback-lane:slow:{}"
_SLOT_KEY = "ciba:callback-lane:slot:{}"


def slow_after() -> float | None:
    """Seconds an attempt may run before its endpoint is moved; None when there is no slow lane."""
    value = ciba_settings.CALLBACK_SLOW_LANE_AFTER
    if value is None:
        return float(ciba_settings.CALLBACK_TOTAL_TIMEOUT) / 3
    return float(value) or None


def verdict(outcome: Outcome, elapsed: float, after: float | None) -> str | None:
    """The lane an attempt's result puts its endpoint in: ``NORMAL`` after a success, ``SLOW``
    after a timeout or an attempt that ran ``after`` seconds or more, ``None`` (unchanged) for
    any other failure: a quick 503 or a refused connection holds no worker, so it moves nothing.
    """
    if outcome.delivered:
        return NORMAL
    if after is None:
        return None
    if outcome.timed_out or elapsed >= after:
        return SLOW
    return None


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def is_slow(url: str) -> bool:
    """Whether callbacks to ``url`` take the slow lane (False without a slow lane, or a cache)."""
    if slow_after() is None:
        return False
    try:
        return cache.get(_SLOW_KEY.format(_digest(url))) is not None
    except Exception:  # noqa: BLE001 - no cache: the normal lane, as before there was a slow one
        return False


def slow_among(urls: Iterable[str]) -> set[str]:
    """Those of ``urls`` in the slow lane, in one cache round trip (for the sweep)."""
    urls = set(urls)
    if not urls or slow_after() is None:
        return set()
    keys = {_SLOW_KEY.format(_digest(url)): url for url in urls}
    try:
        found = cache.get_many(list(keys))
    except Exception:  # noqa: BLE001
        return set()
    return {keys[key] for key in found}


def mark(url: str, lane: str) -> None:
    """Put ``url`` in ``lane``; the slow mark expires after ``CALLBACK_SLOW_LANE_SECONDS``."""
    key = _SLOW_KEY.format(_digest(url))
    try:
        if lane == SLOW:
            cache.set(key, time.time(), ciba_settings.CALLBACK_SLOW_LANE_SECONDS)
        else:
            cache.delete(key)
    except Exception as exc:  # noqa: BLE001 - the lane is an optimisation; the outbox is the truth
        logger.warning(
            "Could not record a callback endpoint's lane: the cache failed (%s)", type(exc).__name__
        )


@dataclass
class Attempt:
    """One attempt under watch: ``elapsed`` seconds, and whether the watchdog moved it."""

    started: float
    elapsed: float = 0.0
    moved: bool = False


@contextmanager
def watch(url: str) -> Iterator[Attempt]:
    """Time one attempt to ``url``; if it is still running after ``slow_after()`` seconds, move
    the endpoint to the slow lane at once (an alarm, ``ciba.outbound.alarms``), so the callbacks that follow
    take the slow lane while this one still hangs. The caller records the verdict after."""
    attempt = Attempt(time.monotonic())
    after = slow_after()
    alarm = None
    moved = threading.Event()
    if after is not None:

        def move() -> None:
            try:
                attempt.moved = True
                mark(url, SLOW)
            finally:
                moved.set()

        def fire() -> None:
            # On the outbound watchdog thread, which must never block: the cache write gets a
            # thread of its own (only for an attempt still running at the threshold).
            threading.Thread(target=move, name="ciba-callback-slow-lane", daemon=True).start()

        # An alarm, not a timer thread of its own: arming it never waits for the GIL
        # (``ciba.outbound.alarms``), which the request thread may hold right after a commit.
        alarm = alarms.after(after, fire)
    try:
        yield attempt
    finally:
        if alarm is not None and not alarm.cancel():
            moved.wait(1.0)  # a move in progress lands before the caller records its verdict
        attempt.elapsed = time.monotonic() - attempt.started


def record(url: str, outcome: Outcome, attempt: Attempt, *, was_slow: bool) -> str | None:
    """Apply the attempt's ``verdict`` (``was_slow``: the endpoint was in the slow lane when the
    attempt began); return it. A success of an endpoint that was never slow costs nothing."""
    lane = verdict(outcome, attempt.elapsed, slow_after())
    if lane == SLOW or (lane == NORMAL and (was_slow or attempt.moved)):
        mark(url, lane)
    return lane


@contextmanager
def slot(url: str, seconds: float) -> Iterator[bool]:
    """The endpoint's one slot in the slow lane: yields True to the attempt that holds it (for
    at most ``seconds``, past which its holder is taken for dead), False while another holds
    it. Without a cache every attempt gets it (late rather than never)."""
    key, token = _SLOT_KEY.format(_digest(url)), secrets.token_hex(8)
    try:
        held = cache.add(key, token, max(1, int(seconds + 0.999)))
    except Exception:  # noqa: BLE001
        held, token = True, ""
    try:
        yield held
    finally:
        if held and token:
            try:
                if cache.get(key) == token:
                    cache.delete(key)
            except Exception:  # noqa: BLE001 - the slot expires by itself
                pass
