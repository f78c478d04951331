"""Telling the user's authentication device that a request awaits a decision.

A notifier has one method, ``notify(request, devices)``. Several may be configured
(``CIBA["NOTIFIER_CLASSES"]``); each runs in the ``ciba.notify_authentication_device`` Celery
task after the request is committed. A notifier signals failure by raising
``NotificationError(transient=...)``: transient failures are retried with backoff, permanent
ones are recorded on the request. A notification failure never fails or loses the CIBA
request: the user can still find it in the consent API.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import requests
from django.core.exceptions import ImproperlyConfigured, ValidationError
from oauth2_provider.scopes import get_scopes_backend
from requests_hardened.ip_filter import InvalidIPAddress

from .. import http
from ..conf import ciba_settings
from ..urls_policy import validate_outbound_url

logger = logging.getLogger("ciba.notifiers")


class NotificationError(Exception):
    """A notification did not reach its target. ``transient`` failures are worth retrying."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class BaseNotifier:
    """Interface: ``notify(request, devices)`` reaches the user about one pending request.

    ``request`` is a ``ciba.AuthenticationRequest``; ``devices`` are the user's registered
    ``ciba.Device`` rows (possibly none). ``request.notification_id`` identifies this
    notification: it stays the same across retries (receivers can de-duplicate) and changes
    when an operator re-sends. Raise ``NotificationError`` on failure.
    """

    def notify(self, request: Any, devices: Sequence[Any]) -> None:
        raise NotImplementedError


def notification_payload(request: Any) -> dict[str, Any]:
    """What a person needs to recognise the request: who asks, what for, the binding message.

    Carries the ``auth_req_id`` (the device opens the consent API with it) but never the
    client's notification token.
    """
    descriptions = get_scopes_backend().get_all_scopes()
    return {
        "auth_req_id": request.auth_req_id,
        "client_name": request.client.name or request.client.client_id,
        "binding_message": request.binding_message,
        "scopes": [{"scope": s, "description": str(descriptions.get(s, s))} for s in request.scopes],
        "acr_values": request.acr_values.split(),
        "expires_at": request.expires_at.isoformat(),
    }


class LogNotifier(BaseNotifier):
    """Development default: writes the request to the ``ciba.notifiers`` logger.

    Only what a person needs to find the request is logged: never the
    ``client_notification_token``, and the ``auth_req_id`` only by a short suffix.
    """

    def notify(self, request: Any, devices: Sequence[Any]) -> None:
        logger.info(
            "CIBA request …%s from %r for user %s awaits a decision (binding message %r, expires %s)",
            request.auth_req_id[-6:],
            str(request.client),
            request.user_id,
            request.binding_message,
            request.expires_at.isoformat(),
        )


class WebhookNotifier(BaseNotifier):
    """POST a signed JSON event to the site's own push gateway (``WEBHOOK_NOTIFIER_URL``).

    Signed per the Standard Webhooks specification (``webhook-id``, ``webhook-timestamp``,
    ``webhook-signature: v1,<base64 HMAC-SHA256>``) with ``WEBHOOK_NOTIFIER_SECRET``
    (``whsec_…``), so the gateway can verify it with any Standard Webhooks library. The call
    goes through the same hardened session as client callbacks (https, no redirects, no
    private addresses); a gateway on the site's own private network is allowed by
    ``WEBHOOK_NOTIFIER_ALLOW_PRIVATE_NETWORKS``, which opens that one URL and nothing else.
    """

    event_type = "ciba.authentication_requested"

    def notify(self, request: Any, devices: Sequence[Any]) -> None:
        from standardwebhooks import Webhook

        url, secret = ciba_settings.WEBHOOK_NOTIFIER_URL, ciba_settings.WEBHOOK_NOTIFIER_SECRET
        if not url or not secret:
            raise ImproperlyConfigured(
                'Set CIBA["WEBHOOK_NOTIFIER_URL"] and CIBA["WEBHOOK_NOTIFIER_SECRET"].'
            )
        message_id = f"msg_{getattr(request, 'notification_id', None) or uuid.uuid4().hex}"
        now = datetime.now(UTC)
        body = json.dumps(
            {
                "type": self.event_type,
                "timestamp": now.isoformat(),
                "data": {
                    **notification_payload(request),
                    "user": {"id": str(request.user_id)},
                    "devices": [_device_entry(d) for d in devices],
                },
            },
            separators=(",", ":"),
        )
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, now, body),
        }
        allow_private = ciba_settings.WEBHOOK_NOTIFIER_ALLOW_PRIVATE_NETWORKS
        try:
            validate_outbound_url(url, allow_private=allow_private)
        except ValidationError as exc:
            raise NotificationError(
                f"webhook URL refused: {' '.join(exc.messages)}", transient=False
            ) from None
        try:
            with http.session(allow_private=allow_private) as session:
                response = session.post(url, data=body.encode(), headers=headers)
        except InvalidIPAddress:
            raise NotificationError(
                "webhook: the URL resolves to a private address", transient=False
            ) from None
        except requests.RequestException as exc:
            raise NotificationError(f"webhook: {type(exc).__name__}", transient=True) from None
        raise_for_status("webhook", response.status_code)


def _device_entry(device: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": str(device.public_id), "kind": device.kind, "label": device.label}
    if device.token:
        entry["token"] = device.token
    if device.subscription:
        entry["subscription"] = device.subscription
    return entry


def raise_for_status(what: str, status: int) -> None:
    """2xx is delivered; 429, 5xx and 408 are worth retrying; any other status is final."""
    if 200 <= status < 300:
        return
    raise NotificationError(f"{what}: HTTP {status}", transient=status in (408, 429) or status >= 500)
