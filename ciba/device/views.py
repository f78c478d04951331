"""The device page and the two files that make it an installable web app.

The page renders no request data itself: its script reads everything from the consent API,
as a native app would, so the API stays the one contract of the device side. The view only
hands the script the API's URLs (sites mount ``ciba.urls`` wherever they like) and, when Web
Push is on, the VAPID public key.
"""

from __future__ import annotations

import json
import logging

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from .vapid import UnreadableVapidKey, configured_public_key

logger = logging.getLogger("ciba.device")

#: Colours of the installed app's splash screen and title bar (device.css uses the same).
THEME_COLOR = "#0b5fff"
BACKGROUND_COLOR = "#f4f6fa"


@require_safe
@login_required
@ensure_csrf_cookie
@xframe_options_deny
def home(request: HttpRequest) -> HttpResponse:
    """The signed-in user's pending requests, decided with the consent API from the browser.

    Never framed, whatever the site's middleware: a framed Approve button could be clicked
    by a user who believes they are clicking something else.
    """
    return render(
        request,
        "ciba/device/home.html",
        {
            "requests_url": reverse("ciba:request-list"),
            "devices_url": reverse("ciba:device-list"),
            "service_worker_url": reverse("ciba_device:service-worker"),
            "vapid_public_key": _public_key_or_none(),
            "theme_color": THEME_COLOR,
            "messages_json": script_messages(),
        },
    )


def script_messages() -> dict[str, str]:
    """The sentences device.js shows, translated here so the script needs no catalogue.

    ``{name}`` placeholders are filled in by the script.
    """
    return {
        "empty": _("No requests waiting. New ones appear here by themselves."),
        "count": _("{count} waiting"),
        "expires": _("Expires at {time}"),
        "noBinding": _("No message to compare."),
        "detailsUnreadable": _(
            "This site can no longer check these details, so the request cannot be approved. "
            "Deny it if you did not expect it."
        ),
        "approving": _("Approving…"),
        "denying": _("Denying…"),
        "approvedTitle": _("Approved"),
        "approvedText": _("You approved the request from {client} at {time}."),
        "approvedNext": _("{client} has been told. You can go back to it now."),
        "deniedTitle": _("Denied"),
        "deniedText": _("You denied the request from {client} at {time}."),
        "deniedNext": _("Nothing was shared with {client}."),
        "expiredTitle": _("Expired"),
        "expiredText": _("The request from {client} expired before you decided."),
        "goneTitle": _("Already decided"),
        "goneText": _("The request from {client} was decided elsewhere or no longer exists."),
        "failed": _("Your answer was not sent. Try again."),
        "offline": _("Cannot reach the server. Retrying…"),
        "signedOut": _("You are signed out. Reload the page to sign in again."),
        "pushOff": _(
            "Get a notification on this device when a request arrives, even when this page is closed."
        ),
        "pushOn": _("Notifications are on for this browser."),
        "pushBlocked": _(
            "Notifications are blocked for this site. Allow them in your browser's settings first."
        ),
        "pushTurnOn": _("Turn on notifications"),
        "pushTurnOff": _("Turn off notifications"),
        "pushWorking": _("One moment…"),
        "pushFailed": _("Notifications could not be turned on: {reason}"),
        "pushLabel": _("Web browser on {platform}"),
    }


@require_safe
@cache_control(max_age=3600)
def manifest(request: HttpRequest) -> JsonResponse:
    """The web app manifest: what a phone needs to install the page as an app."""
    home_url = reverse("ciba_device:home")
    document = {
        "name": _("Sign-in requests"),
        "short_name": _("Sign-in"),
        "description": _("Approve or deny sign-in and payment requests."),
        "id": home_url,
        "start_url": home_url,
        "scope": home_url,
        "display": "standalone",
        "background_color": BACKGROUND_COLOR,
        "theme_color": THEME_COLOR,
        "icons": [
            {"src": static("ciba/device/icon-192.png"), "sizes": "192x192", "type": "image/png"},
            {"src": static("ciba/device/icon-512.png"), "sizes": "512x512", "type": "image/png"},
            {
                "src": static("ciba/device/icon-512.png"),
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "maskable",
            },
            {"src": static("ciba/device/icon.svg"), "sizes": "any", "type": "image/svg+xml"},
        ],
    }
    return JsonResponse(document, content_type="application/manifest+json", json_dumps_params={"indent": 2})


@require_safe
@cache_control(no_cache=True)
def service_worker(request: HttpRequest) -> HttpResponse:
    """The service worker: shows Web Push notifications and opens the page when one is tapped.

    ``no-cache`` so a new version reaches browsers on their next visit, not a day later.
    """
    body = render_to_string(
        "ciba/device/sw.js", {"icon_url": json.dumps(static("ciba/device/icon-192.png"))}, request=request
    )
    return HttpResponse(body, content_type="text/javascript; charset=utf-8")


def _public_key_or_none() -> str | None:
    try:
        return configured_public_key()
    except UnreadableVapidKey as exc:
        # ciba_device.E001 says so at start-up; the page still works, without the button.
        logger.error("Web Push is configured but its VAPID key cannot be read: %s", exc)
        return None
