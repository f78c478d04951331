"""Device notifications as a durable outbox: claim, run the notifiers, record, retry.

The request row is the outbox entry of its device notification (status, due time, lease,
notifiers still to retry), written in the same INSERT as the request. The
``ciba.notify_authentication_device`` task claims it with a lease (a conditional UPDATE),
runs the classes of ``CIBA["NOTIFIER_CLASSES"]`` (contract:
``ciba.backends.notifier_base.BaseNotifier``), each returning an ``Outcome``, and records the
result on the row, where the consent API and the admin show it. Failures worth a retry are
retried with the shared backoff (``NOTIFY_RETRY_BACKOFF_*``), only for the notifiers that
failed, never past the request's expiry.

Nothing is lost when the broker is down or a worker dies: ``sweep`` (run by
``ciba.sweep_notification_outbox``, on any worker, one at a time) hands every due, unleased
entry to a worker, and a task that finds the entry leased by another (say, one killed mid-run)
comes back when that lease runs out. Leases, claims, deferral, the retry plan and the sweep's
lock are the outbox engine's (``ciba.outbox_engine``, ``OUTBOX`` below); the notifiers, the
poll state and what is recorded on the request are this module's.

**Withdrawals.** The same row is also the outbox entry of the prompt's withdrawal, its second
phase (``WITHDRAWALS``): once the request is no longer actionable (decided on any device,
expired, cancelled, superseded) and a notification was attempted, the notifiers are run again
through ``withdraw`` so no phone keeps a dead prompt. The entry is owed while its due time is
set (``_owed``); the state change's own UPDATE sets it (``AuthenticationRequest.ENDS_PROMPT``),
so a process that dies right after the commit leaves it to the sweep, and the receivers of the
state-change signals hand it to ``ciba.withdraw_device_prompt`` at once (``mark_withdrawal``,
which also catches a notification that started meanwhile); a notification still in
flight at that moment sets it itself when it records its outcome, so its withdrawal follows
it (both hold the same lease column: a withdrawal waits for a running notification). Retries,
the sweep and deferral are the engine's, as for notifications; a withdrawal that cannot be
sent is retried for a while (``WITHDRAWAL_WINDOW`` past the request's end) and never touches
the decision, which committed before it was even queued.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db.models import Case, DateTimeField, F, Q, Value, When
from django.utils import timezone

from . import dispatch, signals
from .conf import ciba_settings
from .errors import NotificationError
from .models import AuthenticationRequest, Device
from .outbound import Outcome
from .outbox_engine import Outbox
from .polling import poll_state

logger = logging.getLogger("ciba.notifications")
Status = AuthenticationRequest.NotificationStatus
OPEN = (Status.QUEUED, Status.RETRYING)
#: A new entry is left to its own task this long before a sweep sends it too.
SWEEP_GRACE = timedelta(seconds=10)


def _open(now: datetime) -> Q:
    """An entry that still owes its notification: the request pending and unexpired, the
    notification not finished."""
    return Q(
        state=AuthenticationRequest.State.PENDING, expires_at__gt=now, device_notification_status__in=OPEN
    )


#: The device-notification outbox, for the engine. Its sweep only reads: the per-request task
#: and the batch task claim their entries themselves (a claim that moved the due time would
#: hide the entry from the batch task's claim).
OUTBOX = Outbox(
    name="notifications",
    model=AuthenticationRequest,
    open=_open,
    lease_field="device_notification_lease_until",
    due_field="device_notification_due_at",
    lease_calls=2,  # the notifiers run one after the other
    retry_settings="NOTIFY",
    handoff=False,
    sweep_grace=SWEEP_GRACE,
)


def notify(request_pk: int) -> str:
    """Run the notifiers of one pending request; return ``sent``, ``retrying``, ``failed``,
    ``deferred`` (another worker holds it; this task comes back when its lease ends) or
    ``skipped`` (decided, expired, or already done)."""
    now = timezone.now()
    if OUTBOX.claim(request_pk, now) is None:
        return OUTBOX.defer(dispatch.NOTIFY_DEVICE, request_pk, now)
    ar = AuthenticationRequest.objects.select_related("client").filter(pk=request_pk).first()
    if ar is None:
        return "skipped"  # its client was deleted after the claim (ciba.services.end_client)
    _track([ar])
    failed = _attempt(ar, list(Device.objects.filter(user_id=ar.user_id)))
    return _record(ar, failed, now)


def _track(requests: list[AuthenticationRequest]) -> None:
    """Record the claimed requests never attempted before in the shared poll state: the first
    work after each committed, keeping that Redis round trip off the backchannel request (one
    round trip for a whole batch). Until then (or if Redis does not answer: the store never
    raises) their polls take the database path, which records them too."""
    first = [ar for ar in requests if ar.device_notification_attempts == 0]
    if first:
        poll_state().track_many(first)


def _attempt(ar: AuthenticationRequest, devices: list[Device]) -> dict[str, Outcome]:
    """Run the notifiers still to run for ``ar`` (claimed and ``_track``ed); return those that
    failed."""
    ar.notification_id = ar.device_notification_id or str(ar.pk)
    return {
        path: outcome
        for path, notifier_class in _notifiers(ar.device_notification_retry).items()
        if not (outcome := _run(path, notifier_class, ar, devices)).delivered
    }


def notify_due(max_batches: int = 50) -> int:
    """Run every due device notification, in batches of ``NOTIFY_BATCH_SIZE``; return how many.

    The batched form of ``notify``: a batch is claimed with one locking query
    (``SKIP LOCKED`` where the database has it, so concurrent batch tasks never take the same
    entry), read with one query, its users' devices with one more, and the entries whose
    notifiers all succeeded are recorded with one UPDATE; failures go through ``_record`` one
    by one, as in ``notify``, to be retried. ``max_batches`` bounds one task's run; what is
    left gets a new task (or the sweep).
    """
    done = 0
    for _ in range(max_batches):
        now = timezone.now()
        pks = OUTBOX.lease_due(now, ciba_settings.NOTIFY_BATCH_SIZE)
        if not pks:
            return done
        done += _run_batch(pks, now)
        if len(pks) < ciba_settings.NOTIFY_BATCH_SIZE:
            return done
    dispatch.send(dispatch.NOTIFY_DUE)
    return done


def _run_batch(pks: list[int], now: datetime) -> int:
    requests = _with_clients(list(AuthenticationRequest.objects.filter(pk__in=pks)))
    devices: dict[int, list[Device]] = {}
    for device in Device.objects.filter(user_id__in={ar.user_id for ar in requests}):
        devices.setdefault(device.user_id, []).append(device)
    _track(requests)
    sent = []
    for ar in requests:
        failed = _attempt(ar, devices.get(ar.user_id, []))
        if failed:
            _record(ar, failed, now)
        else:
            sent.append(ar.pk)
    if sent:
        # The entries are leased to this run, so nobody else changed their status meanwhile.
        AuthenticationRequest.objects.filter(pk__in=sent, device_notification_status__in=OPEN).update(
            device_notification_status=Status.SENT,
            device_notification_attempts=F("device_notification_attempts") + 1,
            device_notification_error="",
            device_notified_at=now,
            device_notification_lease_until=None,
            device_notification_due_at=_due(now, None),
            device_notification_retry=None,
        )
    return len(requests)


def _with_clients(requests: list[AuthenticationRequest]) -> list[AuthenticationRequest]:
    """``requests`` with their clients attached, one instance per client of the batch (one
    query), instead of one per request from a join: a batch's requests come from few clients,
    and building an ``Application`` per row was a fifth of the batch's Python. A request whose
    client was deleted after the claim (``ciba.services.end_client``) is left out, as the join
    left it out."""
    field = AuthenticationRequest._meta.get_field("client")
    clients = field.related_model._base_manager.in_bulk({ar.client_id for ar in requests})
    for ar in requests:
        if ar.client_id in clients:
            field.set_cached_value(ar, clients[ar.client_id])
    return [ar for ar in requests if ar.client_id in clients]


def sweep(now: datetime | None = None, limit: int = 500) -> int:
    """Hand every due, unleased notification of a pending request to a worker (one batch task,
    or one task per request without ``NOTIFY_BATCH_WINDOW``); return how many were due.

    At most one sweep runs at a time (``dispatch.sweeping``); a second one at once would be
    harmless all the same: the batch task claims its rows with ``SKIP LOCKED``, and a
    per-request task finds its row leased and does nothing."""
    notifications = OUTBOX.sweep(
        lambda now: OUTBOX.hand_out(now, limit),
        partial(_send, dispatch.NOTIFY_DUE, dispatch.NOTIFY_DEVICE),
        now,
    )
    return notifications + WITHDRAWALS.sweep(
        lambda now: WITHDRAWALS.hand_out(now, limit),
        partial(_send, dispatch.WITHDRAW_DUE, dispatch.WITHDRAW_PROMPT),
        now,
    )


def _send(batch_task: str, task: str, pks: list[int]) -> list[int]:
    """What a sweep found due, handed on: one ``batch_task`` that takes them all (with
    ``NOTIFY_BATCH_WINDOW``), else a ``task`` per entry. Entries the sweep did not claim need
    no undoing: nothing is returned as unsent."""
    if ciba_settings.NOTIFY_BATCH_WINDOW:
        dispatch.send(batch_task)
        return []
    for pk in pks:
        dispatch.send(task, pk)
    return []


def _notifiers(only: list[str] | None) -> dict[str, Any]:
    """The configured notifier classes by dotted path (the path is what a retry names)."""
    paths = ciba_settings.raw("NOTIFIER_CLASSES")
    notifiers = dict(zip(paths, ciba_settings.NOTIFIER_CLASSES, strict=True))
    return notifiers if not only else {p: cls for p, cls in notifiers.items() if p in only}


def _run(path: str, notifier_class: Any, ar: AuthenticationRequest, devices: list[Device]) -> Outcome:
    notifier = notifier_class()
    return _guarded(lambda: notifier.send(auth_request=ar, devices=devices), "failed for", path, ar)


def _guarded(call: Any, failure: str, path: str, ar: AuthenticationRequest) -> Outcome:
    """Run one notifier's ``call``: its ``NotificationError`` is the outcome, any other
    exception is logged and recorded as final; a broken notifier never fails the caller."""
    try:
        return call()
    except NotificationError as exc:
        return Outcome.failed(str(exc), retry=exc.transient)
    except Exception as exc:  # noqa: BLE001 - a broken notifier is recorded, never fatal
        logger.exception("Notifier %s %s CIBA request %s", path, failure, ar.pk)
        return Outcome.failed(f"{type(exc).__name__}: {exc}", retry=False)


def _record(ar: AuthenticationRequest, failed: dict[str, Outcome], now: datetime) -> str:
    """Store the outcome on the entry, release it, and schedule the retry if one is due."""
    attempts = ar.device_notification_attempts + 1
    retry = [path for path, outcome in failed.items() if outcome.retry]
    delay = OUTBOX.retry_plan().next_delay(attempts, worth_it=bool(retry), now=now, deadline=ar.expires_at)
    can_retry = delay is not None
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
        device_notification_lease_until=None,
        device_notification_due_at=_due(now, now + timedelta(seconds=delay) if delay is not None else None),
        device_notification_retry=retry if can_retry else None,
    )
    if delay is not None:
        dispatch.send(dispatch.NOTIFY_DEVICE, ar.pk, countdown=delay)
    return status


def _due(now: datetime, planned: datetime | None) -> Case:
    """The due time a notification records: ``planned`` (its retry, or None when done) while
    the request is actionable; ``now`` once it is not, which makes the withdrawal owed. In the
    same UPDATE as the outcome, so a decision that committed while the notifiers ran is never
    missed: the row is re-read under its lock, whatever this worker saw at its claim."""
    return Case(
        When(_actionable(now), then=Value(planned, output_field=DateTimeField())),
        default=Value(now, output_field=DateTimeField()),
        output_field=DateTimeField(),
    )


# --- withdrawals: the prompt's second phase on the same row --------------------------------------

#: How long past the request's end (its expiry, or the decision if later) a withdrawal that
#: keeps failing is retried: a prompt shown with ``requireInteraction`` stays until removed,
#: but a push service keeps a message a day at most (``webpush.WITHDRAWAL_TTL``).
WITHDRAWAL_WINDOW = timedelta(hours=1)


def _actionable(now: datetime) -> Q:
    return Q(state=AuthenticationRequest.State.PENDING, expires_at__gt=now)


def _owed(now: datetime) -> Q:
    """An entry that owes a withdrawal: its request no longer actionable, a notification
    attempted, and its due time set (cleared once the withdrawal is done or given up)."""
    return ~_actionable(now) & Q(device_notification_attempts__gt=0, device_notification_due_at__isnull=False)


#: The withdrawal outbox: the same rows, lease and due time as ``OUTBOX``, in their second
#: phase (the two conditions never hold at once: one needs the request actionable, the other
#: not).
WITHDRAWALS = Outbox(
    name="withdrawals",
    model=AuthenticationRequest,
    open=_owed,
    lease_field="device_notification_lease_until",
    due_field="device_notification_due_at",
    lease_calls=2,
    retry_settings="NOTIFY",
    handoff=False,
    sweep_grace=SWEEP_GRACE,
)


def mark_withdrawal(request_pk: int, now: datetime | None = None) -> bool:
    """Make the withdrawal of a request that is no longer actionable owed, and hand it to a
    worker; False when there is nothing to withdraw (no notification was attempted or is in
    flight, or the request is still actionable). A notification in flight (its lease held)
    is marked too: the withdrawal task waits for its lease, then withdraws what it sent."""
    now = now or timezone.now()
    in_flight = Q(device_notification_lease_until__gte=now)
    marked = (
        AuthenticationRequest.objects.filter(pk=request_pk)
        .exclude(_actionable(now))
        .filter(Q(device_notification_attempts__gt=0) | in_flight)
        .update(device_notification_due_at=now, device_notification_retry=None)
    )
    if marked:
        _hand_withdrawal(request_pk)
    return bool(marked)


def _hand_withdrawal(request_pk: int) -> None:
    """Have a worker run an owed withdrawal: with ``NOTIFY_BATCH_WINDOW``, the batch task
    within the window (one message per half window per process, ``dispatch.kick_after_commit``:
    a decision's request no longer publishes a task of its own), else a task for this request.
    The entry is marked owed already: a lost message leaves it to the sweep."""
    window = ciba_settings.NOTIFY_BATCH_WINDOW
    if window:
        dispatch.kick_after_commit(dispatch.WITHDRAW_DUE, window=window)
    else:
        dispatch.send(dispatch.WITHDRAW_PROMPT, request_pk)


def withdraw_due(max_rounds: int = 50) -> int:
    """Run every due withdrawal, up to ``NOTIFY_BATCH_SIZE`` a round; return how many were
    taken. The batched form of sending one ``withdraw`` task per decision: each entry is still
    claimed by ``withdraw`` itself (one conditional UPDATE), so a sweep's task or another batch
    meeting it at once never withdraws it twice. ``max_rounds`` bounds one task's run; what is
    left gets a new task (or the sweep)."""
    size = ciba_settings.NOTIFY_BATCH_SIZE
    done = 0
    for _ in range(max_rounds):
        pks = list(WITHDRAWALS.due(timezone.now()).values_list("pk", flat=True)[:size])
        for pk in pks:
            withdraw(pk)
        done += len(pks)
        if len(pks) < size:
            return done
    dispatch.send(dispatch.WITHDRAW_DUE)
    return done


def withdraw(request_pk: int) -> str:
    """Run the notifiers' withdrawals for one request; return ``withdrawn``, ``retrying``,
    ``failed``, ``deferred`` (a notification or another withdrawal holds the entry) or
    ``skipped`` (nothing owed)."""
    now = timezone.now()
    lease = WITHDRAWALS.claim(request_pk, now)
    if lease is None:
        return WITHDRAWALS.defer(dispatch.WITHDRAW_PROMPT, request_pk, now)
    ar = AuthenticationRequest.objects.select_related("client").filter(pk=request_pk).first()
    if ar is None:
        return "skipped"
    # Progress of a withdrawal that failed before: its attempts and the notifiers still owing
    # it. Anything else in the column (a notification's retry list) is the first attempt.
    progress = ar.device_notification_retry if isinstance(ar.device_notification_retry, dict) else {}
    attempts = int(progress.get("withdrawal_attempts", 0)) + 1
    ar.notification_id = ar.device_notification_id or str(ar.pk)
    devices = list(Device.objects.filter(user_id=ar.user_id))
    failed = {
        path: outcome
        for path, notifier_class in _notifiers(progress.get("notifiers") or None).items()
        if not (outcome := _run_withdrawal(path, notifier_class, ar, devices)).delivered
    }
    retry = [path for path, outcome in failed.items() if outcome.retry]
    deadline = max(ar.expires_at, ar.updated_at) + WITHDRAWAL_WINDOW
    delay = WITHDRAWALS.retry_plan().next_delay(attempts, worth_it=bool(retry), now=now, deadline=deadline)
    fields: dict[str, Any] = {
        "device_notification_due_at": now + timedelta(seconds=delay) if delay is not None else None,
        "device_notification_retry": (
            {"withdrawal_attempts": attempts, "notifiers": retry} if delay is not None else None
        ),
    }
    if failed:
        errors = "; ".join(f"{p.rsplit('.', 1)[-1]}: {o.error}" for p, o in failed.items())
        fields["device_notification_error"] = f"withdrawal: {errors}"[:2000]
        logger.warning("Withdrawing the prompt of CIBA request %s failed: %s", ar.pk, errors)
    WITHDRAWALS.release(ar.pk, lease, **fields)
    if delay is not None:
        dispatch.send(dispatch.WITHDRAW_PROMPT, ar.pk, countdown=delay)
        return "retrying"
    return "failed" if failed else "withdrawn"


def _run_withdrawal(
    path: str, notifier_class: Any, ar: AuthenticationRequest, devices: list[Device]
) -> Outcome:
    notifier = notifier_class()
    if not hasattr(notifier, "withdraw"):
        return Outcome.ok()  # a notifier outside the BaseNotifier contract: nothing to withdraw
    withdraw = notifier.withdraw
    return _guarded(lambda: withdraw(auth_request=ar, devices=devices), "failed to withdraw", path, ar)


def _on_finished(sender: Any, request: AuthenticationRequest, **kwargs: Any) -> None:
    """After a request stopped being actionable (the signal fires after commit): owe its
    withdrawal. Never raises: the decision it follows is committed and answered already.

    A decision of ``ciba.services`` (approve, deny, report, cancel) marks the withdrawal in
    its own UPDATE, and says when it surely did (``prompt_withdrawal_marked``: the device was
    notified, or a notification held its lease): then only the task is sent, with no second
    write after the commit. Otherwise (never notified as far as the decision saw, expiry,
    supersede, a deleted client) it is marked here, from the row as it is now."""
    marked = request.__dict__.pop("prompt_withdrawal_marked", False)
    try:
        if marked:
            _hand_withdrawal(request.pk)
            return
        mark_withdrawal(request.pk)
    except Exception:  # noqa: BLE001 - the sweep cannot help here, but the decision stands
        logger.exception("Could not queue the withdrawal of the prompt of CIBA request %s", request.pk)


for _signal in (
    signals.auth_request_approved,
    signals.auth_request_denied,
    signals.auth_request_expired,
    signals.auth_request_cancelled,
):
    _signal.connect(_on_finished, weak=False, dispatch_uid=f"ciba.device_outbox.withdraw.{id(_signal)}")
