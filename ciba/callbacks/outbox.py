"""Delivering the callback outbox: claim a row, build its payload once, send it, record the result.

Called by the ``ciba.deliver_callback`` task (``ciba.deliver_callback_slow`` in the slow lane,
``lanes``) and handed out by the sweeper (``ciba.sweep_callback_outbox``); safe to call twice
for the same row (the second caller finds it leased or finished and does nothing). Leases,
claims, deferral, the retry plan and the sweep's lock are the outbox engine's
(``ciba.outbox_engine``, ``OUTBOX`` below); the payload, the POST, the lanes, the signals and
revoking undelivered push tokens are this module's.
"""

from __future__ import annotations

import hashlib
import logging
import random
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from django.db import router, transaction
from django.db.models import F, Q
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, revoke_access_token

from .. import dispatch, services, signals
from ..conf import ciba_settings
from ..errors import DESCRIPTIONS, error_body
from ..models import AuthenticationRequest, CallbackDelivery
from ..outbound import Outcome
from ..outbox_engine import Outbox
from ..statements import chain
from ..statements.update import CompiledUpdate
from ..tokens import mint_for_push
from . import lanes
from .sealing import seal, unseal
from .send import deadline, post

logger = logging.getLogger("ciba.delivery")
Kind, DState = CallbackDelivery.Kind, CallbackDelivery.State

#: The callback outbox, for the engine. A claim counts an attempt (so attempts that never
#: record, their worker killed each time, end the row); the sweep claims each row it hands out.
OUTBOX = Outbox(
    name="callbacks",
    model=CallbackDelivery,
    open=lambda now: Q(state=DState.PENDING),
    lease_field="lease_until",
    due_field="next_attempt_at",
    lease_calls=1,
    retry_settings="CALLBACK",
    handoff=True,
)


def handoff_duration() -> timedelta:
    """How long a row the sweep handed to a task may wait in a queue before a later sweep hands
    it out again (its message lost with a broker or a worker)."""
    return OUTBOX.handoff_duration()


def task_for(slow: bool) -> str:
    return dispatch.DELIVER_CALLBACK_SLOW if slow else dispatch.DELIVER_CALLBACK


def deliver(delivery_pk: int, *, slow: bool = False, inline: bool = False) -> str:
    """Attempt one delivery; return ``delivered``, ``retrying``, ``failed``, ``deferred``
    (another worker holds the row; this task comes back when its lease ends), ``skipped``
    (finished), ``slow-lane`` (its endpoint is in the slow lane: handed to that lane's task) or
    ``throttled`` (``slow``: another attempt to the same endpoint is in flight; this one comes
    back after it).

    ``inline``: the attempt right after the commit, in the process that committed
    (``ciba.callbacks.inline``): an endpoint in the slow lane is handed to that lane's task
    without an attempt, the attempt gives up where the slow lane begins (``inline_deadline``),
    and a row another holds is left to it (``taken``: its holder records it, or the sweep
    hands it out once the lease ends)."""
    now = timezone.now()
    delivery = _claim_as_committed(delivery_pk, now) if inline else None
    if delivery is not None:
        lease = delivery.lease_until
    else:
        lease = OUTBOX.claim(delivery_pk, now, attempts=F("attempts") + 1)
        if lease is None:
            return "taken" if inline else OUTBOX.defer(task_for(slow), delivery_pk, now)
        related = CallbackDelivery.objects.select_related("request__client", "request__user")
        delivery = related.filter(pk=delivery_pk).first()
        if delivery is None:
            return "skipped"  # its client was deleted after the claim (ciba.services.end_client)
    if OUTBOX.retry_plan().exhausted(delivery.attempts):
        # Every attempt so far was claimed and never recorded: whatever runs it dies (a
        # payload that crashes the worker, say). Give up instead of dying for ever.
        return _record(delivery, Outcome(False, error="attempts never finished (worker lost)"))
    ar = delivery.request
    url = ar.client.backchannel_client_notification_endpoint
    was_slow = lanes.is_slow(url)
    if was_slow and not slow:
        _release(delivery, lease, next_attempt_at=now)
        dispatch.send(dispatch.DELIVER_CALLBACK_SLOW, delivery_pk)  # if not, the sweep sends it
        return "slow-lane"
    turn = lanes.slot(url, OUTBOX.lease_duration().total_seconds()) if slow else nullcontext(True)
    with turn as mine:
        if not mine:
            return _throttle(delivery, lease, now)
        body = payload(delivery)
        with lanes.watch(url) as attempt, deadline(inline_deadline() if inline else None):
            outcome = post(url, ar.client_notification_token, body)
        lane = lanes.record(url, outcome, attempt, was_slow=was_slow)
    return _record(delivery, outcome, retry_slow=lane == lanes.SLOW or (lane is None and was_slow))


