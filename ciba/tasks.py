"""Celery tasks: thin wrappers over the subsystem that does the work.

Their names are wire values (``ciba.dispatch`` sends them by name) and never change. Each is
safe to run twice: the work it wraps re-checks the state it acts on.
"""

from __future__ import annotations

from celery import shared_task

from . import callbacks, dispatch, notifications, services


@shared_task(name=dispatch.NOTIFY_DEVICE, acks_late=True, ignore_result=False)
def notify_authentication_device(
    request_pk: int, notification_id: str = "", only: list[str] | None = None, attempt: int = 0
) -> str:
    """Tell the user's devices about a pending request (``ciba.notifications``)."""
    return notifications.notify(request_pk, notification_id=notification_id, only=only, attempt=attempt)


@shared_task(name=dispatch.DELIVER_CALLBACK, acks_late=True, ignore_result=True)
def deliver_callback(delivery_pk: int) -> str:
    """Attempt one ping or push callback (``ciba.callbacks.outbox``)."""
    return callbacks.deliver(delivery_pk)


@shared_task(name=dispatch.SWEEP_CALLBACKS, ignore_result=True)
def sweep_callbacks() -> int:
    """Re-enqueue callbacks that are due but not in flight (broker outage, killed worker).

    Run it from Celery beat every minute or so (docs/integration.md).
    """
    return callbacks.sweep()


@shared_task(name=dispatch.EXPIRE_REQUESTS, ignore_result=True)
def expire_requests() -> int:
    """Mark requests past ``expires_at`` expired and send push expiry callbacks (Celery beat)."""
    return services.expire_due()
