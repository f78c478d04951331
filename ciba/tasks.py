"""Celery tasks. Enqueued only after the transaction that created their subject commits."""

from __future__ import annotations

import logging
import random
import uuid
from typing import Any

from celery import shared_task
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .backends.notifiers import NotificationError
from .conf import ciba_settings
from .models import AuthenticationRequest, Device
from .poll_state import poll_state

logger = logging.getLogger("ciba.tasks")
Status = AuthenticationRequest.NotificationStatus


def enqueue_device_notification(request: AuthenticationRequest) -> None:
    """Schedule the device notification once the request is committed.

    A worker must never look up a row its creator might still roll back, and a broker
    outage must not fail the client's request: enqueue errors are logged and recorded on the
    request (an operator can re-send from the admin), never raised.
    """
    pk, notification_id = request.pk, uuid.uuid4().hex

    def _enqueue() -> None:
        try:
            notify_authentication_device.delay(pk, notification_id=notification_id)
        except Exception as exc:  # noqa: BLE001 - the broker being down must not fail the request
            logger.error(
                "Could not enqueue the device notification for CIBA request %s: %s", pk, type(exc).__name__
            )
            AuthenticationRequest.objects.filter(pk=pk).update(
                device_notification_status=Status.FAILED,
                device_notification_error=f"Could not enqueue: {type(exc).__name__}",
            )

    transaction.on_commit(_enqueue)


def _backoff(retries: int) -> float:
    """Exponential backoff with full jitter, capped (seconds)."""
    return random.uniform(0.5, 1.0) * min(300, 2 ** (retries + 1))


@shared_task(bind=True, name="ciba.notify_authentication_device", acks_late=True, max_retries=None)
def notify_authentication_device(
    self: Any, request_pk: int, notification_id: str = "", only: list[str] | None = None
) -> str:
    """Run the configured notifiers for one pending request; retry the ones that failed transiently.

    Returns the outcome (``sent``, ``retrying``, ``failed`` or ``skipped``) and records it on
    the request, so a failure is visible in the consent API and the admin.
    """
    ar = AuthenticationRequest.objects.select_related("client").filter(pk=request_pk).first()
    if ar is None or ar.effective_state() != AuthenticationRequest.State.PENDING:
        return "skipped"  # decided or expired meanwhile: nobody needs to be told any more
    if only is None:
        # The first work after the request committed: record it in the shared poll state
        # here, keeping that Redis round trip off the backchannel request. Until then (or if
        # this never runs) its polls take the database path, which records it too.
        poll_state().track(ar)
    ar.notification_id = notification_id or uuid.uuid4().hex
    devices = list(Device.objects.filter(user_id=ar.user_id))
    # Notifiers are identified by their dotted path, which survives the trip through the broker.
    notifiers = dict(zip(ciba_settings.raw("NOTIFIER_CLASSES"), ciba_settings.NOTIFIER_CLASSES, strict=True))
    if only is not None:
        notifiers = {path: cls for path, cls in notifiers.items() if path in only}

    failed: dict[str, NotificationError] = {}
    for path, notifier_class in notifiers.items():
        try:
            notifier_class().notify(ar, devices)
        except NotificationError as exc:
            failed[path] = exc
        except Exception as exc:  # noqa: BLE001 - a broken notifier is recorded, never fatal
            logger.exception("Notifier %s failed for CIBA request %s", path, request_pk)
            failed[path] = NotificationError(f"{type(exc).__name__}: {exc}", transient=False)

    now = timezone.now()
    retry = [p for p, exc in failed.items() if exc.transient]
    can_retry = retry and self.request.retries < ciba_settings.NOTIFY_MAX_RETRIES and not ar.is_expired(now)
    if not failed:
        status, error = Status.SENT, ""
    else:
        status = Status.RETRYING if can_retry else Status.FAILED
        error = "; ".join(f"{p.rsplit('.', 1)[-1]}: {exc}" for p, exc in failed.items())[:2000]
    AuthenticationRequest.objects.filter(pk=request_pk).update(
        device_notification_status=status,
        device_notification_attempts=F("device_notification_attempts") + 1,
        device_notification_error=error,
        device_notified_at=now if not failed else None,
    )
    if can_retry:
        raise self.retry(
            kwargs={"notification_id": ar.notification_id, "only": retry},
            countdown=_backoff(self.request.retries),
        )
    return status


@shared_task(name="ciba.deliver_callback", acks_late=True, ignore_result=True)
def deliver_callback(delivery_pk: int) -> str:
    """Attempt one ping or push callback (see ``ciba.delivery``); idempotent."""
    from .delivery import deliver

    return deliver(delivery_pk)


@shared_task(name="ciba.sweep_callbacks", ignore_result=True)
def sweep_callbacks() -> int:
    """Re-enqueue callbacks that are due but not in flight (broker outage, killed worker).

    Run it from Celery beat every minute or so (docs/integration.md).
    """
    from .delivery import due

    pks = due()
    for pk in pks:
        deliver_callback.delay(pk)
    return len(pks)


@shared_task(name="ciba.expire_requests", ignore_result=True)
def expire_requests() -> int:
    """Mark requests past ``expires_at`` expired and send push expiry callbacks (Celery beat)."""
    from .services import expire_due

    return expire_due()
