"""The device page and the two files that make it an installable web app.

The page renders no request data itself: its script reads everything from the consent API,
as a native app would, so the API stays the one contract of the device side. The view only
hands the script the API's URLs (sites mount ``ciba.urls`` wherever they like) and, when Web
Push is on, the VAPID public key.

"Show my code" (``my-code/``, when ``LOGIN_HINT_TOKEN_ISSUANCE`` is on) hands the page a
short-lived, single-use ``login_hint_token`` for the signed-in user (``ciba.hint_tokens``) and
its QR code, which a till or kiosk scans instead of asking for a username.

The sign-in page (``sign-in/``) is the device app's own: the username and password form of
Django's ``LoginView``, and "Sign in with a passkey" (a discoverable WebAuthn credential,
verified by ``ciba.passkeys``). The home page still sends anonymous visitors to the site's
``LOGIN_URL``; a site that wants this page there sets ``LOGIN_URL = "ciba_device:sign-in"``.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import segno
from django.conf import settings
from django.contrib.auth import load_backend, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render, resolve_url
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from django.views.decorators.http import require_POST, require_safe

from .. import assurance, hint_tokens, passkeys
from ..conf import ciba_settings
from ..errors import CibaError, InvalidAuthentication, InvalidRequest
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
    """The signed-in user's pending requests, decided with the consent API from the browser;
    their passkeys and, where the site takes user codes, their user code.

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
            "blocks_url": _url_or_empty("ciba:block-list"),
            "vapid_public_key": _public_key_or_none(),
            "passkeys_enabled": assurance.passkeys_available(),
            "passkeys_url": reverse("ciba:passkey-list"),
            "passkey_options_url": reverse("ciba:passkey-registration-options"),
            "user_code_url": reverse("ciba:user-code") if ciba_settings.USER_CODE_SUPPORTED else "",
            "user_code_min_length": ciba_settings.USER_CODE_MIN_LENGTH,
            "my_code_url": reverse("ciba_device:my-code") if hint_tokens.enabled() else "",
            "theme_color": THEME_COLOR,
            "messages_json": script_messages(),
        },
    )


