"""Cache calls that never raise: client authentication must not fail because the cache did.

The guard's counters, the cap on expensive checks and the slow-hash cache all live in Django's
cache; when it errors (or its breaker is open, ``ciba.outages``) each of them gives way: the
guard lets the request through and the secret is checked the long way.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("ciba.client_auth")


def safely(operation: Any, *args: Any) -> Any:
    """Run a cache operation; on any backend error log it and return ``None`` (fail open)."""
    try:
        return operation(*args)
    except Exception:  # noqa: BLE001 - every cache backend has its own connection errors
        logger.warning("Client authentication: cache unavailable", exc_info=True)
        return None
