"""Per-client rate limit of the backchannel endpoint.

Each accepted request pops a notification on a person's phone, so a misbehaving or
compromised client must not be able to flood users (CIBA §14). The limit is per client id,
not per IP address: many clients share egress addresses, and one client may use many.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from rest_framework.throttling import SimpleRateThrottle

from .conf import ciba_settings


class ClientRateThrottle(SimpleRateThrottle):
    """``CIBA["BACKCHANNEL_THROTTLE_RATE"]`` requests per client (DRF rate syntax; None = off)."""

    scope = "ciba_backchannel"

    def get_rate(self) -> str | None:
        return ciba_settings.BACKCHANNEL_THROTTLE_RATE

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        client = getattr(request, "ciba_client", None)
        if client is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": client.client_id}

    def allow_client(self, client: Any) -> bool:
        return self.allow_request(SimpleNamespace(ciba_client=client), None)
