"""The demo's pages: the checkout kiosk, the shopper's phone, and the kiosk's callback receiver."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
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
    return render(request, "demo/kiosk.html", {"modes": ["poll", "ping", "push"]})


@require_POST
def kiosk_start(request: HttpRequest) -> JsonResponse:
    try:
        data = json.loads(request.body or b"{}")
        purchase = kiosk.start(
            str(data.get("mode", "poll")), str(data.get("login_hint", "")), str(data.get("amount", ""))
        )
    except (ValueError, kiosk.KioskError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(_public(purchase))


@require_GET
def kiosk_status(request: HttpRequest, purchase_id: str) -> JsonResponse:
    purchase = kiosk.status(purchase_id)
    if purchase is None:
        return JsonResponse({"error": "Unknown purchase."}, status=404)
    return JsonResponse(_public(purchase))


@csrf_exempt
@require_POST
def callback(request: HttpRequest, mode: str) -> HttpResponse:
    """The kiosk's client notification endpoint (CIBA §10.2, §10.3): 204 on a genuine callback."""
    try:
        body = json.loads(request.body)
    except ValueError:
        return HttpResponse(status=400)
    if not isinstance(body, dict) or not kiosk.receive_callback(
        mode, request.headers.get("Authorization", ""), body
    ):
        return HttpResponse(status=401)
    return HttpResponse(status=204)


@require_GET
@login_required
@ensure_csrf_cookie
def phone_page(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/phone.html")