def _claim_as_committed(delivery_pk: int, now: datetime) -> CallbackDelivery | None:
    """The first claim of a row this process just committed, without reading it back: the
    row as written (``services.committed_callback``), claimed only if nobody has attempted it
    yet (``attempts`` 0, unleased, pending), so what was written is still what it is. None
    (the caller claims and reads it as a worker does) when it was not committed here, or
    when the claim finds it changed."""
    written = services.committed_callback(delivery_pk)
    if written is None:
        return None
    if written.lease_until is not None:
        # Written already claimed by this process (inline.lease): nobody else takes it before
        # the lease ends. Past half of it (a process stalled that long), not relied on: the
        # caller's claim then fails until the lease runs out, and the sweep hands it on.
        return written if written.lease_until - now >= OUTBOX.lease_duration() / 2 else None
    lease = now + OUTBOX.lease_duration()
    claimed = _CLAIM_AS_COMMITTED.update((now, delivery_pk), {OUTBOX.lease_field: lease, "attempts": 1})
    if not claimed:
        return None
    written.lease_until, written.attempts = lease, 1
    return written


#: ``_claim_as_committed``'s conditional UPDATE, compiled once (``ciba.statements``): it runs
#: for every callback the committing process sends.
_CLAIM_AS_COMMITTED = CompiledUpdate(
    CallbackDelivery, lambda rows, now, pk: OUTBOX.available(now).filter(pk=pk, attempts=0)
)


def inline_deadline() -> float:
    """The wall-clock limit of an attempt right after the commit: where the slow lane begins
    (``lanes.slow_after``), so an endpoint too slow for it is moved there, as a worker's
    attempt would move it; ``CALLBACK_TOTAL_TIMEOUT`` without a slow lane."""
    total = float(ciba_settings.CALLBACK_TOTAL_TIMEOUT)
    return min(total, lanes.slow_after() or total)


def give_back(written: CallbackDelivery) -> None:
    """The lease a row was written with for this process's sender (``inline.lease``), given
    back with its attempt when no sender took it after all: a worker may claim it at once."""
    _release(written, written.lease_until)


def _release(delivery: CallbackDelivery, lease: datetime, **fields: Any) -> None:
    """Give back a claim that made no attempt (it does not count as one)."""
    OUTBOX.release(delivery.pk, lease, attempts=F("attempts") - 1, **fields)


def _throttle(delivery: CallbackDelivery, lease: datetime, now: datetime) -> str:
    """The slow lane's slot for this endpoint is taken: come back when its holder is likely
    done (within one total timeout), and leave the row to the sweep meanwhile. Past the
    request's expiry there is no coming back (§10.2: the client has moved on)."""
    if now >= _retry_deadline(delivery.request):
        return _record(
            delivery, Outcome.failed("endpoint in the slow lane until the request expired", retry=False)
        )
    wait = timedelta(seconds=ciba_settings.CALLBACK_TOTAL_TIMEOUT * random.uniform(0.5, 1.0))
    _release(delivery, lease, next_attempt_at=now + wait + handoff_duration())
    if not dispatch.later(dispatch.DELIVER_CALLBACK_SLOW, delivery.pk, countdown=wait.total_seconds()):
        CallbackDelivery.objects.filter(pk=delivery.pk, state=DState.PENDING).update(
            next_attempt_at=now + wait
        )
    return "throttled"


def payload(delivery: CallbackDelivery) -> dict[str, Any]:
    """The JSON body of a callback; push tokens are minted on first use and stored sealed."""
    ar = delivery.request
    if delivery.kind == Kind.PING:
        return {"auth_req_id": ar.auth_req_id}  # §10.2: only auth_req_id
    if delivery.kind == Kind.PUSH_ERROR:
        return _error_body(ar, delivery.error_code)
    if delivery.payload:
        return unseal(delivery.payload)
    return _mint_once(delivery)


