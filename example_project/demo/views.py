"""The demo's pages: the checkout kiosk and the kiosk's callback receiver.

The shopper's phone is not here: it is the device page that ships with django-ciba
(``ciba.device``), signed in through the demo's login page as any site's would be.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from . import kiosk


def _public(purchase: dict[str, Any]) -> dict[str, Any]:
    hidden = {"notification_token", "auth_req_id", "next_poll_at"}
    return {k: v for k, v in purchase.items() if k not in hidden}


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/index.html")


@require_GET
@ensure_csrf_cookie
def kiosk_page(request: HttpRequest) -> HttpResponse:
    device_url = passkey_capable(request.build_absolute_uri(reverse("ciba_device:home")))
    return render(
        request,
        "demo/kiosk.html",
        {"modes": ["poll", "ping", "push"], "device_url": device_url, "passkey_acr": kiosk.PASSKEY_ACR},
    )


def passkey_capable(url: str) -> str:
    """``url`` on ``localhost`` when it is on a loopback address: browsers refuse passkeys on
    an IP address (a WebAuthn RP ID is a domain), and ``./scripts/demo`` serves on 127.0.0.1."""
    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "::1"):
        netloc = "localhost" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


@require_POST
def kiosk_start(request: HttpRequest) -> JsonResponse:
    """Start a purchase: ``{"mode", "amount", "login_hint" | "login_hint_token",
    "require_passkey"?}``; the token is the customer's scanned code, which wins over a typed
    ``login_hint``."""
    data = _json_object(request.body or b"{}")
    if data is None:
        return JsonResponse({"error": "The body must be a JSON object."}, status=400)
    fields = (data.get("mode", "poll"), data.get("login_hint", ""), data.get("amount", ""))
    login_hint_token = data.get("login_hint_token", "")
    if not all(isinstance(field, str) for field in (*fields, login_hint_token)):
        return JsonResponse(
            {"error": "mode, login_hint, login_hint_token and amount must be strings."}, status=400
        )
    require_passkey = data.get("require_passkey", False)
    if not isinstance(require_passkey, bool):
        return JsonResponse({"error": "require_passkey must be true or false."}, status=400)
    try:
        purchase = kiosk.start(*fields, require_passkey=require_passkey, login_hint_token=login_hint_token)
    except (ValueError, kiosk.KioskError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(_public(purchase))


@require_GET
def kiosk_status(request: HttpRequest, purchase_id: str) -> JsonResponse:
    """The purchase now or, with ``?wait=N``, as soon as it is decided (at most N seconds).

    The kiosk page long-polls: one request per purchase decision or per ``MAX_WAIT`` seconds,
    instead of one a second in the runserver console, and it still learns the outcome at once.
    """
    try:
        wait = float(request.GET.get("wait", 0))
    except ValueError:
        wait = 0.0
    wait = min(wait, kiosk.MAX_WAIT) if math.isfinite(wait) and wait > 0 else 0.0
    purchase = kiosk.wait_for_decision(purchase_id, wait)
    if purchase is None:
        return JsonResponse({"error": "Unknown purchase."}, status=404)
    return JsonResponse(_public(purchase))


@require_POST
def kiosk_cancel(request: HttpRequest, purchase_id: str) -> JsonResponse:
    """The kiosk stops waiting for the purchase (``kiosk.cancel``); a decided one stays decided."""
    purchase = kiosk.cancel(purchase_id)
    if purchase is None:
        return JsonResponse({"error": "Unknown purchase."}, status=404)
    return JsonResponse(_public(purchase))


@csrf_exempt
@require_POST
def callback(request: HttpRequest, mode: str) -> HttpResponse:
    """The kiosk's client notification endpoint (CIBA §10.2, §10.3): 204 on a genuine callback."""
    body = _json_object(request.body)
    if body is None:
        return HttpResponse(status=400)
    if not kiosk.receive_callback(mode, request.headers.get("Authorization", ""), body):
        return HttpResponse(status=401)
    return HttpResponse(status=204)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object in ``raw``; ``None`` for anything else, including a body nested too
    deeply for Python's parser (``RecursionError``, which is not a ``ValueError``)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
