"""Telling the user's authentication device that a request awaits a decision."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger("ciba.notifiers")


class BaseNotifier:
    """Interface: ``notify(request, devices)`` reaches the user about one pending request.

    ``request`` is a ``ciba.AuthenticationRequest``; ``devices`` are the user's registered
    devices (may be empty). Notifiers run in a Celery task after the request is committed;
    raising an exception marks the attempt failed and lets the task retry, it never fails
    the CIBA request itself.
    """

    def notify(self, request: Any, devices: Sequence[Any]) -> None:
        raise NotImplementedError


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
