"""The outbox engine: leases, claims, deferral, the retry plan and sweeping, for every outbox.

An outbox is a table whose rows say what work is owed to the outside world (a device
notification, a ping or push callback) and when it is due; a Celery task does the work and a
periodic sweep hands out what no task is doing. ciba has two: the device notifications
(``ciba.device_outbox``: the request row is the entry) and the callbacks
(``ciba.callbacks.outbox``: ``CallbackDelivery`` rows). Each describes its rows with one
``Outbox`` (which rows are open, which column holds the lease and which the due time, the
prefix of its retry settings) and keeps its own side effects: the notifiers, the HTTP POST,
the push tokens, the slow lane. What they share lives here, once:

* **Leases.** A worker claims an entry by setting its lease in one conditional UPDATE
  (``claim``), open and unleased being the condition (``unleased``: the one claim-if-unleased
  filter); a worker that dies mid-attempt loses the entry when its lease runs out
  (``lease_duration``: the attempt's outbound deadline, with room to record the outcome).
* **Claims of many.** ``claim_due`` takes the oldest due entries in one locking query,
  ``SKIP LOCKED`` where the database has it, so two workers or sweeps never take the same one.
* **Deferral.** A task that finds its entry leased by another comes back when that lease ends
  (``defer``), instead of dropping what may be the only message that would (the holder may be
  a worker killed mid-attempt, and this its redelivered task).
* **The retry plan.** ``RetryPlan`` (from the outbox's ``*_MAX_RETRIES`` and
  ``*_RETRY_BACKOFF_*`` settings): the delay before the next attempt (``outbound.backoff``,
  a peer's ``Retry-After`` honoured within the cap), and whether there is one: worth it, within
  the attempts, and before the deadline (the request's expiry: after it the client, or the
  user, has moved on).
* **Sweeping.** ``Outbox.sweep`` runs under the outbox's sweep lock (``dispatch.sweeping``,
  which also records when it completed, for ``manage.py ciba_health``), hands out the due
  entries and makes an entry whose task could not be sent due again at once; ``backlog`` is
  what the health check reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Count, Min, Model, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from . import dispatch
from .conf import ciba_settings
from .outbound import backoff


@dataclass(frozen=True)
class RetryPlan:
    """When an entry that failed is tried again, if ever."""

    max_retries: int
    base: float
    cap: float

    @classmethod
    def from_settings(cls, prefix: str) -> RetryPlan:
        """``{prefix}_MAX_RETRIES``, ``{prefix}_RETRY_BACKOFF_BASE`` and ``_MAX``, read now (the
        settings may change while the process runs, as under the tests' overrides)."""
        return cls(
            max_retries=getattr(ciba_settings, f"{prefix}_MAX_RETRIES"),
            base=getattr(ciba_settings, f"{prefix}_RETRY_BACKOFF_BASE"),
            cap=getattr(ciba_settings, f"{prefix}_RETRY_BACKOFF_MAX"),
        )

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before the attempt after ``attempts``: exponential backoff with jitter; a
        peer's ``Retry-After`` is honoured within the cap."""
        return backoff(attempts, base=self.base, cap=self.cap, retry_after=retry_after)

    def allows(self, attempts: int, delay: float, *, now: datetime, deadline: datetime) -> bool:
        """Whether ``attempts`` so far leave room for another, ``delay`` seconds from ``now``,
        before ``deadline``."""
        return attempts <= self.max_retries and now + timedelta(seconds=delay) < deadline

    def next_delay(
        self,
        attempts: int,
        *,
        worth_it: bool,
        now: datetime,
        deadline: datetime,
        retry_after: float | None = None,
    ) -> float | None:
        """The delay before the next attempt, or None when there is none: not ``worth_it`` (a
        final failure), out of attempts, or past the deadline."""
        delay = self.delay(attempts, retry_after)
        return delay if worth_it and self.allows(attempts, delay, now=now, deadline=deadline) else None

    def exhausted(self, attempts: int) -> bool:
        """More attempts claimed than the plan allows: for an outbox that counts an attempt at
        its claim, attempts that never recorded an outcome (whatever runs them dies)."""
        return attempts > self.max_retries + 1


def after_lease(task: str, pk: int, lease_until: datetime | None, now: datetime) -> str:
    """Send ``task(pk)`` again when ``lease_until`` ends: ``"deferred"`` when it was scheduled,
    ``"skipped"`` otherwise (no lease, it already ended, or nothing could be scheduled)."""
    if lease_until is None or lease_until < now:
        return "skipped"
    countdown = (lease_until - now).total_seconds() + 1
    return "deferred" if dispatch.later(task, pk, countdown=countdown) else "skipped"


@dataclass(frozen=True)
class Outbox:
    """One outbox's rows, described for the engine.

    ``open(now)`` is the condition of an entry that still owes work (whatever its lease);
    ``lease_field`` and ``due_field`` name its lease and due-time columns; ``lease_calls`` is how
    many outbound calls one claimed attempt may make (each bounded by
    ``CALLBACK_TOTAL_TIMEOUT``); ``retry_settings`` the prefix of its retry settings;
    ``handoff``: whether its sweep claims what it hands out (by moving its due time one lease
    ahead), or leaves the claim to the task it sends; ``sweep_grace``: how long a new entry is
    left to its own task before a sweep sends it too."""

    name: str
    model: type[Model]
    open: Callable[[datetime], Q]
    lease_field: str
    due_field: str
    lease_calls: int
    retry_settings: str
    handoff: bool
    sweep_grace: timedelta = timedelta(0)

    # --- leases and claims ---------------------------------------------------------------

    def lease_duration(self) -> timedelta:
        """Longer than one claimed attempt can take (its outbound deadlines), with room to
        record it: past this, its holder is taken for dead."""
        return timedelta(seconds=self.lease_calls * ciba_settings.CALLBACK_TOTAL_TIMEOUT + 10)

    def handoff_duration(self) -> timedelta:
        """How long an entry a sweep handed out (``handoff``) waits for its task before a later
        sweep hands it out again (its message lost with a broker or a worker): one lease."""
        return self.lease_duration()

    def unleased(self, now: datetime) -> Q:
        """The one claim-if-unleased filter: no lease, or one that has run out."""
        return Q(**{f"{self.lease_field}__isnull": True}) | Q(**{f"{self.lease_field}__lt": now})

    def available(self, now: datetime) -> QuerySet:
        """Entries a worker may take now: open and unleased."""
        return self.model._default_manager.filter(self.open(now)).filter(self.unleased(now))

    def due(self, now: datetime, before: datetime | None = None) -> QuerySet:
        """Available entries due at ``before`` (default: ``now``), the oldest first."""
        until = now if before is None else before
        return self.available(now).filter(**{f"{self.due_field}__lte": until}).order_by(self.due_field)

    def claim(self, pk: int, now: datetime, **fields: Any) -> datetime | None:
        """Lease entry ``pk`` to the caller (setting ``fields`` in the same conditional UPDATE);
        the lease's end, or None when the entry is not available (leased, or done)."""
        lease = now + self.lease_duration()
        claimed = self.available(now).filter(pk=pk).update(**{self.lease_field: lease}, **fields)
        return lease if claimed else None

    def release(self, pk: int, lease: datetime, **fields: Any) -> int:
        """Give back a claim (``lease``, as ``claim`` returned it) with ``fields``; nothing
        if the lease is no longer the caller's."""
        return self.model._default_manager.filter(pk=pk, **{self.lease_field: lease}).update(
            **{self.lease_field: None}, **fields
        )

    def claim_due(self, now: datetime, limit: int, columns: Sequence[str], **fields: Any) -> list[Any]:
        """Claim up to ``limit`` due entries, the oldest first, by setting ``fields``: one
        locking statement (``SKIP LOCKED``) where the database has it, so concurrent claimers never
        take the same entry. Returns ``columns`` of each claimed entry as they were before the
        claim (a tuple, or the value itself for one column), the oldest first."""
        using = router.db_for_write(self.model)
        flat = len(columns) == 1
        due = self.due(now)
        if not connections[using].features.has_select_for_update_skip_locked:
            # SQLite serialises writers: the conditional UPDATE of each entry is the claim.
            rows = list(due.values_list(*columns, flat=flat)[:limit])
            return [row for row in rows if self.due(now).filter(pk=_pk(row, flat)).update(**fields)]
        if connections[using].vendor == "postgresql":  # an UPDATE ... RETURNING inside a WITH
            return _claim_in_one_statement(self, due, limit, columns, fields, using)
        with transaction.atomic(using=using):
            rows = list(
                due.select_for_update(skip_locked=True, of=("self",)).values_list(*columns, flat=flat)[:limit]
            )
            if rows:
                self.model._default_manager.filter(pk__in=[_pk(row, flat) for row in rows]).update(**fields)
        return rows

    def lease_due(self, now: datetime, limit: int) -> list[int]:
        """Lease up to ``limit`` due entries to the caller (a batch worker); their pks."""
        return self.claim_due(now, limit, ("pk",), **{self.lease_field: now + self.lease_duration()})

    # --- deferral and the retry plan -----------------------------------------------------------

    def defer(self, task: str, pk: int, now: datetime) -> str:
        """The caller found entry ``pk`` unavailable: if another holds it, send ``task(pk)``
        again when that lease ends (``"deferred"``); ``"skipped"`` if the entry is done."""
        lease = (
            self.model._default_manager.filter(self.open(now), pk=pk)
            .values_list(self.lease_field, flat=True)
            .first()
        )
        return after_lease(task, pk, lease, now)

    def retry_plan(self) -> RetryPlan:
        return RetryPlan.from_settings(self.retry_settings)

    # --- sweeping and the health check ------------------------------------------------------

    def hand_out(self, now: datetime, limit: int, columns: Sequence[str] = ("pk",)) -> list[Any]:
        """The due entries a sweep hands to workers: claimed for one lease (their due time
        moves ahead, so another sweep meanwhile leaves them alone) if ``handoff``, else only
        read (the task claims its entry, and finds it leased if sent twice)."""
        if self.handoff:
            return self.claim_due(now, limit, columns, **{self.due_field: now + self.handoff_duration()})
        due = self.due(now, before=now - self.sweep_grace)
        return list(due.values_list(*columns, flat=len(columns) == 1)[:limit])

    def sweep(
        self,
        hand_out: Callable[[datetime], list[Any]],
        send: Callable[[list[Any]], Iterable[int]],
        now: datetime | None = None,
    ) -> int:
        """Under the outbox's sweep lock, ``send`` what ``hand_out(now)`` finds; return how many
        entries were handed out (0 when another sweep holds the lock). ``send`` returns the pks
        whose task could not be sent: a claimed one is due again at once."""
        with dispatch.sweeping(self.name) as mine:
            if not mine:
                return 0
            now = now or timezone.now()
            rows = hand_out(now)
            unsent = list(send(rows)) if rows else []
            if unsent and self.handoff:
                self.model._default_manager.filter(
                    self.open(now), pk__in=unsent, **{self.due_field: now + self.handoff_duration()}
                ).update(**{self.due_field: now})
            return len(rows)

    def backlog(self, now: datetime, overdue_since: datetime) -> tuple[int, int, datetime | None]:
        """``(pending, overdue, oldest)``: open entries, those due since before
        ``overdue_since`` that no worker holds, and the oldest due time among them."""
        pending = self.model._default_manager.filter(self.open(now)).count()
        overdue = self.available(now).filter(**{f"{self.due_field}__lte": overdue_since})
        found = overdue.aggregate(count=Count("pk"), oldest=Min(self.due_field))
        return pending, found["count"], found["oldest"]


def _claim_in_one_statement(
    outbox: Outbox,
    due: QuerySet,
    limit: int,
    columns: Sequence[str],
    fields: dict[str, Any],
    using: str,
) -> list[Any]:
    """``claim_due`` in one round trip, in autocommit (no BEGIN/COMMIT of its own):

        WITH claimed AS (UPDATE t SET <fields> WHERE pk IN (<due pks> LIMIT n FOR UPDATE OF t
        SKIP LOCKED) RETURNING pk) SELECT <columns> FROM t ... WHERE pk IN (SELECT pk FROM
        claimed) ORDER BY <due>

    Every part is the ORM's own SQL (the due queryset, the UPDATE of ``fields``, the
    ``columns`` with their joins), so the outbox's table and conditions keep one definition;
    only the lock clause and the CTE join them. The locked subquery is the claim as before
    (a row another claimer holds is skipped, never waited for nor taken twice); the outer
    SELECT reads the statement's snapshot, so ``columns`` are the values before the claim,
    as the SELECT that preceded the UPDATE returned them, in the same order."""
    connection = connections[using]
    qn = connection.ops.quote_name
    table, pk = qn(outbox.model._meta.db_table), qn(outbox.model._meta.pk.column)
    pick, pick_params = due.values("pk")[:limit].query.get_compiler(using).as_sql()
    lock = connection.ops.for_update_sql(skip_locked=True, of=(table,))
    update = outbox.model._default_manager.filter(pk__in=RawSQL(f"{pick} {lock}", pick_params)).query.chain(
        UpdateQuery
    )
    update.add_update_values(fields)
    update_sql, update_params = update.get_compiler(using).as_sql()
    read = (
        outbox.model._default_manager.filter(pk__in=RawSQL(f"SELECT {pk} FROM claimed", ()))
        .order_by(outbox.due_field)
        .values_list(*columns)
    )
    compiler = read.query.get_compiler(using)
    read_sql, read_params = compiler.as_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH claimed AS ({update_sql} RETURNING {table}.{pk}) {read_sql}",
            (*update_params, *read_params),
        )
        fetched = cursor.fetchall()
    rows = compiler.results_iter(results=[fetched], tuple_expected=True) if fetched else []
    return [row[0] for row in rows] if len(columns) == 1 else [tuple(row) for row in rows]


def _pk(row: Any, flat: bool) -> Any:
    return row if flat else row[0]