def _mint_once(delivery: CallbackDelivery) -> dict[str, Any]:
    """The push body, minted by exactly one caller per request and stored sealed.

    ``services.mark_issued``'s conditional ``UPDATE`` of the request is the gate, sent with
    the token rows (``_mint_and_store``), with no lock taken before it: of two callers minting
    at once, the second's ``UPDATE`` waits for the first's transaction and then finds the
    request issued, so it writes nothing and reads the body the first stored. The body is
    stored only where none is (``_STORE_PAYLOAD``); a caller that finds one stored after all
    (a failed mint's ``transaction_failed``, written outside its rolled back transaction)
    rolls its own tokens back and sends what is stored: one body per row, whoever wrote it."""
    ar = delivery.request
    using = router.db_for_write(CallbackDelivery)
    try:
        with transaction.atomic(using=using):
            if not ar.user.is_active:
                # Approved while active, deactivated since: no tokens for anyone (§12).
                body = _error_body(ar, "access_denied")
            else:
                minted = _mint_and_store(ar, delivery, using)
                if minted is not None:
                    return minted
                # Issued by another attempt (its body is stored, committed before our UPDATE
                # returned), or expired (or otherwise no longer approved) before minting.
                stored = _stored_payload(delivery)
                if stored is not None:
                    return stored
                body = _error_body(ar, "expired_token")
            sealed = seal(body)
            if not _STORE_PAYLOAD.update((delivery.pk,), {"payload": sealed}):
                raise _StoredMeanwhile()
            delivery.payload = sealed
            return body
    except _StoredMeanwhile:
        stored = _stored_payload(delivery)
        if stored is None:  # the row is gone (its client deleted): nothing will be sent
            raise
        return stored
    except Exception:  # noqa: BLE001 - a minting failure must still reach the client (§12)
        logger.exception("Could not mint push tokens for CIBA callback %s", delivery.pk)
        body = _error_body(ar, "transaction_failed")
        sealed = seal(body)
        if _STORE_PAYLOAD.update((delivery.pk,), {"payload": sealed}):
            delivery.payload = sealed
            return body
        return _stored_payload(delivery) or body


def _mint_and_store(
    ar: AuthenticationRequest, delivery: CallbackDelivery, using: str
) -> dict[str, Any] | None:
    """In the caller's transaction: the tokens minted, the request marked issued (the gate,
    ``services.mark_issued``'s ``UPDATE``), the token rows written and the sealed body stored,
    or None, with nothing written, when the gate is lost. Where the database allows, the
    gate, the rows and the body are one statement (``ciba.statements.chain``), so the tokens
    are minted before the gate is known: a caller that loses it has only made tokens no row
    records. Raises ``_StoredMeanwhile`` when a body was stored first (rolled back)."""
    rows = chain.Chain(using)
    token = mint_for_push(ar, rows)
    body = {"auth_req_id": ar.auth_req_id, **token}
    sealed = seal(body)
    now = timezone.now()
    store = _STORE_PAYLOAD.statement((delivery.pk,), {"payload": sealed}, using=using)
    outcome = rows.send(services.issue_statement(ar, now), store)
    if outcome is None:  # not one statement here: the gate, the rows and the body in turn
        if not services.mark_issued(ar):
            return None
        rows.save_each()
        stored = bool(_STORE_PAYLOAD.update((delivery.pk,), {"payload": sealed}))
    else:
        gated, stored = outcome
        if not gated:
            return None
        services.issued(ar, now)
    if not stored:
        raise _StoredMeanwhile()
    delivery.payload = sealed
    return body


class _StoredMeanwhile(Exception):
    """Another caller stored this row's body first: ours is rolled back."""


def _stored_payload(delivery: CallbackDelivery) -> dict[str, Any] | None:
    sealed = CallbackDelivery.objects.filter(pk=delivery.pk).values_list("payload", flat=True).first()
    if not sealed:
        return None
    delivery.payload = sealed
    return unseal(sealed)


#: The body stored where none is yet, compiled once (``ciba.statements``): one per push.
_STORE_PAYLOAD = CompiledUpdate(CallbackDelivery, lambda rows, pk: rows.filter(pk=pk, payload__isnull=True))


