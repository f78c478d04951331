"""Who may use the consent API: the user themself, by session or by a consent-scoped token."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from ..conf import ciba_settings
from ..designations import token_may_consent


class IsConsentingUser(BasePermission):
    """An authenticated user, by Django session (CSRF enforced by DRF's SessionAuthentication) or
    by a DOT access token that carries ``CIBA["CONSENT_SCOPE"]``.

    The scope keeps ordinary API tokens — say, one a third-party app holds for the user —
    from approving CIBA requests in the user's name: only the user's own authentication-device
    app, which asked for the consent scope at login, can; and only a device app the site
    designated (``ciba.ConsentClient``) is ever given that scope.
    """

    message = "Authenticate as the user, with a session or a token carrying the consent scope."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        token = request.auth
        if token is None:
            return True  # session authentication
        is_valid = getattr(token, "is_valid", None)
        return bool(is_valid and is_valid([ciba_settings.CONSENT_SCOPE]) and _held_by_device_app(token))


def _held_by_device_app(token: Any) -> bool:
    """``token_may_consent``, answered from the token's own row when its query joined the
    application's designation (``ciba.oauth.validators``: ``application__ciba_consent_client``),
    so the consent API asks PostgreSQL once per request for the token and its designation.
    Read in the same request as the token, so a designation removed is seen at once, as before."""
    application = token._state.fields_cache.get("application") if hasattr(token, "_state") else None
    if application is not None and application.pk == getattr(token, "application_id", None):
        descriptor = getattr(type(application), "ciba_consent_client", None)
        related = getattr(descriptor, "related", None)
        if related is not None and related.is_cached(application):
            return related.get_cached_value(application) is not None
    return token_may_consent(token)
