"""The shipped device notifiers, under the dotted paths settings name them by.

``LogNotifier`` is the development default; ``WebhookNotifier`` (``ciba.backends.webhook``)
posts signed events to the site's push gateway; ``ciba.backends.fcm.FcmNotifier`` and
``ciba.backends.webpush.WebPushNotifier`` reach phones and browsers directly. The contract
they follow is ``ciba.backends.notifier_base.BaseNotifier``, re-exported here with the other
names this module has always offered.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import NotificationError
from .notifier_base import BaseNotifier, notification_payload, raise_for_status
from .webhook import WebhookNotifier

logger = logging.getLogger("ciba.notifiers")

__all__ = [
    "BaseNotifier",
    "LogNotifier",
    "NotificationError",
    "WebhookNotifier",
    "notification_payload",
    "raise_for_status",
]


class LogNotifier(BaseNotifier):
    """Development default: writes the request to the ``ciba.notifiers`` logger.

    Only what a person needs to find the request is logged: never the
    ``client_notification_token``, and the ``auth_req_id`` only by a short suffix.
    """

    def send_one(self, *, auth_request: Any, target: Any, context: Any) -> None:
        logger.info(
            "CIBA request …%s from %r for user %s awaits a decision (binding message %r, expires %s)",
            auth_request.auth_req_id[-6:],
            str(auth_request.client),
            auth_request.user_id,
            auth_request.binding_message,
            auth_request.expires_at.isoformat(),
        )

    def withdraw_one(self, *, auth_request: Any, target: Any, context: Any) -> None:
        logger.info(
            "CIBA request …%s from %r for user %s no longer awaits a decision (%s)",
            auth_request.auth_req_id[-6:],
            str(auth_request.client),
            auth_request.user_id,
            auth_request.cancel_reason or auth_request.effective_state(),
        )
