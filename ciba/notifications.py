"""Running the device notifiers for one pending request, recording the outcome, and retrying.

Called by the ``ciba.notify_authentication_device`` task once the request is committed. The
notifiers are the classes of ``CIBA["NOTIFIER_CLASSES"]`` (contract:
``ciba.backends.notification.BaseNotifier``); each returns an ``Outcome``. Failures worth a
retry are retried with the shared backoff (``NOTIFY_RETRY_BACKOFF_*``), only for the
notifiers that failed, and never past the request's expiry; the outcome is recorded on the
request (``device_notification_status``), where the consent API and the admin show it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.db.models import F
from django.utils import timezone

from . import dispatch
from .conf import ciba_settings
from .errors import NotificationError
from .models import AuthenticationRequest, Device
from .outbound import Outcome, backoff
from .polling import poll_state

logger = logging.getLogger("ciba.notifications")
Status = AuthenticationRequest.NotificationStatus


def notify(
    request_pk: int, *, notification_id: str = "", only: list[str] | None = None, attempt: int = 0
) -> str:
    """Run the notifiers (or, on retry ``attempt``, ``only`` those that failed); return
    ``sent``, ``retrying``, ``failed`` or ``skipped`` (decided or expired meanwhile)."""
    ar = AuthenticationRequest.objects.select_related("client").filter(pk=request_pk).first()
    if ar is None or ar.effective_state() != AuthenticationRequest.State.PENDING:
        return "skipped"  # nobody needs to be told any more
    if only is None:
        # The first work after the request committed: record it in the shared poll state
        # here, keeping that Redis round trip off the backchannel request. Until then (or if
        # this never runs) its polls take the database path, which records it too.
        poll_state().track(ar)
    ar.notification_id = notification_id or uuid.uuid4().hex
    devices = list(Device.objects.filter(user_id=ar.user_id))
    failed = {
        path: outcome
        for path, notifier_class in _notifiers(only).items()
        if not (outcome := _run(path, notifier_class, ar, devices)).delivered
    }
    return _record(ar, failed, attempt)


def _notifiers(only: list[str] | None) -> dict[str, Any]:
    """The configured notifier classes by dotted path (which survives the trip through the broker)."""
    paths = ciba_settings.raw("NOTIFIER_CLASSES")
    notifiers = dict(zip(paths, ciba_settings.NOTIFIER_CLASSES, strict=True))
    return notifiers if only is None else {p: cls for p, cls in notifiers.items() if p in only}


def _run(path: str, notifier_class: Any, ar: AuthenticationRequest, devices: list[Device]) -> Outcome:
    notifier = notifier_class()
    try:
        if hasattr(notifier, "send"):
            return notifier.send(auth_request=ar, devices=devices)
        notifier.notify(ar, devices)  # a duck-typed 0.1 notifier, without the base class
        return Outcome.ok()
    except NotificationError as exc:
        return Outcome.failed(str(exc), retry=exc.transient)
    except Exception as exc:  # noqa: BLE001 - a broken notifier is recorded, never fatal
        logger.exception("Notifier %s failed for CIBA request %s", path, ar.pk)
        return Outcome.failed(f"{type(exc).__name__}: {exc}", retry=False)


def _record(ar: AuthenticationRequest, failed: dict[str, Outcome], attempt: int) -> str:
    """Store the outcome on the request and schedule the retry, if one is due."""
    now = timezone.now()
    retry = [path for path, outcome in failed.items() if outcome.retry]
    delay = backoff(
        attempt + 1, base=ciba_settings.NOTIFY_RETRY_BACKOFF_BASE, cap=ciba_settings.NOTIFY_RETRY_BACKOFF_MAX
    )
    can_retry = (
        bool(retry)
        and attempt < ciba_settings.NOTIFY_MAX_RETRIES
        and now + timedelta(seconds=delay) < ar.expires_at
    )
    if not failed:
        status, error = Status.SENT, ""
    else:
        status = Status.RETRYING if can_retry else Status.FAILED
        error = "; ".join(f"{p.rsplit('.', 1)[-1]}: {o.error}" for p, o in failed.items())[:2000]
    AuthenticationRequest.objects.record_notification(
        ar.pk,
        status,
        device_notification_attempts=F("device_notification_attempts") + 1,
        device_notification_error=error,
        device_notified_at=now if not failed else None,
    )
    if can_retry:
        dispatch.send(
            dispatch.NOTIFY_DEVICE,
            ar.pk,
            notification_id=ar.notification_id,
            only=retry,
            attempt=attempt + 1,
            countdown=delay,
        )
    return status
