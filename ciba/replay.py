"""Single-use JWT ids (``jti``): a client assertion or request object is accepted once.

Kept in Django's cache when every process shares it (``cache.add`` is atomic on Redis and
Memcached), and in the database otherwise (``ciba.UsedJti``, whose primary key makes the insert
the atomic test): with the local-memory cache, two processes would each accept the same
replayed assertion. ``REPLAY_STORE`` chooses (``"auto"``, ``"cache"``, ``"database"``).

When the cache is the store and it is unreachable, ``first_use`` raises (the cache's error,
``ciba.outages.CacheUnavailable`` on ``BoundedRedisCache``) and the endpoint answers ``503
temporarily_unavailable``: nothing is accepted that the cache cannot record. Falling back to
the database would not be safe, since the ``jti`` values accepted before the outage are only
in the cache, and a replay of any of them would be accepted for as long as it lives (a
client assertion up to ``CLIENT_ASSERTION_MAX_LIFETIME``, a DPoP proof
``DPOP_PROOF_MAX_AGE``). Client-secret and mutual-TLS clients need no ``jti`` and are not
affected.
"""

from __future__ import annotations

import hashlib
import random
import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, router, transaction

from .conf import ciba_settings
from .constants import CLOCK_LEEWAY
from .models import UsedJti

#: Cache backends whose contents other processes cannot see.
PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def first_use(kind: str, issuer: str, jti: str, expires_at: float) -> bool:
    """True the first time ``(kind, issuer, jti)`` is seen; False on every replay. Raises
    when the store cannot tell (the cache or the database is unreachable): never True then."""
    ttl = max(1, int(expires_at - time.time()) + CLOCK_LEEWAY)
    digest = hashlib.sha256(f"{kind}\0{issuer}\0{jti}".encode()).hexdigest()
    if uses_cache():
        return cache.add(f"ciba:jti:{digest}", 1, ttl)
    return _first_in_database(digest, ttl)


def uses_cache() -> bool:
    store = ciba_settings.REPLAY_STORE
    if store == "auto":
        return cache_is_shared()
    return store == "cache"


def cache_is_shared() -> bool:
    """Whether every process sees the same default cache (not local memory, not a dummy)."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    return backend not in PER_PROCESS_CACHES


def _first_in_database(digest: str, ttl: int) -> bool:
    expires = datetime.fromtimestamp(time.time() + ttl, tz=UTC)
    try:
        # A savepoint: a replay must not break a surrounding transaction (ATOMIC_REQUESTS).
        with transaction.atomic(using=router.db_for_write(UsedJti)):
            UsedJti.objects.create(digest=digest, expires_at=expires)
    except IntegrityError:
        return False
    if random.random() < 0.01:  # now and then, forget what can no longer be replayed
        UsedJti.objects.filter(expires_at__lt=datetime.now(tz=UTC)).delete()
    return True
