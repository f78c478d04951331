"""Which peers are this server's own reverse proxies (``TRUSTED_PROXIES``).

Two things are believed only when a trusted proxy says them: the client's address
(``X-Forwarded-For``, for the failed-authentication guard) and the client's TLS certificate
(RFC 8705: the TLS terminator forwards it in a header). Anyone else could simply send the header.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from .conf import ciba_settings


def meta_of(request: Any) -> Any:
    """The CGI-style header mapping of a Django, DRF or oauthlib request (DOT copies
    ``request.META`` into the oauthlib request's ``headers``)."""
    return getattr(request, "META", None) or getattr(request, "headers", {}) or {}


def from_trusted_proxy(request: Any) -> bool:
    """Whether the direct peer of ``request`` is one of ``TRUSTED_PROXIES``."""
    networks = trusted_networks(tuple(ciba_settings.TRUSTED_PROXIES))
    return bool(networks) and within(str(meta_of(request).get("REMOTE_ADDR", "")), networks)


@lru_cache(maxsize=8)
def trusted_networks(networks: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def within(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
