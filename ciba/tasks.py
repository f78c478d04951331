"""Celery tasks: thin wrappers over the subsystem that does the work.

Their names are wire values (``ciba.dispatch`` sends them by name) and never change. Each is
safe to run twice: the work it wraps re-checks the state it acts on.

The ones that talk to the outside world acknowledge late and are *requeued* when the pool child
running them dies (``reject_on_worker_lost``): Celery's default would acknowledge the lost
message and the only trace of the work would be the outbox row. A task that kills its worker
every time cannot loop for ever: each claim counts an attempt, and the outbox gives up after
``CALLBACK_MAX_RETRIES`` retries (callbacks) or the request's expiry (device notifications).
"""

from __future__ import annotations

from celery import shared_task

from . import callbacks, device_outbox, dispatch, hint_tokens, services


@shared_task(name=dispatch.NOTIFY_DEVICE, acks_late=True, reject_on_worker_lost=True, ignore_result=False)
def notify_authentication_device(request_pk: int) -> str:
    """Tell the user's devices about a pending request (``ciba.device_outbox``)."""
    return device_outbox.notify(request_pk)


@shared_task(name=dispatch.NOTIFY_DUE, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def notify_due_devices() -> int:
    """Run every due device notification in batches (``device_outbox.notify_due``); sent once
    per ``NOTIFY_BATCH_WINDOW`` by the web processes instead of one task per request."""
    return device_outbox.notify_due()


@shared_task(name=dispatch.WITHDRAW_PROMPT, acks_late=True, reject_on_worker_lost=True, ignore_result=False)
def withdraw_device_prompt(request_pk: int) -> str:
    """Tell the user's devices that a request they were shown no longer awaits a decision
    (``ciba.device_outbox.withdraw``)."""
    return device_outbox.withdraw(request_pk)


@shared_task(name=dispatch.WITHDRAW_DUE, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def withdraw_due_prompts() -> int:
    """Run every due prompt withdrawal (``device_outbox.withdraw_due``); sent once per
    ``NOTIFY_BATCH_WINDOW`` by the deciding processes instead of one task per decision."""
    return device_outbox.withdraw_due()


@shared_task(name=dispatch.DELIVER_CALLBACK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_callback(delivery_pk: int) -> str:
    """Attempt one ping or push callback (``ciba.callbacks.outbox``); a callback to an endpoint
    in the slow lane is handed to ``deliver_callback_slow`` instead."""
    return callbacks.deliver(delivery_pk)


@shared_task(
    name=dispatch.DELIVER_CALLBACK_SLOW, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def deliver_callback_slow(delivery_pk: int) -> str:
    """Attempt a callback to an endpoint that keeps timing out, on the slow lane's queue, at
    most one attempt in flight per endpoint (``ciba.callbacks.lanes``)."""
    return callbacks.deliver(delivery_pk, slow=True)


@shared_task(name=dispatch.SWEEP_CALLBACK_OUTBOX, ignore_result=True)
def sweep_callback_outbox() -> int:
    """Hand the callback outbox's due rows to workers, each to its lane's task (a broker
    outage, a killed worker). Run it from Celery beat every 30 seconds or so
    (``dispatch.BEAT_SCHEDULE``, docs/operations.md); it sweeps under its outbox's lock
    (``dispatch.sweeping``): any worker may run it, and several beat instances starting it at
    once do the work once."""
    return callbacks.sweep()


@shared_task(name=dispatch.SWEEP_NOTIFICATION_OUTBOX, ignore_result=True)
def sweep_notification_outbox() -> int:
    """Hand the device notifications that are due and not in flight to workers; as
    ``sweep_callback_outbox``, for the other outbox."""
    return device_outbox.sweep()


@shared_task(name=dispatch.SWEEP_CALLBACKS, ignore_result=True)
def sweep_callbacks() -> int:
    """Both outboxes' sweeps, one after the other: the task that swept both before each had
    its own, kept for messages already queued under its name and beat schedules that still
    name it (harmless beside the two: each sweep runs under its own lock)."""
    return callbacks.sweep() + device_outbox.sweep()


@shared_task(name=dispatch.EXPIRE_REQUESTS, ignore_result=True)
def expire_requests() -> int:
    """Mark requests past ``expires_at`` expired and send push expiry callbacks (Celery beat),
    under the expiry sweep's lock (a second run at once would only lose every race); and delete
    the "show my code" handles that can no longer be redeemed (``ciba.hint_tokens``)."""
    with dispatch.sweeping("expiry") as mine:
        if not mine:
            return 0
        expired = services.expire_due()
        hint_tokens.purge_expired()
        return expired
