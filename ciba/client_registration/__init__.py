"""Dynamic client registration (RFC 7591) and client management (RFC 7592).

``admission`` decides who may register (initial access tokens, software statements, open
registration); ``metadata`` reads a registration document into an application row and back;
``management`` registers, reads, replaces and deletes clients. The HTTP side is
``ciba.views.registration``, mounted by ``ciba.oauth_urls``; ``docs/registration.md`` tells a
site how to turn it on (``CIBA["REGISTRATION_ENABLED"]``).
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from ..conf import ciba_settings
from ..endpoints import absolute_url

#: The URL names of the two endpoints, in DOT's namespace (``ciba.oauth_urls``).
REGISTRATION_URL_NAME = "oauth2_provider:client-registration"
MANAGEMENT_URL_NAME = "oauth2_provider:client-registration-management"


def registration_endpoint(request: Any) -> str | None:
    """The ``registration_endpoint`` discovery advertises: ``None`` unless registration is on."""
    if not ciba_settings.REGISTRATION_ENABLED:
        return None
    return absolute_url(request, reverse(REGISTRATION_URL_NAME))


def registration_client_uri(request: Any, client_id: str) -> str:
    """RFC 7592 §3: where the client with ``client_id`` manages its registration."""
    return absolute_url(request, reverse(MANAGEMENT_URL_NAME, kwargs={"client_id": client_id}))
