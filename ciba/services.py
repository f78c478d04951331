"""The only code that changes the state of a CIBA request, and schedules the work it calls for.

Views, the token grant, Celery tasks, management commands and the admin all call these
functions, so every transition is the same single conditional UPDATE (two racing callers
cannot both win), records when (and by whom) it happened, fires its signal after commit, and
hands follow-up work (the device notification, client callbacks) to ``ciba.dispatch``.

Errors are those of ``ciba.errors``: ``RequestNotPending`` (409), ``InvalidApproval`` and
``TemporarilyUnavailable`` (the poll state could not be told; nothing was decided).
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.db import connections, router, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.signals import pre_delete
from django.utils import timezone
from oauth2_provider.settings import oauth2_settings

from . import assurance, dispatch, signals, user_limits
from . import authorization_details as rar
from .conf import ciba_settings
from .constants import MODE_PUSH, NOTIFICATION_MODES
from .errors import (
    InvalidApproval,
    InvalidAuthorizationDetails,
    InvalidRequest,
    RequestNotPending,
    StepUpRequired,
    TemporarilyUnavailable,
)
from .models import ApprovalEvidence, AuthenticationRequest, CallbackDelivery
from .polling import PollStateUnavailable, poll_state
from .statements.insert import CompiledInsert

State = AuthenticationRequest.State
CancelReason = AuthenticationRequest.CancelReason
NotificationStatus = AuthenticationRequest.NotificationStatus

#: The names this module raised before the errors moved to ``ciba.errors``.
NotPending = RequestNotPending

#: The new request's INSERT (41 columns), compiled by the ORM once per database rather than on
#: every save: ``save(force_insert=True)`` otherwise (``ciba.statements.insert``).
_INSERT = CompiledInsert(AuthenticationRequest)


@dataclass(frozen=True)
class Approval:
    """What the user's approval achieved: the ``acr`` and the RFC 8176 ``amr`` values, which
    the ID token then carries, when the user authenticated (``auth_time``; None: when the
    approval was recorded) and the ``evidence`` to keep with the decision (``ApprovalEvidence``
    fields; empty: none). Approval policies return one (or, as in 0.1, just the acr)."""

    acr: str = ""
    amr: tuple[str, ...] = ()
    auth_time: datetime | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not all(isinstance(v, str) and v and not v.isspace() and " " not in v for v in self.amr):
            raise ValueError(f"amr values are RFC 8176 method names without spaces, not {self.amr!r}")

    @classmethod
    def of(cls, value: Approval | str | None) -> Approval:
        return value if isinstance(value, Approval) else cls(acr=value or "")


def create_request(*, expires_in: int, now: datetime | None = None, **fields: Any) -> AuthenticationRequest:
    """Store a new pending request; once committed, announce it and notify the user's device.

    First the person being asked is protected (``ciba.user_limits``): a client the user blocked,
    or a request past a cap or the user's rate, is refused with ``AccessDenied`` before anything
    is stored or anyone notified. Without caps the INSERT is its own transaction (no
    BEGIN/COMMIT round trips around it) after one lookup of the block list; with caps the
    counts are taken under a per-user lock in the transaction that stores the row, so no race
    lets one more through. Under ``ATOMIC_REQUESTS`` or any outer transaction the follow-up
    work waits for that commit.
    """
    now = now or timezone.now()
    ar = AuthenticationRequest(
        expires_at=now + timedelta(seconds=expires_in),
        created_at=now,
        updated_at=now,
        device_notification_id=uuid.uuid4().hex,
        device_notification_due_at=now,
        **fields,
    )
    superseded: list[AuthenticationRequest] | None = []
    if not user_limits.caps_set():
        user_limits.check_block(client=ar.client, user=ar.user)
        _INSERT.save(ar, using=_db())
    else:
        # No savepoint under an outer transaction (its round trips buy nothing: a refusal
        # writes nothing, and the lock is held until the outer commit anyway); so nothing
        # expected is raised in here either (it would spoil an outer transaction).
        with transaction.atomic(using=_db(), savepoint=False):
            admission = user_limits.admit(client=ar.client, user=ar.user, now=now)
            if admission.admitted:
                try:
                    if admission.supersede:
                        superseded = _supersede(ar, admission.supersede, now)
                    if superseded is None:
                        admission.give_back()
                    else:
                        _INSERT.save(ar, using=_db())
                except BaseException:
                    admission.give_back()
                    raise
        if not admission.admitted:
            raise user_limits.refusal(admission.reason, client=ar.client, user=ar.user)
        if superseded is None:
            raise TemporarilyUnavailable()
    for old in superseded or ():
        _after_commit(signals.auth_request_cancelled, request=old, reason=CancelReason.SUPERSEDED)
    _after_commit(signals.auth_request_created, request=ar)
    _notify_device(ar)
    return ar


def _supersede(new: AuthenticationRequest, count: int, now: datetime) -> list[AuthenticationRequest] | None:
    """Cancel the ``count`` oldest pending requests of ``new``'s client for its user (reason
    ``superseded``), inside ``create_request``'s locked transaction; return those cancelled.

    Oldest is first stored (``pk``): under the user's lock rows are inserted one after the
    other, while ``created_at`` is taken before the lock and two racing requests may store
    theirs in the other order.

    The user's lock keeps every other new request for the user out, but not a decision: one
    the user approves or denies meanwhile loses nothing (its conditional UPDATE, or ours,
    finds the other's state) and, no longer pending, makes the same room. Nothing is sent to
    the client (no ping, no push error): it caused the supersede, and its polls for the old
    id get ``expired_token``. The poll state learns each before the commit; if it cannot,
    the cancellations are rolled back (to a savepoint: the caller's transaction stays usable)
    and ``None`` says the new request must not be stored either (``TemporarilyUnavailable``).
    """
    oldest = list(
        AuthenticationRequest.objects.using(_db())
        .filter(client=new.client, user=new.user, state=State.PENDING, expires_at__gt=now)
        .select_related("client")
        .order_by("pk")[:count]
    )
    cancelled = []
    try:
        with transaction.atomic(using=_db()):
            for old in oldest:
                if not old.transition_to(State.CANCELLED, cancel_reason=CancelReason.SUPERSEDED):
                    continue  # decided or expired meanwhile: no longer pending either
                poll_state().finish(old)
                cancelled.append(old)
    except PollStateUnavailable:
        return None
    return cancelled


def cancel(ar: AuthenticationRequest, *, reason: str) -> AuthenticationRequest:
    """Withdraw a pending request: it becomes ``cancelled`` with ``reason`` (a
    ``CancelReason``: the client withdrew it, or a newer request superseded it).

    The same conditional UPDATE as every decision, so a cancel racing an approval or a denial
    ends in exactly one of them; the shared poll state learns it (the client's polls then get
    ``expired_token``). No ping and no push callback is queued: the client asked for it (or,
    superseded, caused it). After commit ``auth_request_cancelled`` fires, so the device's
    prompt is withdrawn. ``RequestNotPending`` (with the state) when the request is no longer
    pending, expired included.
    """
    if reason not in CancelReason.values:
        raise ValueError(f"reason must be one of {CancelReason.values}, not {reason!r}")
    now = timezone.now()
    with transaction.atomic(using=_db()):
        _transition(ar, State.CANCELLED, now, {"cancel_reason": reason})
    _after_commit(signals.auth_request_cancelled, request=ar, reason=reason)
    return ar


def resend_device_notification(ar: AuthenticationRequest) -> bool:
    """Notify the user's device again (an operator's re-send): a new series of attempts under a
    new notification id (receivers de-duplicate on it); False if no longer pending."""
    if ar.effective_state() != State.PENDING:
        return False
    AuthenticationRequest.objects.record_notification(
        ar.pk,
        NotificationStatus.QUEUED,
        device_notification_id=uuid.uuid4().hex,
        device_notification_attempts=0,
        device_notification_due_at=timezone.now(),
        device_notification_lease_until=None,
        device_notification_retry=None,
    )
    _notify_device(ar)
    return True


def _notify_device(ar: AuthenticationRequest) -> None:
    """Hand the device notification to a worker once committed. The row is its outbox entry:
    if the broker is down, the sweep sends it later (never an error for the client).

    With ``NOTIFY_BATCH_WINDOW`` (the default) one task per window takes every due entry in
    batches (``device_outbox.notify_due``): a Celery message and its handling per request
    cost more than the notification itself. ``0`` sends one task per request."""
    window = ciba_settings.NOTIFY_BATCH_WINDOW
    if window:
        dispatch.kick_after_commit(dispatch.NOTIFY_DUE, window=window, using=_db())
    else:
        dispatch.after_commit(dispatch.NOTIFY_DEVICE, ar.pk, using=_db())


@dataclass(frozen=True)
class DetailsDisplay:
    """What the authentication device shows of a request's authorization details (RFC 9396),
    in the active language, and the SHA-256 that pins it: the device sends ``digest`` back
    with its approval, so the server records what the user saw, not what it meant to show."""

    rendering: list[dict[str, Any]]
    digest: str
    #: Types of the request this server no longer supports (their registration was removed
    #: after the request arrived): still shown, so the user can deny it, never approvable.
    unsupported: tuple[str, ...] = ()


def details_display(ar: AuthenticationRequest) -> DetailsDisplay | None:
    """The display of ``ar``'s requested details; ``None`` when it has none."""
    requested = ar.authorization_details or []
    if not requested:
        return None
    rendering = rar.rendering(requested)
    supported = set(rar.supported_types())
    return DetailsDisplay(
        rendering=rendering,
        digest=rar.digest(requested, rendering),
        unsupported=tuple(dict.fromkeys(d["type"] for d in requested if d["type"] not in supported)),
    )


def _approved_details(
    ar: AuthenticationRequest, approved: Any, displayed_details_hash: str | None
) -> dict[str, Any]:
    """The approval's ``approved_authorization_details`` and ``displayed_details_hash``.

    The requested details were validated when the request arrived and are never changed; the
    device may approve fewer (``rar.narrow``: each type decides what "fewer" means), and its
    hash must be that of the display of the stored details, or the user approved something
    else than this request. (``rar.narrow`` reads the approved objects within the same limits
    as requested ones.)
    """
    display = details_display(ar)
    if display is None:
        if approved:
            raise InvalidAuthorizationDetails("This request has no authorization details to approve.")
        return {}
    if display.unsupported:
        raise InvalidAuthorizationDetails(
            f"This server no longer supports {', '.join(display.unsupported)}: "
            "the request can only be denied."
        )
    if displayed_details_hash is not None and displayed_details_hash != display.digest:
        raise InvalidRequest(
            "displayed_details_hash does not match the details of this request: show them again "
            "(authorization_details_display) and approve what is shown."
        )
    if approved is not None and not isinstance(approved, list):
        raise InvalidAuthorizationDetails("authorization_details must be an array of objects.")
    if approved == []:
        raise InvalidAuthorizationDetails(
            "Approve at least one of the requested authorization details, or deny the request."
        )
    return {
        "approved_authorization_details": rar.narrow(ar.authorization_details, approved),
        "displayed_details_hash": displayed_details_hash or display.digest,
    }


def approve(
    ar: AuthenticationRequest,
    *,
    user: Any,
    scopes: Iterable[str] | None = None,
    acr: str = "",
    amr: Iterable[str] = (),
    authorization_details: list[dict[str, Any]] | None = None,
    displayed_details_hash: str | None = None,
    auth_time: datetime | None = None,
    evidence: dict[str, Any] | None = None,
) -> AuthenticationRequest:
    """Record the user's approval. ``scopes`` narrows what was requested (``openid`` stays);
    ``acr``/``amr`` are what the user's authentication achieved, ``auth_time`` when it happened
    (None: now) and ``evidence`` what proved it (``ApprovalEvidence`` fields), stored in the
    same transaction as the decision so no approval exists without its proof.

    For a request with ``authorization_details`` (RFC 9396), ``authorization_details`` narrows
    them where their types allow it (``None``: all, as requested) and ``displayed_details_hash``
    is the ``DetailsDisplay.digest`` the device showed (``None``: the display in the active
    language, for callers that display nothing themselves). Both are recorded; a hash of
    another display is ``InvalidRequest``, details the request does not allow are
    ``InvalidAuthorizationDetails``.

    Raises ``RequestNotPending`` when the request was decided, issued or expired meanwhile: an
    expired request is never approved, whatever the caller saw before. Raises
    ``StepUpRequired`` when the client asked for an essential acr this approval did not reach
    (OIDC Core §5.5.1.1): the request stays pending for a stronger approval.
    """
    if ar.acr_essential and acr not in ar.acr_values.split():
        wanted = ar.acr_values.split()
        level = next(filter(None, map(assurance.level_for_acr, wanted)), "")
        raise StepUpRequired(
            f"This request needs authentication at {' or '.join(wanted)}.",
            acr=wanted[0],
            level=level,
            methods=assurance.methods_for(level) if level else [],
        )
    requested = ar.scopes
    granted = list(dict.fromkeys(scopes)) if scopes is not None else requested
    if "openid" not in granted:
        granted.insert(0, "openid")
    extra = [s for s in granted if s not in requested]
    if extra:
        raise InvalidApproval(f"Scopes that were not requested: {' '.join(extra)}")
    now = timezone.now()
    fields = {
        "decided_at": now,
        "decided_by": user,
        "granted_scope": " ".join(granted),
        "acr": acr,
        "amr": " ".join(dict.fromkeys(amr)),
        "auth_time": auth_time or now,
        **_approved_details(ar, authorization_details, displayed_details_hash),
    }
    kind = CallbackDelivery.Kind.PUSH_TOKENS if _mode(ar) == MODE_PUSH else CallbackDelivery.Kind.PING
    if evidence or not _decide_at_once(ar, State.APPROVED, now, fields, kind):
        with transaction.atomic(using=_db()):
            _transition(ar, State.APPROVED, now, fields)
            if evidence:
                ApprovalEvidence.objects.create(auth_request=ar, **evidence)
            _queue_callback(ar, kind)
    _after_commit(signals.auth_request_approved, request=ar, user=user)
    return ar


def deny(ar: AuthenticationRequest, *, user: Any) -> AuthenticationRequest:
    """Record the user's denial: a push client is sent ``access_denied``, a ping client pinged
    (it then polls the denial). ``RequestNotPending`` when it was decided or expired meanwhile."""
    now = timezone.now()
    fields = {"decided_at": now, "decided_by": user}
    if not _decide_at_once(ar, State.DENIED, now, fields, *_denial_callback(ar)):
        with transaction.atomic(using=_db()):
            _deny(ar, user, now, {})
    _after_commit(signals.auth_request_denied, request=ar, user=user)
    return ar


def report(ar: AuthenticationRequest, *, user: Any, block: bool) -> AuthenticationRequest:
    """The user's "I did not ask for this": deny ``ar`` exactly as ``deny`` does, record when
    it was reported, and with ``block`` keep ``ar``'s client from asking this user again
    (``ciba.user_limits``; idempotent). After commit ``auth_request_denied`` and then
    ``auth_request_reported`` fire, so a site can alert. ``RequestNotPending`` as ``deny``:
    a request that was already decided or expired is not reported (nothing is blocked)."""
    now = timezone.now()
    with transaction.atomic(using=_db()):
        _deny(ar, user, now, {"reported_at": now})
        if block:
            user_limits.block(user, ar.client, reported_request=ar)
    _after_commit(signals.auth_request_denied, request=ar, user=user)
    _after_commit(signals.auth_request_reported, request=ar, user=user, blocked=block)
    return ar


def unblock(user: Any, client: Any) -> bool:
    """Let ``client`` ask ``user`` again (the user changed their mind); True if it was blocked."""
    return user_limits.unblock(user, client)


def _deny(ar: AuthenticationRequest, user: Any, now: datetime, fields: dict[str, Any]) -> None:
    """The denial, inside the caller's transaction: the transition and the client's callback."""
    _transition(ar, State.DENIED, now, {"decided_at": now, "decided_by": user, **fields})
    _queue_callback(ar, *_denial_callback(ar))


def _denial_callback(ar: AuthenticationRequest) -> tuple[str, str]:
    """The callback a denial owes (its kind and error code): push clients are told
    ``access_denied`` (§12), ping clients pinged (they then poll the denial)."""
    if _mode(ar) == MODE_PUSH:
        return CallbackDelivery.Kind.PUSH_ERROR, "access_denied"
    return CallbackDelivery.Kind.PING, ""


def mark_issued(ar: AuthenticationRequest) -> bool:
    """The token race arbiter: True for exactly one caller per approved, unexpired request."""
    now = timezone.now()
    if not AuthenticationRequest.objects.transition(ar.pk, State.ISSUED, now=now, issued_at=now):
        return False
    issued(ar, now)
    return True


def issue_statement(ar: AuthenticationRequest, now: datetime) -> tuple[str, list[Any]] | None:
    """``mark_issued``'s ``UPDATE``, for a caller that sends it with the tokens' rows in one
    statement (``ciba.callbacks.outbox``) and then calls ``issued`` if it changed the row;
    None where ``mark_issued`` would build it with the ORM."""
    return AuthenticationRequest.objects.transition_statement(ar.pk, State.ISSUED, now=now, issued_at=now)


def issued(ar: AuthenticationRequest, now: datetime) -> None:
    """What follows winning ``mark_issued``'s ``UPDATE`` (``now`` its time), however it was sent."""
    ar.transitioned(State.ISSUED, now=now, issued_at=now)
    _after_commit(signals.tokens_issued, request=ar)


def expire(ar: AuthenticationRequest, now: datetime | None = None) -> bool:
    """Mark one request past ``expires_at`` as expired; False if it was finished meanwhile.

    A push client is told with the §12 ``expired_token`` error — unless its tokens callback is
    already queued, which then carries that error itself. Ping clients are not pinged on
    expiry: they know ``expires_in`` and a ping would only make them poll for
    ``expired_token`` (CIBA §10.2 leaves it to the OP; docs/conformance.md).
    """
    with transaction.atomic(using=_db()):
        if not ar.transition_to(State.EXPIRED, now=now or timezone.now()):
            return False
        if (
            _mode(ar) == MODE_PUSH
            and not ar.callbacks.filter(kind=CallbackDelivery.Kind.PUSH_TOKENS).exists()
        ):
            _queue_callback(ar, CallbackDelivery.Kind.PUSH_ERROR, "expired_token")
    _after_commit(signals.auth_request_expired, request=ar)
    return True


def expire_due(*, now: datetime | None = None, batch_size: int = 500, limit: int | None = None) -> int:
    """Expire every unfinished request past ``expires_at``, in batches; return how many.

    Safe to run concurrently with polls, approvals and another sweep: each request changes
    state through its own conditional UPDATE, so whoever loses simply skips it.
    """
    now = now or timezone.now()
    done = 0
    while limit is None or done < limit:
        size = batch_size if limit is None else min(batch_size, limit - done)
        batch = list(
            AuthenticationRequest.objects.past_expiry(now).select_related("client").order_by("pk")[:size]
        )
        if not batch:
            break
        done += sum(1 for ar in batch if expire(ar, now))
        if len(batch) < size:
            break
    return done


def delete_finished(*, older_than: timedelta, batch_size: int = 1000, now: datetime | None = None) -> int:
    """Delete finished requests (``AuthenticationRequest.FINISHED``: denied, expired, issued,
    cancelled) last changed before ``now - older_than``.

    In batches, so a large backlog never holds one long transaction. Their callback rows go
    with them (only finished requests are deleted, so no callback is still owed).
    """
    cutoff = (now or timezone.now()) - older_than
    finished = sorted(AuthenticationRequest.FINISHED)
    deleted = 0
    while True:
        pks = list(
            AuthenticationRequest.objects.filter(state__in=finished, updated_at__lt=cutoff)
            .exclude(callbacks__state=CallbackDelivery.State.PENDING)
            .values_list("pk", flat=True)[:batch_size]
        )
        if not pks:
            return deleted
        AuthenticationRequest.objects.filter(pk__in=pks).delete()
        deleted += len(pks)


def end_client(client: Any, *, now: datetime | None = None) -> int:
    """End every unfinished request of ``client``, which is being deleted; return how many.

    Whoever deletes a client (an RFC 7592 ``DELETE``, the admin, ``Application.delete()``) gets
    this through the ``pre_delete`` receiver below, in the deleting transaction and before the
    rows cascade away. Each request ends as an expiry ends it (signal, poll state), but without
    the push error callback expiry sends: there is no client left to receive it, and callbacks
    still queued are marked failed, so a worker or the sweep that meets one sends nothing.
    A device prompt for a request of this client then finds it ended (and then gone).
    """
    now = now or timezone.now()
    unfinished = AuthenticationRequest.objects.filter(
        client=client, state__in=AuthenticationRequest.TRANSITIONS[State.EXPIRED]
    )
    ended = 0
    with transaction.atomic(using=_db()):
        # Expiry is only ever a transition of a request past ``expires_at``: bring it forward.
        unfinished.filter(expires_at__gt=now).update(expires_at=now)
        for ar in unfinished.select_related("client"):
            if not ar.transition_to(State.EXPIRED, now=now):
                continue
            ended += 1
            try:
                poll_state().finish(ar)
            except PollStateUnavailable:
                pass  # its record lapses with the request; the client cannot authenticate again
            _after_commit(signals.auth_request_expired, request=ar)
        CallbackDelivery.objects.filter(request__client=client, state=CallbackDelivery.State.PENDING).update(
            state=CallbackDelivery.State.FAILED, lease_until=None, last_error="the client was deleted"
        )
    return ended


def _end_deleted_client(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.pk is not None:
        end_client(instance)


# A lazy sender (the application model's label): connected once the model is loaded, and only
# for it, so deletes of other models keep Django's fast path.
pre_delete.connect(
    _end_deleted_client,
    sender=oauth2_settings.APPLICATION_MODEL,
    weak=False,
    dispatch_uid="ciba.services.end_deleted_client",
)


def _mode(ar: AuthenticationRequest) -> str:
    return ar.client.backchannel_token_delivery_mode


def retry_failed_callbacks(pks: Iterable[int]) -> list[int]:
    """Hand failed callbacks back to the workers (an operator's retry); return those retried.

    A failed tokens push is final: its tokens were revoked, and tokens are never minted twice
    for one request, so the client must start a new request.
    """
    retried = []
    for pk in (
        CallbackDelivery.objects.filter(pk__in=list(pks))
        .exclude(kind=CallbackDelivery.Kind.PUSH_TOKENS)
        .values_list("pk", flat=True)
    ):
        if CallbackDelivery.objects.transition(
            pk, CallbackDelivery.State.PENDING, next_attempt_at=timezone.now(), lease_until=None, attempts=0
        ):
            dispatch.send(dispatch.DELIVER_CALLBACK, pk)
            retried.append(pk)
    return retried


def _queue_callback(ar: AuthenticationRequest, kind: str, error_code: str = "") -> CallbackDelivery | None:
    """Write the outbox row in the caller's transaction; hand it to a worker after commit.

    If the broker is down the row survives, and the sweeper (``ciba.sweep_callback_outbox``) sends it.
    """
    if _mode(ar) not in NOTIFICATION_MODES:
        return None
    delivery = _callback_row(ar, kind, error_code)
    delivery.save(force_insert=True, using=_db())
    _hand_over(delivery)
    return delivery


def _callback_row(ar: AuthenticationRequest, kind: str, error_code: str = "") -> CallbackDelivery:
    """The outbox row of ``ar``'s callback, not yet written: already claimed (leased, its
    attempt counted) when a sender thread of this process is free to send it after the commit."""
    claimed: dict[str, Any] = {}
    lease = dispatch.lease_here(dispatch.DELIVER_CALLBACK)
    if lease is not None:  # a sender thread of this process will take it: written claimed for it
        claimed = {"lease_until": timezone.now() + lease, "attempts": 1}
    return CallbackDelivery(request=ar, kind=kind, error_code=error_code, **claimed)


def _hand_over(delivery: CallbackDelivery) -> None:
    """Once the row's transaction commits (at once outside one), keep it for this process's
    sender threads and hand it to one, or to a worker."""
    # Registered before the hand-off, so it runs first once committed (and never if rolled back).
    transaction.on_commit(lambda: _keep_committed(delivery), using=_db())
    dispatch.after_commit(dispatch.DELIVER_CALLBACK, delivery.pk, using=_db())


#: The callback rows this process committed last, as written, with their request, client and
#: user: the process's own sender threads (``ciba.callbacks.inline``) take them from here
#: instead of reading them back. Only committed rows get here, each a copy of its own.
_committed: OrderedDict[int, CallbackDelivery] = OrderedDict()
_committed_lock = threading.Lock()
#: More than a process has sender threads: a row nobody takes (published to a worker
#: instead) is pushed out by later ones.
COMMITTED_KEPT = 64


def _keep_committed(delivery: CallbackDelivery) -> None:
    kept = copy.copy(delivery)  # the caller goes on with its own instances (a response to render)
    request = copy.copy(delivery.request)
    request.__dict__.pop("prompt_withdrawal_marked", None)
    kept.request = request
    with _committed_lock:
        _committed[kept.pk] = kept
        while len(_committed) > COMMITTED_KEPT:
            _committed.popitem(last=False)


def committed_callback(pk: int) -> CallbackDelivery | None:
    """The callback row ``pk`` as this process committed it (``attempts`` 0, no payload), with
    its request, client and user; once: the entry is removed. None if it was not committed
    here, or not recently. The row may have changed since (claimed by a worker, its client
    deleted): the caller's claim must find it unclaimed and never attempted to rely on it."""
    with _committed_lock:
        return _committed.pop(pk, None)


def _db() -> str:
    return router.db_for_write(AuthenticationRequest)


def _transition(ar: AuthenticationRequest, to: str, now: datetime, fields: dict[str, Any]) -> None:
    """Decide a pending request, inside the caller's transaction.

    The shared poll state learns it before the commit: if it cannot, the decision rolls back
    (``TemporarilyUnavailable``) rather than leave a poll answered "pending" from a stale record.
    """
    withdrawal = _withdrawal(to)
    if not ar.transition_to(to, now=now, expressions=withdrawal, **fields):
        _not_pending(ar, now)
    _decided(ar, now, fields, withdrawal)
    _finish_polls(ar)


def _decide_at_once(
    ar: AuthenticationRequest, to: str, now: datetime, fields: dict[str, Any], kind: str, error_code: str = ""
) -> bool:
    """A decision (``_transition`` and ``_queue_callback``) as one statement of its own: the
    conditional ``UPDATE``, and the callback's ``INSERT`` chained to it where one is owed
    (``CompiledInsert.save_if``, PostgreSQL). Outside a transaction that is one round trip
    and its own commit, where a transaction sends BEGIN, the UPDATE, the INSERT and COMMIT,
    each a round trip before the callback can leave (issue 29). The poll state learns it
    first (``_finish_polls``), so a decision it could not be told is not recorded; told of
    one that then fails, it only sends that request's polls to the database, which answers
    them right. False, with nothing recorded, where it cannot be one statement: the caller
    records it in a transaction."""
    withdrawal = _withdrawal(to)
    update = AuthenticationRequest.objects.transition_statement(
        ar.pk, to, now=now, expressions=withdrawal, **fields
    )
    if update is None:
        return False
    delivery = _callback_row(ar, kind, error_code) if _mode(ar) in NOTIFICATION_MODES else None
    if delivery is not None and not _CALLBACK_INSERT.can_chain(delivery, using=_db()):
        return False
    _finish_polls(ar)
    if delivery is None:
        changed = _execute_update(update)
    else:
        inserted = _CALLBACK_INSERT.save_if(delivery, update, using=_db())
        if inserted is None:  # a value it cannot send after all: nothing written
            return False
        changed = inserted
    if not changed:
        _not_pending(ar, now)
    ar.transitioned(to, now=now, **fields)
    _decided(ar, now, fields, withdrawal)
    if delivery is not None:
        _hand_over(delivery)
    return True


#: The callback row's INSERT, compiled once (``ciba.statements.insert``), chained to the
#: decision's UPDATE (``_decide_at_once``).
_CALLBACK_INSERT = CompiledInsert(CallbackDelivery)


def _execute_update(update: tuple[str, list[Any]]) -> bool:
    using = _db()
    with transaction.mark_for_rollback_on_error(using=using), connections[using].cursor() as cursor:
        cursor.execute(*update)
        return cursor.rowcount == 1


def _withdrawal(to: str) -> Any:
    return _withdrawal_fields if to in AuthenticationRequest.ENDS_PROMPT else None


def _not_pending(ar: AuthenticationRequest, now: datetime) -> NoReturn:
    current = AuthenticationRequest.objects.filter(pk=ar.pk).first()
    raise RequestNotPending(current.effective_state(now) if current else State.EXPIRED)


def _decided(ar: AuthenticationRequest, now: datetime, fields: dict[str, Any], withdrawal: Any) -> None:
    """``ar`` as its decision's UPDATE left the row, as far as it can be known here."""
    if withdrawal is not None:
        for name in _WITHDRAWAL_FIELDS:
            # What the UPDATE's CASE chose is known only to the row: read it back if ever
            # asked (deferred), never leave the value read before on the instance.
            if name not in fields:
                ar.__dict__.pop(name, None)
    # For the after-commit receiver (``device_outbox``): when the UPDATE above surely marked
    # the withdrawal, it only hands it to a worker, with no second write.
    ar.prompt_withdrawal_marked = withdrawal_marked(ar, now)


def _finish_polls(ar: AuthenticationRequest) -> None:
    """The shared poll state learns that ``ar`` is no longer pending, before the decision is
    committed: if it cannot, the decision is not recorded (``TemporarilyUnavailable``) rather
    than leave a poll answered "pending" from a stale record."""
    try:
        poll_state().finish(ar)
    except PollStateUnavailable:
        raise TemporarilyUnavailable() from None


_WITHDRAWAL_FIELDS = ("device_notification_due_at", "device_notification_retry")


def _withdrawal_fields(pk: Any, now: datetime) -> dict[str, Any]:
    """The device-prompt withdrawal, marked by the decision's own UPDATE (no second write
    after the commit): what ``device_outbox.mark_withdrawal`` sets, under its condition (a
    notification was attempted, or one holds its lease now), evaluated on the row as the
    UPDATE finds it. ``device_notification_retry`` is cleared so the withdrawal starts with
    no progress, as ``mark_withdrawal`` does."""
    owed = Q(device_notification_attempts__gt=0) | Q(device_notification_lease_until__gte=now)
    return {
        "device_notification_due_at": Case(
            When(owed, then=Value(now)),
            default=F("device_notification_due_at"),
            output_field=AuthenticationRequest._meta.get_field("device_notification_due_at"),
        ),
        "device_notification_retry": Case(
            When(owed, then=Value(None)),
            default=F("device_notification_retry"),
            output_field=AuthenticationRequest._meta.get_field("device_notification_retry"),
        ),
    }


def withdrawal_marked(ar: AuthenticationRequest, now: datetime) -> bool:
    """Whether the decision's UPDATE surely marked ``ar``'s prompt withdrawal, judged from the
    row as the caller read it before: a notification attempted (attempts only grow, but for an
    operator's re-send), or one holding its lease (released only with its attempt counted).
    False does not mean nothing is owed: a notification may have started since the caller's
    read, so ``device_outbox`` then marks it after the commit as it always did."""
    lease = ar.device_notification_lease_until
    return bool(ar.device_notification_attempts > 0 or (lease is not None and lease >= now))


def _after_commit(signal: Any, **kwargs: Any) -> None:
    sender = AuthenticationRequest
    using = router.db_for_write(sender)
    transaction.on_commit(lambda: signal.send(sender=sender, **kwargs), using=using)
