"""Single-use JWT ids (``jti``), remembered in Django's cache until the JWT expires.

``cache.add`` is atomic on Redis (``SET NX``) and within a process on the local-memory
cache, so two concurrent requests with the same ``jti`` cannot both be accepted. A
deployment with several processes must share one cache (Redis) for this to hold across them.
"""

from __future__ import annotations

import hashlib
import time

from django.core.cache import cache

#: Clock skew tolerated on both sides of JWT time claims, in seconds.
LEEWAY = 30


def first_use(kind: str, issuer: str, jti: str, expires_at: float) -> bool:
    """True the first time ``(kind, issuer, jti)`` is seen; False on every replay."""
    ttl = max(1, int(expires_at - time.time()) + LEEWAY)
    digest = hashlib.sha256(f"{kind}\0{issuer}\0{jti}".encode()).hexdigest()
    return cache.add(f"ciba:jti:{digest}", 1, ttl)
