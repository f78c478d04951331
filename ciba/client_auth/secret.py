"""Checking a client secret in constant time, at the cost its storage deserves.

* **Keyed hashes** (``hashers.ClientSecretHasher``, server-generated secrets): one HMAC,
  microseconds. Nothing is cached: a cache read would cost more than the check.
* **Slow hashes** (a site-chosen low-entropy secret kept under ``ALLOW_LOW_ENTROPY_CLIENT_SECRETS``,
  or a secret stored before the keyed hash was turned on): a password hash, ~300 ms of CPU. A
  client that polls every few seconds would pay that on every request, so a *verified* secret
  is remembered for ``CLIENT_SECRET_CACHE_SECONDS`` under a cache key that is an HMAC (keyed
  with ``SECRET_KEY``) of the stored hash and the presented secret; rotating the secret changes
  the stored hash and so invalidates the entry at once; a wrong secret is never cached. A
  strong secret under a slow hash is re-hashed with the keyed hash on its first successful use
  (``upgrade_secret``), after which none of this applies to it.
* **Unhashed** secrets (``client_secret_jwt``, ``hash_client_secret=False``): a constant-time
  comparison.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.contrib.auth.hashers import check_password, identify_hasher, make_password
from django.core.cache import cache
from django.db import DatabaseError, router, transaction
from django.utils.crypto import constant_time_compare, salted_hmac

from ..conf import ciba_settings
from . import hashers
from .clients import drop, forget_client
from .tolerant import safely as _safely

logger = logging.getLogger("ciba.client_auth")

#: The last share of an entry's lifetime in which the next request re-verifies it (refresh-ahead).
REFRESH_SHARE = 0.2


def is_slow(stored: str) -> bool:
    """Whether checking a secret against ``stored`` costs a password hash."""
    return _is_hashed(stored) and not hashers.is_keyed(stored)


def recently_verified(provided: str, stored: str) -> bool:
    """True, without hashing, when this secret was verified against a *slow* hash within
    ``CLIENT_SECRET_CACHE_SECONDS`` (in this process or, through the shared cache, in another).

    An entry in the last fifth of its life is re-verified by one request (the others go on
    using it), so a client that keeps calling never meets a lapsed entry. Keyed hashes are never
    remembered (their check is cheaper than the cache). A cache error reads as "not verified".
    """
    ttl = ciba_settings.CLIENT_SECRET_CACHE_SECONDS
    if not ttl or not is_slow(stored):
        return False
    key = _key(provided, stored)
    now = time.time()
    expiry = _VERIFIED.get(key)
    if expiry is None or expiry <= now:
        shared = _safely(cache.get, key)
        expiry = shared if isinstance(shared, float) else None
        if expiry is None or expiry <= now:
            return False
        _VERIFIED[key] = expiry
    if expiry - now < ttl * REFRESH_SHARE and _safely(cache.add, f"{key}:refresh", 1, 30):
        if check_password(provided, stored):
            _remember(key, ttl)
    return True


def check_secret(provided: str, stored: str) -> bool:
    """Constant-time check of a client secret, at the cost its storage deserves (see module)."""
    if not _is_hashed(stored):
        return constant_time_compare(provided, stored)
    if hashers.is_keyed(stored):
        return hashers.ClientSecretHasher().verify(provided, stored)
    if recently_verified(provided, stored):
        return True
    if not check_password(provided, stored):
        return False
    ttl = ciba_settings.CLIENT_SECRET_CACHE_SECONDS
    if ttl:
        _remember(_key(provided, stored), ttl)
    return True


def upgrade_secret(client: Any, provided: str) -> bool:
    """After ``provided`` was verified for ``client``: store it under the keyed hash when it is
    under a slow hash or an older key and strong enough. Returns whether the row changed.

    The UPDATE is conditional on the stored value, so a concurrent upgrade or rotation wins
    and is never overwritten. An UPDATE sends no signal, so the client is forgotten after the
    commit (``forget_client``): every process re-reads the row, and the next pending poll of it
    takes the full path (now one HMAC) and is remembered again by the poll state. A database
    error leaves the old hash in place, which still verifies: upgrading is never a reason to
    fail a request.
    """
    stored = getattr(client, "client_secret", "")
    if not provided or not _is_hashed(stored) or not hashers.keyed_hashing_on():
        return False
    if hashers.is_keyed(stored) and not hashers.ClientSecretHasher().must_update(stored):
        return False
    if not hashers.enough_entropy(provided):
        return False  # a guessable secret keeps its slow hash
    new = make_password(provided, hasher=hashers.ALGORITHM)
    model = type(client)
    database = router.db_for_write(model)
    try:
        with transaction.atomic(using=database):
            changed = model._default_manager.filter(pk=client.pk, client_secret=stored).update(
                client_secret=new
            )
    except DatabaseError:
        logger.warning("Could not re-hash the secret of client %s", client.client_id, exc_info=True)
        return False
    client_id = client.client_id
    if not changed:
        drop(client_id)  # another process upgraded (or rotated) it: this copy is stale
        return False
    client.client_secret = new
    logger.info("Client %s: secret re-hashed with %s", client_id, hashers.ALGORITHM)
    transaction.on_commit(lambda: forget_client(client_id), using=database)
    return True


def _key(provided: str, stored: str) -> str:
    return "ciba:secret-ok:" + salted_hmac("ciba.client-secret", f"{stored}\0{provided}").hexdigest()


def _is_hashed(stored: str) -> bool:
    if not stored:
        return False
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
    _safely(cache.set, key, expiry, ttl)
    if len(_VERIFIED) >= 4096:
        _VERIFIED.clear()
    _VERIFIED[key] = expiry


_DUMMY: dict[str, str] = {}


def _dummy(keyed: bool) -> str:
    """A stored value to check unknown ids against, per hasher (settings may change in tests)."""
    hasher = hashers.ClientSecretHasher() if keyed else hashers.slow_hasher()
    if hasher.algorithm not in _DUMMY:
        # 64 distinct-enough characters: strong enough for the keyed hasher to keep.
        _DUMMY[hasher.algorithm] = hasher.encode(_DUMMY_SECRET, hasher.salt())
    return _DUMMY[hasher.algorithm]


_DUMMY_SECRET = "ciba-unknown-client-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"


def unknown_client_is_slow() -> bool:
    """Whether answering an unknown client id costs a password hash (keyed hashing off)."""
    return not hashers.keyed_hashing_on()


def pay_for_unknown_client(secret: str) -> None:
    """Spend what a real check costs, so an unknown client id is not told apart by timing: one
    HMAC where new secrets are keyed-hashed, else one password hash."""
    if not secret:
        return
    if hashers.keyed_hashing_on():
        hashers.ClientSecretHasher().verify(secret, _dummy(keyed=True))
    else:
        check_password(secret, _dummy(keyed=False))
