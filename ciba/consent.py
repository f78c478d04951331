"""Who may approve in a user's name: the user themself, through the site's own device apps.

The consent scope (``CIBA["CONSENT_SCOPE"]``) is the key to the consent API; only the
applications a site designates (``ciba.ConsentClient``) may obtain it, and the consent API
accepts it only from them (or from tokens the site minted itself, which have no application).
"""

from __future__ import annotations

from typing import Any

from .models import ConsentClient


def is_device_app(application: Any) -> bool:
    """True for an application the site designated as an authentication-device app."""
    if application is None or getattr(application, "pk", None) is None:
        return False
    return ConsentClient.objects.filter(application_id=application.pk).exists()


def designate(application: Any) -> ConsentClient:
    """Make ``application`` a device app (idempotent)."""
    row, _ = ConsentClient.objects.get_or_create(application=application)
    return row


def token_may_consent(token: Any) -> bool:
    """A consent-scoped token counts only if a device app (or the site itself) holds it."""
    application_id = getattr(token, "application_id", None)
    return application_id is None or ConsentClient.objects.filter(application_id=application_id).exists()