def _error_body(ar: AuthenticationRequest, code: str) -> dict[str, str]:
    """CIBA §12: error, error_description and auth_req_id."""
    return error_body(code, DESCRIPTIONS[code], auth_req_id=ar.auth_req_id)


def _record(delivery: CallbackDelivery, outcome: Outcome, *, retry_slow: bool = False) -> str:
    now = timezone.now()
    ar = delivery.request
    fields: dict[str, Any] = {"lease_until": None, "last_status": outcome.status, "last_error": outcome.error}
    if outcome.delivered:
        CallbackDelivery.objects.transition(delivery.pk, DState.DELIVERED, delivered_at=now, **fields)
        fields.update(state=DState.DELIVERED, delivered_at=now)
        result = "delivered"
    else:
        delay = OUTBOX.retry_plan().next_delay(
            delivery.attempts,
            worth_it=outcome.retry,
            now=now,
            deadline=_retry_deadline(ar),
            retry_after=outcome.retry_after,
        )
        if delay is not None:
            fields.update(next_attempt_at=now + timedelta(seconds=delay))
            CallbackDelivery.objects.filter(pk=delivery.pk).update(**fields)
            result = "retrying"
        else:
            CallbackDelivery.objects.transition(delivery.pk, DState.FAILED, **fields)
            fields.update(state=DState.FAILED)
            result = "failed"
    for name, value in fields.items():
        setattr(delivery, name, value)
    if result == "delivered":
        signals.client_notified.send(sender=CallbackDelivery, delivery=delivery, request=ar)
    elif result == "failed":
        _revoke_pushed_tokens(delivery)
        logger.warning(
            "CIBA callback %s to client %s failed: %s", delivery.pk, ar.client.client_id, outcome.error
        )
        signals.client_notification_failed.send(sender=CallbackDelivery, delivery=delivery, request=ar)
    else:
        dispatch.send(task_for(retry_slow), delivery.pk, countdown=delay)
    return result


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter; a server's ``Retry-After`` is honoured (within the cap)."""
    return OUTBOX.retry_plan().delay(attempts, retry_after)


def _retry_deadline(ar: AuthenticationRequest) -> datetime:
    """Retries stop when the request expires: after that the client has moved on (§10.2)."""
    return ar.expires_at


def _revoke_pushed_tokens(delivery: CallbackDelivery) -> None:
    """Tokens that never reached the client must not stay usable (they were minted for it alone)."""
    if delivery.kind != Kind.PUSH_TOKENS or not delivery.payload:
        return
    access_token = unseal(delivery.payload).get("access_token")
    if not access_token:
        return
    checksum = hashlib.sha256(access_token.encode()).hexdigest()
    token = get_access_token_model().objects.filter(token_checksum=checksum).first()
    if token is not None:
        revoke_access_token(token)


def due(now: datetime | None = None, limit: int = 500) -> list[int]:
    """Pending rows whose time has come and whose lease (if any) has run out."""
    return list(OUTBOX.due(now or timezone.now()).values_list("pk", flat=True)[:limit])


def sweep(now: datetime | None = None, limit: int = 500) -> int:
    """Hand every due row back to the workers (after a broker outage or a killed worker), each
    to its lane's task; return how many.

    At most one sweep runs at a time (``dispatch.sweeping``), and each row it hands out is
    claimed first: its ``next_attempt_at`` moves ``handoff_duration()`` ahead in the same
    conditional UPDATE (``SKIP LOCKED`` where the database has it), so a concurrent sweep,
    or the next one while the message still waits in its queue, does not send it again. A
    row whose task could not be sent is due again at once.
    """
    return OUTBOX.sweep(lambda now: _hand_out(now, limit), _send, now)


def _send(rows: list[tuple[int, str]]) -> list[int]:
    """Send each handed-out row to its lane's task; the rows that could not be sent."""
    slow = lanes.slow_among(url for _, url in rows)
    return [pk for pk, url in rows if not dispatch.send(task_for(url in slow), pk)]


def _hand_out(now: datetime, limit: int) -> list[tuple[int, str]]:
    """Claim up to ``limit`` due rows for this sweep: ``(pk, endpoint)`` of each."""
    return OUTBOX.hand_out(now, limit, ("pk", "request__client__backchannel_client_notification_endpoint"))
