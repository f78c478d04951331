"""The poll-state store: where pending polls are counted, and remembered for a quick answer.

* ``store``: the store interface (``PollState``), doing nothing.
* ``database``: the default store, one UPDATE per pending poll.
* ``redis_state``: pending polls answered by one Lua script in a shared Redis.
* ``stamps``: client version stamps, changed when a client is saved or deleted.

``poll_state()`` is the configured store (``CIBA["POLL_STATE_CLASS"]``). Only
``ciba.services`` (decisions), ``ciba.oauth`` (the token endpoint's wing: the validator counts
polls, the pre-screen and the WSGI fast lane ask a shared store), ``ciba.client_auth`` (client
version stamps) and ``ciba.device_outbox`` (tracking a request) use it; views never see it
(an import contract says so). What a pending poll *answers* is the wing's
(``ciba.oauth.prescreen``), not the store's.
"""

from __future__ import annotations

import time
from functools import lru_cache

from ..conf import ciba_settings
from .database import DatabasePollState
from .redis_state import RedisPollState
from .store import PENDING, SLOW_DOWN, PollState, PollStateUnavailable, made_with_dpop_key, needs_no_proof

__all__ = [
    "PENDING",
    "SLOW_DOWN",
    "DatabasePollState",
    "PollState",
    "PollStateUnavailable",
    "RedisPollState",
    "made_with_dpop_key",
    "needs_no_proof",
    "now",
    "poll_state",
]


def poll_state() -> PollState:
    """The configured poll state, one per process (and per configuration, for tests)."""
    return _instance(ciba_settings.POLL_STATE_CLASS, ciba_settings.POLL_STATE_REDIS_URL)


@lru_cache(maxsize=8)
def _instance(cls: type[PollState], url: str) -> PollState:
    return cls(url) if issubclass(cls, RedisPollState) else cls()


def now() -> float:
    """The clock of the fast path (a function, so tests can move it)."""
    return time.time()
