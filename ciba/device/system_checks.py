"""Start-up checks for the device page: mistakes that would otherwise show only as a broken
page or a Web Push button that silently never appears."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.urls import NoReverseMatch, reverse

from .vapid import UnreadableVapidKey, configured_public_key


class Codes:
    UNREADABLE_VAPID_KEY = "ciba_device.E001"
    NO_CONSENT_API = "ciba_device.E002"


@checks.register()
def check_vapid_key(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        configured_public_key()
    except UnreadableVapidKey as exc:
        return [
            checks.Error(
                f'CIBA["WEBPUSH_VAPID_PRIVATE_KEY"] cannot be read: {exc}',
                hint="Use the PEM file or the base64url private key written by `vapid --gen` "
                "(py-vapid) or `web-push generate-vapid-keys`.",
                id=Codes.UNREADABLE_VAPID_KEY,
            )
        ]
    return []


@checks.register(checks.Tags.urls)
def check_consent_api_urls(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        reverse("ciba:request-list")
    except NoReverseMatch:
        return [
            checks.Error(
                "The device page talks to the consent API, but ciba.urls is not in the URLconf.",
                hint='Add path("o/", include("ciba.urls")) to your URLconf.',
                id=Codes.NO_CONSENT_API,
            )
        ]
    return []
