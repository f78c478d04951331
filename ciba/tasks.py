"""Celery tasks. Enqueued only after the transaction that created their subject commits."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

from .conf import ciba_settings
from .models import AuthenticationRequest

logger = logging.getLogger("ciba.tasks")


def enqueue_device_notification(request: AuthenticationRequest) -> None:
    """Schedule the device notification once the request is committed.

    A worker must never look up a row its creator might still roll back, and a broker
    outage must not fail the client's request: enqueue errors are logged, not raised.
    """
    pk = request.pk

    def _enqueue() -> None:
        try:
            notify_authentication_device.delay(pk)
        except Exception:  # noqa: BLE001 - the broker being down must not fail the request
            logger.exception("Could not enqueue the device notification for CIBA request %s", pk)

    transaction.on_commit(_enqueue)


@shared_task(name="ciba.notify_authentication_device", acks_late=True)
def notify_authentication_device(request_pk: int) -> None:
    """Run every configured notifier for one pending request."""
    ar = AuthenticationRequest.objects.select_related("client").filter(pk=request_pk).first()
    if ar is None or ar.effective_state() != AuthenticationRequest.State.PENDING:
        return
    for notifier_class in ciba_settings.NOTIFIER_CLASSES:
        notifier_class().notify(ar, [])