def _url_or_empty(name: str) -> str:
    """A consent API route the site's URLconf may not have (an older ``ciba.urls`` included
    piecemeal): "" hides the section that needs it instead of failing the page."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


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
        # Requests the user did not ask for, and the sites they blocked.
        "withdrawn": _("Withdrawn by {client}."),
        "withdrawnTitle": _("Withdrawn"),
        "withdrawnText": _("{client} withdrew the request before you decided."),
        "reporting": _("Reporting…"),
        "reportedTitle": _("Reported"),
        "reportedText": _("You reported the request from {client} at {time}: it was denied."),
        "reportedNext": _("Nothing was shared with {client}."),
        "reportedBlockedNext": _(
            "Nothing was shared with {client}, and it can no longer send you requests (see Blocked services)."
        ),
        "alsoBlock": _("Also block {client} from asking me again"),
        "blocksNone": _("You have blocked no services."),
        "blockedSince": _("Blocked since {date}"),
        "unblockLabel": _("Unblock {client}"),
        "unblocked": _("{client} can send you requests again."),
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
        # Approving with more than a tap (a passkey, or the password re-entered).
        "waitingForPasskey": _("Waiting for your passkey…"),
        "passkeyCancelled": _("No passkey was used: it was cancelled or took too long. Try again."),
        "passkeyFailed": _("The passkey could not be used: {reason}"),
        "needsPassword": _("Approving this request needs your password."),
        "needsPasskey": _("Approving this request needs your passkey."),
        "needsEnrollment": _(
            "Approving this request needs a passkey, and you have none yet. "
            "Create one on this device now, then approve."
        ),
        "needsUnsupported": _(
            "Approving this request needs a passkey, which this browser cannot use. "
            "Approve it on a device that can, or deny it."
        ),
        "cannotApprove": _("This request cannot be approved here. Deny it if you did not expect it."),
        # The passkeys section.
        "passkeysNone": _("You have no passkeys yet."),
        "passkeysCount": _("Passkeys on your account: {count}"),
        "passkeysUnsupported": _("This browser cannot create or use passkeys."),
        "passkeysUnreadable": _("Your passkeys could not be read. Reload the page to try again."),
        "passkeyDefaultName": _("Passkey on {platform}"),
        "passkeyCreating": _("Creating a passkey…"),
        "passkeyCreated": _("Passkey created: {name}."),
        "passkeyExists": _("This device already holds a passkey for your account."),
        "passkeyRenamed": _("Passkey renamed: {name}."),
        "passkeyRemoved": _("Passkey removed: {name}."),
        "passkeyCreatedAt": _("Created {date}"),
        "passkeyLastUsed": _("last used {date}"),
        "passkeyNeverUsed": _("never used"),
        "passkeySynced": _("synced to your other devices"),
        "passkeyDeviceBound": _("on this device only"),
        "passkeyDisabled": _(
            "Disabled: it looked copied (its counter went backwards). Remove it and create a new one."
        ),
        # The user code section.
        "userCodeNone": _("You have no user code."),
        "userCodeSet": _("You have a user code, set {date}."),
        "userCodeLocked": _(
            "Someone entered wrong user codes for you: that site's requests are refused until {time}."
        ),
        "userCodeSetButton": _("Set the user code"),
        "userCodeChangeButton": _("Change the user code"),
        "userCodeSaved": _("Your user code is saved."),
        "userCodeRemoved": _("Your user code is removed."),
        # "Show my code": the QR code a till scans instead of asking for a username.
        "myCodeShow": _("Show my code"),
        "myCodeHide": _("Hide my code"),
        "myCodeAlt": _("QR code that identifies you at a till or kiosk"),
        "myCodeLoading": _("Getting your code…"),
        "myCodeValid": _("Valid for {time}. A new code appears by itself."),
        "myCodeExpired": _("This code has expired. Tap Show my code for a new one."),
        "myCodeIdle": _(
            "Your code was hidden after 10 minutes without use. Tap Show my code to see it again."
        ),
        "myCodeUsed": _("A request arrived, so your code is hidden. Check the request below."),
        "myCodeFailed": _("Your code could not be shown: {reason}"),
        # The sign-in page.
        "signingIn": _("Signing in…"),
        "signInFailed": _("You were not signed in: {reason}"),
    }


@method_decorator(xframe_options_deny, name="dispatch")
class SignInView(LoginView):
    """The device app's sign-in: Django's username and password form, and "Sign in with a
    passkey" beside it (``passkeys.js`` runs the WebAuthn ceremony against the two views
    below). ``next`` is honoured as ``LoginView`` honours it: only when it is safe.

    Never framed, like the page it leads to.
    """

    template_name = "ciba/device/sign_in.html"
    #: Without a ``next``, the user came for the device page.
    next_page = "ciba_device:home"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            {
                "passkeys_enabled": assurance.passkeys_available(),
                "passkey_options_url": reverse("ciba_device:sign-in-passkey-options"),
                "passkey_sign_in_url": reverse("ciba_device:sign-in-passkey"),
                "theme_color": THEME_COLOR,
                "messages_json": script_messages(),
            }
        )
        return context


@require_POST
@csrf_protect
@never_cache
def sign_in_passkey_options(request: HttpRequest) -> JsonResponse:
    """The WebAuthn options of a passkey sign-in: a fresh challenge, any of the site's
    discoverable credentials (the user is not known yet). POST, not GET: each call stores a
    challenge, so a cross-site GET must not create them."""
    try:
        return JsonResponse(passkeys.sign_in_options(request))
    except CibaError as exc:
        return _error(exc)


@require_POST
@csrf_protect
@never_cache
def sign_in_passkey(request: HttpRequest) -> JsonResponse:
    """Sign in with a passkey assertion: ``{"credential": AuthenticationResponseJSON, "next"?}``.

    The user is the one whose passkey signed the challenge of ``sign_in_passkey_options``
    (``passkeys.verify_sign_in`` checks it all); they are then signed in through the first
    authentication backend that still accepts them (an inactive user is refused there), and
    the answer names where to go next: ``next`` when it is safe, else the device page.
    """
    try:
        body = _json_object(request)
        user, _authentication = passkeys.verify_sign_in(request, body.get("credential"))
        backend = _backend_accepting(user)
        if backend is None:
            raise InvalidAuthentication("This account cannot sign in.")
    except CibaError as exc:
        return _error(exc)
    login(request, user, backend=backend)
    return JsonResponse({"redirect": _safe_next(request, body.get("next"))})


def _json_object(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("The body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return body


def _backend_accepting(user: Any) -> str | None:
    """The dotted path of the first configured backend that would return ``user`` for its
    session (``get_user``): the one ``login`` records, so the session stays valid."""
    for path in settings.AUTHENTICATION_BACKENDS:
        backend = load_backend(path)
        if hasattr(backend, "get_user") and backend.get_user(user.pk) is not None:
            return path
    return None


def _safe_next(request: HttpRequest, target: Any) -> str:
    if isinstance(target, str) and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return resolve_url(SignInView.next_page)


def _error(exc: CibaError) -> JsonResponse:
    return JsonResponse(exc.as_dict(), status=exc.status_code, headers=exc.headers)


#: Modules of light margin around the QR code (ISO/IEC 18004 asks for four): without it a
#: camera cannot find the code's edges against a dark page or phone case.
QR_QUIET_ZONE = 4


@require_POST
@csrf_protect
@never_cache
def my_code(request: HttpRequest) -> JsonResponse:
    """The device page's *Show my code*: a fresh ``login_hint_token`` for the signed-in user
    and its QR code.

    ``{"login_hint_token", "expires_in", "expires_at", "svg"}``: the token ``ciba.hint_tokens``
    issued (an opaque, single-use handle, signed by this server; no username, ``sub`` or
    e-mail address in it), how long it lives, and the code as SVG markup the page shows. POST
    with the session's CSRF token: each call mints a handle, so a cross-site page must not be
    able to make the browser ask for one. Never cached, and the token never goes into a URL.

    404 while ``LOGIN_HINT_TOKEN_ISSUANCE`` is off (the site offers no such thing); 401 without
    a session, as JSON: the caller is the page's script, which says "you are signed out"
    instead of following a redirect to a sign-in page it cannot show. Codes asked for faster
    than any page shows them are refused by ``hint_tokens.issue`` (429 with ``Retry-After``).
    """
    if not hint_tokens.enabled():
        raise Http404("Login hint tokens are not issued here.")
    if not request.user.is_authenticated:
        return JsonResponse(
            {"error": "login_required", "error_description": _("You are signed out.")}, status=401
        )
    try:
        issued = hint_tokens.issue(request.user, request)
    except CibaError as exc:  # 429 with Retry-After: codes asked for faster than a page shows them
        return _error(exc)
    return JsonResponse(
        {
            "login_hint_token": issued.token,
            "expires_in": issued.expires_in,
            "expires_at": issued.expires_at.isoformat(),
            "svg": qr_svg(issued.token),
        }
    )


def qr_svg(text: str) -> str:
    """``text`` as a QR code in SVG markup for an HTML page: no XML declaration, scalable
    (a ``viewBox``, no fixed size), dark modules on an opaque white ground with a quiet zone.

    Black on white whatever the page's colours: a camera needs the contrast, and a dark-mode
    page with light modules on dark ground is something many decoders cannot read. Error
    correction M (15%) survives glare on a phone screen at a size any version still fits. Never
    a Micro QR code: neither ``BarcodeDetector`` nor the common JavaScript decoders read them.
    """
    code = segno.make(text, error="m", micro=False)
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        omitsize=True,
        nl=False,
        border=QR_QUIET_ZONE,
        dark="#000",
        light="#fff",
        svgclass="ciba-qr",
        lineclass=None,
    )
    return out.getvalue().decode()


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
