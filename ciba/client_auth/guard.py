"""Limiting failed client authentications, and capping the expensive ones, without ever letting a
stranger lock a client out.

Most checks are cheap: a keyed-hash secret (one HMAC), an unknown client id (a dummy HMAC), a
certificate match (``tls_client_auth``, ``self_signed_tls_client_auth``), a JWT signature with
keys already held. They run first and are never refused beforehand, so a legitimate client
always gets its answer; only their failures are counted. The expensive ones — a slow password
hash (a low-entropy or not yet re-hashed secret, or an unknown id while keyed hashing is off)
and a ``jwks_uri`` fetch — are what a flood could amplify, so they are refused before they run.

* **Failure budgets**, per (client id, source address) and per source address
  (``CLIENT_AUTH_FAILURE_RATE_PER_CLIENT_ADDRESS``, ``..._PER_ADDRESS``): never per client id
  alone, which anyone who knows the id could exhaust. Enforced evenly in short slots
  (``CLIENT_AUTH_FAILURE_BURST``): "20/minute" with burst 5 allows five failures per 15 s.
  Slots are aligned to the clock and counted with the cache's atomic ``add``/``incr``, so
  processes agree. A failure over a budget is answered 429 with ``Retry-After``; an expensive
  check over a budget is refused before it runs, after one cache read.
* **One expensive check per address at a time**: a concurrent one from the same address is
  refused at once (429, ``Retry-After: 1``).
* **A global cap on expensive checks in flight** (``CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT``,
  all processes through the shared cache): past it, 503 ``temporarily_unavailable`` with
  ``Retry-After``, so a worker is never queued behind password hashes.

The source address is ``REMOTE_ADDR``, or, behind the proxies listed in ``TRUSTED_PROXIES``, the
last address in ``X-Forwarded-For`` that is not one of them. Every cache call tolerates an
error: the guard then lets requests through (an outage must not lock every client out).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from functools import lru_cache
from typing import Any

from django.core.cache import cache

from ..conf import ciba_settings
from ..errors import AuthenticationBusy, TooManyFailedAuthentications
from ..proxies import meta_of, trusted_networks, within
from .tolerant import safely as _safely

logger = logging.getLogger("ciba.client_auth")

SLOT_KEY = "ciba:auth-expensive:slot:"


class Attempt:
    """One authentication check under way; end it with ``succeeded()`` or ``failed()``."""

    def __init__(self, client_id: str, address: str, held: list[str]) -> None:
        self.client_id, self.address, self.held = client_id, address, held

    def succeeded(self) -> None:
        """Let the next expensive check in (nothing to do for a cheap one)."""
        if self.held:
            _safely(cache.delete_many, self.held)
            self.held = []

    def failed(self) -> int | None:
        """Count the failure; return ``Retry-After`` when it went over a budget, else ``None``."""
        over = None
        for key, allowed, retry_after in _limits(self.client_id, self.address, _now()):
            count = _safely(_increment, key, retry_after + 1)
            if isinstance(count, int) and count > allowed:
                over = max(over or 0, retry_after)
        self.succeeded()
        return over


def attempt(client_id: str, address: str, *, expensive: bool = True) -> Attempt:
    """Start a check. A cheap one starts at once, without asking the cache. An expensive one
    raises ``TooManyFailedAuthentications`` (before any hash) when its (id, address) or address
    is over budget or the address has an expensive check in flight, and ``AuthenticationBusy``
    when ``CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT`` are already running."""
    if not expensive:
        return Attempt(client_id, address, [])
    limits = _limits(client_id, address, _now())
    if limits:
        counts = _safely(cache.get_many, [key for key, _, _ in limits]) or {}
        for key, allowed, retry_after in limits:
            if counts.get(key, 0) >= allowed:
                raise TooManyFailedAuthentications(retry_after=retry_after)
    held: list[str] = []
    if ciba_settings.CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS:
        lock = _key("ip", address) + ":inflight"
        if _safely(cache.add, lock, 1, _lock_seconds()) is False:
            raise TooManyFailedAuthentications(retry_after=1)
        held.append(lock)
    slot = _take_slot()
    if slot is False:
        _safely(cache.delete_many, held)
        logger.warning("Expensive client authentication checks at their cap: answered 503")
        raise AuthenticationBusy(retry_after=1)
    if slot:
        held.append(slot)
    return Attempt(client_id, address, held)


def _take_slot() -> str | bool | None:
    """One of the cap's slots (its cache key); ``False`` when all are taken; ``None`` when
    there is no cap or the cache failed (fail open). Slots are keys that expire, so a process
    that dies mid-check frees its slot after ``_lock_seconds()``."""
    cap = ciba_settings.CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT
    if not cap:
        return None
    start = random.randrange(cap)
    for i in range(cap):
        key = f"{SLOT_KEY}{(start + i) % cap}"
        taken = _safely(cache.add, key, 1, _lock_seconds())
        if taken is None:
            return None
        if taken:
            return key
    return False


def _lock_seconds() -> int:
    """Longer than any check (a hash, or a bounded jwks_uri fetch); a crash mid-check holds the
    lock this long at most."""
    return int(ciba_settings.JWKS_FETCH_TIMEOUT) + 5


def _increment(key: str, timeout: int) -> int:
    if cache.add(key, 1, timeout):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.add(key, 1, timeout)
        return 1


def _subjects(client_id: str, address: str) -> list[tuple[str, str, str | None]]:
    return [
        ("id-ip", f"{client_id}\0{address}", ciba_settings.CLIENT_AUTH_FAILURE_RATE_PER_CLIENT_ADDRESS),
        ("ip", address, ciba_settings.CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS),
    ]


def _limits(client_id: str, address: str, now: float) -> list[tuple[str, int, int]]:
    """(cache key of the current slot, failures allowed in it, seconds until it ends) of each
    configured rate."""
    limits = []
    for kind, value, rate in _subjects(client_id, address):
        if not rate:
            continue
        allowed, slot = _slot(rate, ciba_settings.CLIENT_AUTH_FAILURE_BURST)
        index = int(now // slot)
        retry_after = max(1, math.ceil((index + 1) * slot - now))
        limits.append((f"{_key(kind, value)}:{index}", allowed, retry_after))
    return limits


def _now() -> float:
    return time.time()


@lru_cache(maxsize=16)
def _slot(rate: str, burst: int) -> tuple[int, float]:
    """``"20/minute"`` with burst 5 → (5 failures, per 15.0 s); burst 1 → (1, per 3.0 s)."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0]]
    allowed = max(1, min(int(burst), int(count)))
    return allowed, seconds * allowed / int(count)


def client_address(request: Any) -> str:
    """Where the request came from, for a Django, DRF or oauthlib request (proxy-aware)."""
    meta = meta_of(request)
    remote = str(meta.get("REMOTE_ADDR", ""))
    proxies = trusted_networks(tuple(ciba_settings.TRUSTED_PROXIES))
    if not proxies or not within(remote, proxies):
        return remote
    forwarded = str(meta.get(ciba_settings.CLIENT_ADDRESS_HEADER, ""))
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        if not within(hop, proxies):
            return hop
    return remote


def _key(kind: str, value: str) -> str:
    return f"ciba:authfail:{kind}:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]
