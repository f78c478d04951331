"""Which applications the site trusts with what: device apps and resource servers.

* **Device apps** (``ciba.ConsentClient``). The consent scope (``CIBA["CONSENT_SCOPE"]``) is
  the key to the consent API; only the applications a site designates may obtain it, and the
  consent API accepts it only from them (or from tokens the site minted itself, which have no
  application).
* **Resource servers** (``ciba.ResourceServer``). Introspection (RFC 7662) answers who a token
  belongs to and what it may do; only designated, confidential applications may ask, with
  their client credentials or with a token carrying DOT's ``introspection`` scope (or a token
  the site minted itself).

Both are rows staff add in the admin: no client can designate itself.
"""

from __future__ import annotations

from typing import Any

from .models import ConsentClient, ResourceServer

#: The scope DOT's introspection view asks of a bearer token (``IntrospectTokenView``).
INTROSPECTION_SCOPE = "introspection"


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


def is_resource_server(application: Any) -> bool:
    """True for a confidential application the site designated as a resource server."""
    if application is None or getattr(application, "pk", None) is None:
        return False
    if getattr(application, "client_type", None) != "confidential":
        return False  # the admin refuses the designation; a client made public since loses it
    return ResourceServer.objects.filter(application_id=application.pk).exists()


def designate_resource_server(application: Any) -> ResourceServer:
    """Make ``application`` a resource server (idempotent); it must be confidential."""
    row = ResourceServer.objects.filter(application=application).first()
    if row is None:
        row = ResourceServer(application=application)
        row.full_clean()
        row.save()
    return row


def token_may_introspect(token: Any) -> bool:
    """A bearer token lets its holder introspect when it carries the ``introspection`` scope
    and a resource server (or the site itself: no application) holds it."""
    if INTROSPECTION_SCOPE not in str(getattr(token, "scope", "")).split():
        return False
    application = getattr(token, "application", None)
    return getattr(token, "application_id", None) is None or is_resource_server(application)
