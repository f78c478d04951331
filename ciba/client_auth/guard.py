"""Refusing repeated failed client authentications before they cost a password hash.

A wrong client secret costs a full PBKDF2 check (~200 ms of CPU) and an unknown client id the
same (a dummy hash, so timing does not tell ids apart); a JWT assertion may cost a ``jwks_uri``
fetch. Unchecked, a few such requests per second saturate a server. So failures are counted
per client id and per source address in Django's cache, and once either is over its rate
(``CLIENT_AUTH_FAILURE_RATE_PER_CLIENT``, ``..._PER_ADDRESS``) the next attempts are refused
with 429 and ``Retry-After`` after one cache read, before any hash.

A client whose secret was verified lately (``ciba.client_auth.secret``) is never refused: a
legitimate kiosk keeps working while someone guesses at its id. The source address is
``REMOTE_ADDR``, or, behind the proxies listed in ``TRUSTED_PROXIES``, the last address in
``X-Forwarded-For`` that is not one of them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from functools import lru_cache
from typing import Any

from django.core.cache import cache

from ..conf import ciba_settings
from ..errors import TooManyFailedAuthentications


def refuse_if_throttled(client_id: str, address: str) -> None:
    """Raise ``TooManyFailedAuthentications`` when either counter is over its rate."""
    checks = [
        (_key("id", client_id), ciba_settings.CLIENT_AUTH_FAILURE_RATE_PER_CLIENT),
        (_key("ip", address), ciba_settings.CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS),
    ]
    limited = [(key, _rate(rate)) for key, rate in checks if rate]
    if not limited:
        return
    counts = cache.get_many([key for key, _ in limited])
    for key, (allowed, window) in limited:
        if counts.get(key, 0) >= allowed:
            raise TooManyFailedAuthentications(retry_after=_retry_after(window))


def record_failure(client_id: str, address: str) -> None:
    """Count one failed authentication for the client id and for the address."""
    for key, rate in (
        (_key("id", client_id), ciba_settings.CLIENT_AUTH_FAILURE_RATE_PER_CLIENT),
        (_key("ip", address), ciba_settings.CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS),
    ):
        if not rate:
            continue
        _, window = _rate(rate)
        # A fixed window per key: add() starts it, incr() counts in it (atomic on Redis).
        if not cache.add(key, 1, window + 1):
            try:
                cache.incr(key)
            except ValueError:  # expired between add() and incr()
                cache.add(key, 1, window + 1)


def client_address(request: Any) -> str:
    """Where the request came from, for a Django, DRF or oauthlib request (proxy-aware)."""
    meta = getattr(request, "META", None) or getattr(request, "headers", {}) or {}
    remote = str(meta.get("REMOTE_ADDR", ""))
    proxies = _trusted(tuple(ciba_settings.TRUSTED_PROXIES))
    if not proxies or not _within(remote, proxies):
        return remote
    forwarded = str(meta.get(ciba_settings.CLIENT_ADDRESS_HEADER, ""))
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        if not _within(hop, proxies):
            return hop
    return remote


def _key(kind: str, value: str) -> str:
    return f"ciba:authfail:{kind}:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]


@lru_cache(maxsize=16)
def _rate(rate: str) -> tuple[int, int]:
    """DRF's rate syntax: ``"20/minute"`` → (20, 60)."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0]]
    return int(count), seconds


def _retry_after(window: int) -> int:
    return max(1, window - int(time.time()) % window)


@lru_cache(maxsize=8)
def _trusted(networks: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def _within(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
