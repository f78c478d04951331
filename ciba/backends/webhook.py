"""The webhook notifier: signed events to the site's own push gateway."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import requests
from django.core.exceptions import ValidationError
from requests_hardened.ip_filter import InvalidIPAddress
from standardwebhooks import Webhook

from ..conf import ciba_settings
from ..errors import NotificationError
from ..outbound import session, validate_outbound_url
from .notifier_base import (
    WITHDRAWN_TYPE,
    BaseNotifier,
    notification_payload,
    raise_for_status,
    withdrawal_payload,
)


class WebhookNotifier(BaseNotifier):
    """POST a signed JSON event to the site's own push gateway (``WEBHOOK_NOTIFIER_URL``).

    Signed per the Standard Webhooks specification (``webhook-id``, ``webhook-timestamp``,
    ``webhook-signature: v1,<base64 HMAC-SHA256>``) with ``WEBHOOK_NOTIFIER_SECRET``
    (``whsec_…``), so the gateway can verify it with any Standard Webhooks library. The call
    goes through the same hardened session as client callbacks (https, no redirects, no
    private addresses); a gateway on the site's own private network is allowed by
    ``WEBHOOK_NOTIFIER_ALLOW_PRIVATE_NETWORKS``, which opens that one URL and nothing else.
    One event per request carries all the user's devices: the gateway fans out.

    When the request stops being actionable a second event, ``ciba.authentication_withdrawn``
    (``withdrawal_payload``: the ``auth_req_id``, its ``state`` and ``reason``, the client's
    name), signed the same way, tells the gateway to remove the prompt from those devices. Its
    ``webhook-id`` is the notification's with ``_withdrawn`` appended.
    """

    event_type = "ciba.authentication_requested"
    required_settings = ("WEBHOOK_NOTIFIER_URL", "WEBHOOK_NOTIFIER_SECRET")

    def targets(self, *, auth_request: Any, devices: Any) -> list[Any]:
        return [list(devices)]  # one event, listing every device

    def send_one(self, *, auth_request: Any, target: Any, context: Any) -> None:
        self._post(auth_request, target, self.event_type, notification_payload(auth_request), "")

    def withdraw_one(self, *, auth_request: Any, target: Any, context: Any) -> None:
        data = withdrawal_payload(auth_request)
        del data["type"]  # the event's own type says it
        self._post(auth_request, target, WITHDRAWN_TYPE, data, "_withdrawn")

    def _post(
        self, auth_request: Any, target: Any, event_type: str, data: dict[str, Any], suffix: str
    ) -> None:
        url, secret = ciba_settings.WEBHOOK_NOTIFIER_URL, ciba_settings.WEBHOOK_NOTIFIER_SECRET
        message_id = f"msg_{getattr(auth_request, 'notification_id', None) or uuid.uuid4().hex}{suffix}"
        now = datetime.now(UTC)
        body = json.dumps(
            {
                "type": event_type,
                "timestamp": now.isoformat(),
                "data": {
                    **data,
                    "user": {"id": str(auth_request.user_id)},
                    "devices": [_device_entry(d) for d in target],
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
            with session(allow_private=allow_private) as http:
                response = http.post(url, data=body.encode(), headers=headers)
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
