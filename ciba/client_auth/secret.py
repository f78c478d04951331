"""Checking a client secret: constant time, and cheap when the same secret was verified lately.

Secrets stay hashed at rest (DOT stores them with the password hasher, PBKDF2 by default,
~180 ms per check on a 2-core machine). A client that polls every few seconds would pay
that on every request, so a *verified* secret is remembered for ``CLIENT_SECRET_CACHE_SECONDS``
under a cache key that is an HMAC (keyed with ``SECRET_KEY``) of the stored hash and the
presented secret. The trade-off, documented in docs/security.md: the cache never holds the
secret or anything that reveals it without ``SECRET_KEY``; rotating the secret changes the
stored hash and so invalidates the entry at once; a wrong secret is never cached and always
pays the full hash, which keeps guessing slow.
"""

from __future__ import annotations

import time

from django.contrib.auth.hashers import check_password, identify_hasher, make_password
from django.core.cache import cache
from django.utils.crypto import constant_time_compare, salted_hmac

from ..conf import ciba_settings

#: The last share of an entry's lifetime in which the next request re-verifies it (refresh-ahead).
REFRESH_SHARE = 0.2


def recently_verified(provided: str, stored: str) -> bool:
    """True, without hashing, when this secret was verified within ``CLIENT_SECRET_CACHE_SECONDS``
    (in this process or, through the shared cache, in another).

    An entry in the last fifth of its life is re-verified by one request (the others go on
    using it), so a client that keeps calling never meets a lapsed entry: at that moment all
    its concurrent requests would need a hash at once, and the failed-authentication guard
    lets only one unverified check of an id run at a time (the rest would get 429).
    """
    ttl = ciba_settings.CLIENT_SECRET_CACHE_SECONDS
    if not ttl or not _is_hashed(stored):
        return False
    key = _key(provided, stored)
    now = time.time()
    expiry = _VERIFIED.get(key)
    if expiry is None or expiry <= now:
        shared = cache.get(key)
        expiry = shared if isinstance(shared, float) else None
        if expiry is None or expiry <= now:
            return False
        _VERIFIED[key] = expiry
    if expiry - now < ttl * REFRESH_SHARE and cache.add(f"{key}:refresh", 1, 30):
        if check_password(provided, stored):
            _remember(key, ttl)
    return True


def check_secret(provided: str, stored: str) -> bool:
    """Constant-time check of a client secret, with verified hashed secrets remembered briefly."""
    if not _is_hashed(stored):
        return constant_time_compare(provided, stored)
    if recently_verified(provided, stored):
        return True
    ttl = ciba_settings.CLIENT_SECRET_CACHE_SECONDS
    if not check_password(provided, stored):
        return False
    if ttl:
        _remember(_key(provided, stored), ttl)
    return True


def _key(provided: str, stored: str) -> str:
    return "ciba:secret-ok:" + salted_hmac("ciba.client-secret", f"{stored}\0{provided}").hexdigest()


def _is_hashed(stored: str) -> bool:
    try:
        identify_hasher(stored)
    except ValueError:
        return False
    return True


#: Verified-secret keys this process has seen, with their expiry (``time.time()``, as in the
#: shared cache): the shared cache is asked once per key and process, not on every request.
#: The keys bind the stored hash, so a rotated secret never matches an old entry.
_VERIFIED: dict[str, float] = {}


def _remember(key: str, ttl: int) -> None:
    """Record a verification here and in the shared cache, with its expiry."""
    expiry = time.time() + ttl
    cache.set(key, expiry, ttl)
    if len(_VERIFIED) >= 4096:
        _VERIFIED.clear()
    _VERIFIED[key] = expiry


_DUMMY: list[str] = []


def dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(make_password("ciba-unknown-client"))
    return _DUMMY[0]


def pay_for_unknown_client(secret: str) -> None:
    """Spend what a real check costs, so an unknown client id is not told apart by timing."""
    if secret:
        check_password(secret, dummy_hash())
