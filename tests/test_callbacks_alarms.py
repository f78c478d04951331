"""A callback sent right after its commit starts no thread of its own, and gets the GIL promptly.

Each outbound call's deadline and each attempt's slow-lane threshold were a ``threading.Timer``:
a thread started per alarm, and starting one waits for the GIL, which the request thread that
just committed is holding while it finishes the approve response. They are now alarms on one
watchdog thread (``ciba.outbound.alarms``). And while a sender thread has a callback in hand, the
process switches threads every ``SWITCH_INTERVAL`` instead of every 5 ms
(``ciba.callbacks.inline.prompt_switching``). The deadlines themselves are tested in
tests/test_outbound_deadline.py and the slow lane in tests/test_slow_lane.py.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from unittest import mock

import pytest

from ciba.callbacks import inline
from ciba.callbacks.send import post
from ciba.outbound import alarms


@pytest.fixture
def started_threads() -> Iterator[list[str]]:
    """The names of the threads started meanwhile."""
    names: list[str] = []
    start = threading.Thread.start

    def counting(self: threading.Thread) -> None:
        names.append(self.name)
        start(self)

    with mock.patch.object(threading.Thread, "start", counting):
        yield names


def test_an_alarm_fires_on_time_and_a_cancelled_one_never():
    fired: list[tuple[str, float]] = []
    began = time.monotonic()
    late = alarms.after(0.3, lambda: fired.append(("late", time.monotonic() - began)))
    alarms.after(0.1, lambda: fired.append(("soon", time.monotonic() - began)))
    cancelled = alarms.after(0.05, lambda: fired.append(("cancelled", 0.0)))
    assert cancelled.cancel()
    time.sleep(0.5)
    assert [name for name, _ in fired] == ["soon", "late"]
    assert 0.09 < fired[0][1] < 0.3 and 0.29 < fired[1][1] < 0.6
    assert late.fired and not late.cancel()


def test_many_calls_share_one_watchdog_thread_which_ends_when_idle(started_threads):
    for _ in range(50):
        alarms.after(30, lambda: None).cancel()
    assert started_threads.count("ciba-outbound-alarms") <= 1
    settled = time.monotonic() + alarms.LINGER_SECONDS + 2
    while any(t.name == "ciba-outbound-alarms" for t in threading.enumerate()):
        assert time.monotonic() < settled, "the watchdog thread outlived its linger"
        time.sleep(0.05)


def test_a_callback_post_starts_no_thread_of_its_own(recorder, settings, started_threads):
    settings.CIBA = {**settings.CIBA, "CALLBACK_ALLOW_HTTP": True, "CALLBACK_ALLOW_PRIVATE_NETWORKS": True}
    alarms.after(5, lambda: None)  # the watchdog thread is running, as in a busy process
    started_threads.clear()
    for i in range(3):
        assert post(recorder.url("/cb"), "token", {"auth_req_id": f"r{i}"}).delivered
    assert [name for name in started_threads if name.startswith("ciba-")] == []
    assert len(recorder.received) == 3


def test_threads_switch_promptly_while_a_callback_is_in_hand_and_as_before_after():
    before = sys.getswitchinterval()
    with inline.prompt_switching():
        assert sys.getswitchinterval() == pytest.approx(min(before, inline.SWITCH_INTERVAL))
        with inline.prompt_switching():  # a second sender thread
            pass
        assert sys.getswitchinterval() == pytest.approx(min(before, inline.SWITCH_INTERVAL))
    assert sys.getswitchinterval() == before


def test_a_switch_interval_set_by_someone_else_meanwhile_is_left_alone():
    before = sys.getswitchinterval()
    try:
        with inline.prompt_switching():
            sys.setswitchinterval(0.002)
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(before)


def test_the_sender_thread_sends_under_prompt_switching():
    seen: list[float] = []
    with (
        mock.patch.object(inline, "close_old_connections"),
        mock.patch.object(inline.outbox, "deliver", lambda pk, inline: seen.append(sys.getswitchinterval())),
    ):
        inline.send(1)
    assert seen == [pytest.approx(min(inline.SWITCH_INTERVAL, sys.getswitchinterval()))]
