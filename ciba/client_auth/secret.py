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


def recently_verified(provided: str, stored: str) -> bool:
    """True, without hashing, when this secret was verified within ``CLIENT_SECRET_CACHE_SECONDS``
    (in this process or, through the shared cache, in another)."""
    ttl = ciba_settings.CLIENT_SECRET_CACHE_SECONDS
    if not ttl or not _is_hashed(stored):
        return False
    key = _key(provided, stored)
    if _verified_here(key):
        return True
    if cache.get(key):
        _remember_here(key, ttl)
        return True
    return False


def check_secret(provided: str, stored: str) -> bool:
    """Constant-time check of a client secret, with verified hashed secrets remembered briefly."""
    if not _is_hashed(stored):
        return constant_time_compare(provided, stored)
    if recently_verified(provided, stored):
        return True
    ttl = ciba_settings.CLIENT_SECRET_CACHE_SECONDS
    key = _key(provided, stored)
    if not check_password(provided, stored):
        return False
    if ttl:
        cache.set(key, True, ttl)
        _remember_here(key, ttl)
    return True


def _key(provided: str, stored: str) -> str:
    return "ciba:secret-ok:" + salted_hmac("ciba.client-secret", f"{stored}\0{provided}").hexdigest()


def _is_hashed(stored: str) -> bool:
    try:
        identify_hasher(stored)
    except ValueError:
        return False
    return True


#: Verified-secret keys this process has seen, with their monotonic expiry: the shared cache
#: is asked once per key and process, not on every request. The keys bind the stored hash,
#: so a rotated secret never matches an old entry.
_VERIFIED: dict[str, float] = {}


def _verified_here(key: str) -> bool:
    expiry = _VERIFIED.get(key)
    return expiry is not None and expiry > time.monotonic()


def _remember_here(key: str, ttl: int) -> None:
    if len(_VERIFIED) >= 4096:
        _VERIFIED.clear()
    _VERIFIED[key] = time.monotonic() + ttl


_DUMMY: list[str] = []


def dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(make_password("ciba-unknown-client"))
    return _DUMMY[0]


def pay_for_unknown_client(secret: str) -> None:
    """Spend what a real check costs, so an unknown client id is not told apart by timing."""
    if secret:
        check_password(secret, dummy_hash())
