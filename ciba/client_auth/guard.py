"""Refusing repeated failed client authentications before they cost a password hash.

A wrong client secret costs a full PBKDF2 check (~200 ms of CPU) and an unknown client id the
same (a dummy hash, so timing does not tell ids apart); a JWT assertion may cost a ``jwks_uri``
fetch. Unchecked, a few such requests per second saturate a server. Three defences, all in
Django's cache, per client id and per source address:

* **Rates.** Failures are counted, and once either count is over its rate
  (``CLIENT_AUTH_FAILURE_RATE_PER_CLIENT``, ``..._PER_ADDRESS``) further attempts are refused
  with 429 and ``Retry-After`` after one cache read, before any hash.
* **Evenly.** A rate is enforced in short slots, not per minute: "20/minute" with
  ``CLIENT_AUTH_FAILURE_BURST = 5`` allows five failures per 15 s, so a minute's hashes never
  arrive in its first second. Slots are aligned to the clock and counted with the cache's
  atomic ``add``/``incr``, so processes agree.
* **One at a time.** A client id, and a source address, has at most one unverified check in
  flight; a concurrent one is refused at once (429, ``Retry-After: 1``). Counting failures
  alone let every request that arrived during a 300 ms hash be checked too, so an attack's
  first second hashed on every worker at once, which is what stalled legitimate polls
  (bench/attack.py). A legitimate client meets this only when its first requests after the
  verified-secret cache lost it come in parallel: all but one are asked to retry in a second.

A client whose secret was verified lately (``ciba.client_auth.secret``) never reaches the
guard: a legitimate kiosk keeps working while someone guesses at its id. The source address
is ``REMOTE_ADDR``, or, behind the proxies listed in ``TRUSTED_PROXIES``, the last address in
``X-Forwarded-For`` that is not one of them. If the cache is unreachable the guard lets
requests through: an outage must not lock every client out.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from functools import lru_cache
from typing import Any

from django.core.cache import cache

from ..conf import ciba_settings
from ..errors import TooManyFailedAuthentications
from ..proxies import meta_of, trusted_networks, within

logger = logging.getLogger("ciba.client_auth")


class Attempt:
    """One authentication check under way; end it with ``succeeded()`` or ``failed()``."""

    def __init__(self, client_id: str, address: str, held: list[str]) -> None:
        self.client_id, self.address, self.held = client_id, address, held

    def succeeded(self) -> None:
        _safely(cache.delete_many, self.held)

    def failed(self) -> None:
        """Count the failure and let the next check in."""
        for key, _, retry_after in _limits(self.client_id, self.address, _now()):
            _safely(_increment, key, retry_after + 1)
        _safely(cache.delete_many, self.held)


def attempt(client_id: str, address: str) -> Attempt:
    """Start a check, or raise ``TooManyFailedAuthentications`` (before any hash) when the id
    or address is over its rate or already has a check in flight."""
    limits = _limits(client_id, address, _now())
    counts = _safely(cache.get_many, [key for key, _, _ in limits]) or {}
    for key, allowed, retry_after in limits:
        if counts.get(key, 0) >= allowed:
            raise TooManyFailedAuthentications(retry_after=retry_after)
    held: list[str] = []
    for kind, value, rate in _subjects(client_id, address):
        if not rate:
            continue  # no rate, no guard: None turns both off for that subject
        lock = _key(kind, value) + ":inflight"
        if _safely(cache.add, lock, 1, _lock_seconds()) is False:
            _safely(cache.delete_many, held)
            raise TooManyFailedAuthentications(retry_after=1)
        held.append(lock)
    return Attempt(client_id, address, held)


def _subjects(client_id: str, address: str) -> list[tuple[str, str, str | None]]:
    return [
        ("id", client_id, ciba_settings.CLIENT_AUTH_FAILURE_RATE_PER_CLIENT),
        ("ip", address, ciba_settings.CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS),
    ]


def _lock_seconds() -> int:
    """Longer than any check (a hash, or a bounded jwks_uri fetch); a crash mid-check holds the
    lock this long at most."""
    return int(ciba_settings.JWKS_FETCH_TIMEOUT) + 5


def _increment(key: str, timeout: int) -> None:
    if not cache.add(key, 1, timeout):
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.add(key, 1, timeout)


def _safely(operation: Any, *args: Any) -> Any:
    """Run a cache operation; on any backend error log it and return ``None`` (fail open)."""
    try:
        return operation(*args)
    except Exception:  # noqa: BLE001 - every cache backend has its own connection errors
        logger.warning("Client authentication guard: cache unavailable", exc_info=True)
        return None


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
