"""Who the WebAuthn Relying Party is for a given request: its RP ID, name and origins.

A passkey is scoped to an RP ID (a registrable domain) and every response names the origin
the browser ran on; both are checked on every ceremony. A site behind a proxy, or serving the
device page on several hosts under one domain, says so with ``WEBAUTHN_RP_ID`` and
``WEBAUTHN_ORIGINS``. Left empty, the request itself decides: its host without the port is
the RP ID and ``scheme://host[:port]`` the one origin (``HttpRequest.get_host`` has already
checked the host against ``ALLOWED_HOSTS``, so a forged Host header never becomes an RP ID).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.http.request import split_domain_port

from ..conf import ciba_settings

__all__ = ["RelyingParty", "relying_party"]

#: The RP name shown by authenticators when ``WEBAUTHN_RP_NAME`` is empty.
DEFAULT_RP_NAME = "CIBA approvals"


@dataclass(frozen=True)
class RelyingParty:
    """The RP ID passkeys are scoped to, the name authenticators show, the allowed origins."""

    id: str
    name: str
    origins: list[str] = field(default_factory=list)


def relying_party(http_request: Any) -> RelyingParty:
    """The Relying Party for ``http_request`` (a Django ``HttpRequest`` or a DRF ``Request``):
    ``WEBAUTHN_RP_ID`` / ``WEBAUTHN_ORIGINS`` when set, else the request's host and origin."""
    host = http_request.get_host()
    rp_id = ciba_settings.WEBAUTHN_RP_ID or split_domain_port(host)[0] or host
    origins = list(ciba_settings.WEBAUTHN_ORIGINS or []) or [f"{http_request.scheme}://{host}"]
    name = ciba_settings.WEBAUTHN_RP_NAME or DEFAULT_RP_NAME
    return RelyingParty(id=rp_id, name=name, origins=origins)
