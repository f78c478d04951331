"""Limits that protect the person being asked: pending requests per user and per (client,
user), and a rate per user.

CIBA turns knowing someone's login hint into making their phone ring. The per-client throttle
of the backchannel endpoint bounds what one client sends in all, not what reaches one person,
so before a request is stored ``admit`` checks, for its user:

* **The block list** (``ClientBlock``): the user said "I did not ask for this" and blocked the
  client. Checked on every request, caps or not: one indexed lookup.
* ``MAX_PENDING_PER_USER``: pending, unexpired requests for the user, from every client.
* ``MAX_PENDING_PER_CLIENT_USER``: the same from this client.
* ``USER_REQUEST_RATE``: new requests for the user from every client, in DRF's rate syntax
  (``"20/hour"``).

Each is refused with the same ``access_denied`` (403, CIBA §13, "denied before any user
interaction") and the same description (``REFUSAL``), which says nothing about which limit,
or a block, was met: the client learns only that this user was identified, which ``login_hint``
resolution already told it.

What happens at ``MAX_PENDING_PER_CLIENT_USER`` is ``PENDING_CAP_ACTION``: ``"refuse"`` the new
request, or ``"supersede"``: ``admit`` then admits it with ``Admission.supersede`` set (how many
of this client's oldest pending requests for the user make way), and ``services.create_request``
cancels them (reason ``superseded``) in the same locked transaction that stores the new one. A
supersede replaces the client's own prompts one for one, so it never adds to the user's pending
count: the user-wide cap still refuses a request it would refuse once those are gone (only
when it was lowered below what is pending), and the block list and the rate always refuse.

**No race lets one more through.** The pending counts are read from the database, which is
their only truth (a request stops being pending by approval, denial, expiry or issue, in
whatever process), inside the transaction that then stores the request, after taking a lock
per user: a transaction-scoped advisory lock on PostgreSQL (``pg_try_advisory_xact_lock``,
which blocks no other use of the user's row and works behind PgBouncer in transaction mode),
``SELECT ... FOR UPDATE`` of the user's row on other databases that have it; SQLite serialises
writers by itself. Two requests for one user are thus counted one after the other, whatever
process they reach, and the lock is held until the new row is committed (with the outer
transaction, under ``ATOMIC_REQUESTS``). A request that finds the lock taken reads the counts
without it: if they already refuse it, it is refused at once (right as of that snapshot);
otherwise it tries again a few milliseconds later, so a flood for one user is refused as soon
as a cap is met instead of queueing on the lock into the statement timeout.

**The rate** is counted like the other guards: in the shared cache when every process sees it
(``replay.cache_is_shared()``), in a window aligned to the clock and counted with the cache's
atomic ``add``/``incr`` (as ``ciba.client_auth.guard`` counts failures); otherwise, and whenever
the cache fails, from the database: the user's requests created within the last period, read in
the same statement as the pending counts and exact. Only requests that are then stored count:
a request refused by a cap or a block spends none of the user's rate. A window aligned to the
clock may let up to twice the rate through around its boundary; the database count slides.

Cost: with every cap ``None`` a request costs the block lookup, one round trip more than the
INSERT alone; none for a ``login_hint`` the default resolver finds, whose lookup asks the
block list in the same statement (``block_annotation``). With caps, on PostgreSQL outside an
outer transaction, the INSERT that was its own transaction becomes BEGIN, the lock, one
counting statement (the block, both pending counts and, without a shared cache, the rate),
the INSERT and COMMIT: four round trips more,
plus one to the cache for the rate when it is shared (under an outer transaction: two more,
and the cache's). A rate counted in the cache for a request whose outer transaction then
rolls back stays counted: that errs towards refusing.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connections, router
from django.db.models import BooleanField, Count, Exists, IntegerField, OuterRef, Subquery, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from .conf import ciba_settings
from .errors import AccessDenied
from .models import AuthenticationRequest, ClientBlock
from .replay import cache_is_shared

logger = logging.getLogger("ciba.user_limits")

#: The one description of every refusal here: which limit was met, or that the user blocked
#: the client, is not the client's to learn.
REFUSAL = "The request was refused before reaching the user."

RATE_KEY = "ciba:user-rate:"
#: How long a request for a user whose lock is held polls for it (re-reading the counts)
#: before it queues for the lock.
LOCK_POLL_SECONDS = 1.0
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


#: Why a request was refused, as the operator's log says it (the client only ever sees REFUSAL).
BLOCKED = "blocked by the user"
PENDING_PER_USER = "MAX_PENDING_PER_USER reached"
PENDING_PER_CLIENT_USER = "MAX_PENDING_PER_CLIENT_USER reached"
RATE = "USER_REQUEST_RATE spent"


def refusal(reason: str | None = None, *, client: Any = None, user: Any = None) -> AccessDenied:
    """The ``access_denied`` every limit and block answers with. The client learns nothing from
    it; the operator's log says which limit refused (``reason``), so support can answer "why
    did my customer's payment never ask me?" without guessing."""
    if reason is not None:
        logger.info(
            "Refused a CIBA request before reaching the user: %s (client %s, user %s).",
            reason,
            getattr(client, "client_id", client),
            getattr(user, "pk", user),
        )
    return AccessDenied(REFUSAL)


def caps_set() -> bool:
    """Whether any cap or the rate is on: only then is a request counted (and locked for)."""
    return any(
        value is not None
        for value in (
            ciba_settings.MAX_PENDING_PER_USER,
            ciba_settings.MAX_PENDING_PER_CLIENT_USER,
            ciba_settings.USER_REQUEST_RATE,
        )
    )


@lru_cache(maxsize=16)
def parse_rate(rate: str) -> tuple[int, int]:
    """``"20/hour"`` → (20 requests, per 3600 s); DRF's syntax (only the period's first letter
    counts). Raises ``ValueError`` on anything else."""
    count, _, period = str(rate).partition("/")
    seconds = _PERIODS.get(period.strip()[:1].lower())
    if seconds is None or not count.strip().isdigit():
        raise ValueError(f"USER_REQUEST_RATE must look like '20/hour', not {rate!r}")
    return int(count), seconds


# --- the block list ---------------------------------------------------------------------------


def is_blocked(user: Any, client: Any) -> bool:
    """Whether ``user`` blocked ``client`` from asking them."""
    return ClientBlock.objects.filter(user=user, client=client).exists()


#: The name of the block-list answer in the user lookup's own query (``block_annotation``).
BLOCKED_ANNOTATION = "ciba_blocked_client"
#: Where ``keep_block_answer`` leaves that answer on the user, with the client it is about.
_BLOCK_ANSWER = "_ciba_block_answer"


def block_annotation(client: Any) -> dict[str, Any]:
    """The block-list check as an annotation of the query that finds the user
    (``identifiers.find_user(hint, annotations=...)``): the check is made at the time of the
    request as ever, in the lookup's round trip instead of one of its own (issue 29: the
    round trips, not the queries, are what a new request waits for). Nothing when the user
    model and the block list are read from different databases (a subquery cannot join them)
    or ``client`` is not stored (or the user model is not the one the block list points
    to): ``check_block`` then asks the database itself."""
    pk = getattr(client, "pk", None)
    if pk is None:
        return {}
    user_model = get_user_model()
    using = router.db_for_read(user_model)
    if (
        using != router.db_for_read(ClientBlock)
        or ClientBlock._meta.get_field("user").related_model is not user_model
    ):
        return {}
    connection = connections[using]
    value = ClientBlock._meta.get_field("client").get_db_prep_value(pk, connection)
    return {BLOCKED_ANNOTATION: RawSQL(_block_sql(using, user_model._meta.label), [value], BooleanField())}


@lru_cache(maxsize=8)
def _block_sql(using: str, user_model_label: str) -> str:
    """``EXISTS`` over the block list for the outer query's user and one client (the one
    parameter), written once per database and user model from the models' own tables and
    columns. Written out, not as ``Exists(...)``: the ORM's resolution of a correlated
    subquery cost more CPU per request (0.4 ms here) than the whole query it replaces."""
    quote = connections[using].ops.quote_name
    user_field = ClientBlock._meta.get_field("user")
    user_model = user_field.related_model
    block = quote("ciba_block")  # an alias of its own: never one the ORM gives the outer query
    return (
        f"EXISTS (SELECT 1 FROM {quote(ClientBlock._meta.db_table)} {block}"
        f" WHERE {block}.{quote(ClientBlock._meta.get_field('client').column)} = %s"
        f" AND {block}.{quote(user_field.column)}"
        f" = {quote(user_model._meta.db_table)}.{quote(user_field.target_field.column)})"
    )


def keep_block_answer(user: Any, client: Any) -> None:
    """Keep the answer of ``block_annotation(client)`` that the lookup set on ``user`` for the
    next ``check_block`` of this request, tied to ``client``. ``check_block`` uses it once:
    the attribute is removed when read, so a user instance a site might keep beyond the
    request is asked about again, never answered from an old lookup."""
    answer = user.__dict__.pop(BLOCKED_ANNOTATION, None)
    if answer is not None:
        user.__dict__[_BLOCK_ANSWER] = (client.pk, bool(answer))


def _kept_block_answer(user: Any, client: Any) -> bool | None:
    kept = getattr(user, "__dict__", {}).pop(_BLOCK_ANSWER, None)
    if kept is None or kept[0] != getattr(client, "pk", None):
        return None
    return kept[1]


def block(user: Any, client: Any, *, reported_request: Any = None) -> ClientBlock:
    """Block ``client`` from asking ``user`` (idempotent: an existing block is kept as it was,
    with the request first reported)."""
    row, _ = ClientBlock.objects.get_or_create(
        user=user, client=client, defaults={"reported_request": reported_request}
    )
    return row


def unblock(user: Any, client: Any) -> bool:
    """Let ``client`` ask ``user`` again; True if it was blocked."""
    return ClientBlock.objects.filter(user=user, client=client).delete()[0] > 0


def check_block(*, client: Any, user: Any) -> None:
    """The uncapped path's only check: ``refusal()`` when ``user`` blocked ``client``; the
    answer of the user lookup of this request when it brought one (``keep_block_answer``),
    else one query."""
    blocked = _kept_block_answer(user, client)
    if blocked is None:
        blocked = is_blocked(user, client)
    if blocked:
        raise refusal(BLOCKED, client=client, user=user)


# --- the caps ---------------------------------------------------------------------------------


@dataclass
class Admission:
    """The verdict of ``admit``: ``admitted`` or refused (raise ``refusal()`` once outside the
    transaction: an exception inside one without a savepoint would spoil an outer one). If
    storing an admitted request fails, ``give_back`` its place in the rate."""

    admitted: bool
    rate_key: str | None = None
    #: Why it was refused (one of BLOCKED, PENDING_PER_USER, ...), for the operator's log
    reason: str | None = None
    #: With ``PENDING_CAP_ACTION="supersede"``: how many of the client's oldest pending
    #: requests for the user to cancel before storing the new one (0: none).
    supersede: int = 0

    def give_back(self) -> None:
        if self.rate_key is not None:
            _safely_decr(self.rate_key)
            self.rate_key = None


def admit(*, client: Any, user: Any, now: datetime) -> Admission:
    """Lock ``user``'s requests, then check the block list and every cap. Call inside the
    transaction that then stores the request (the lock is held until it ends), only when
    ``caps_set()``; nothing is written to the database.

    When another request for the user holds the lock, a snapshot read without it that already
    shows a cap met (or the block) refuses at once: the refusal is right as of that snapshot.
    A request the snapshot may admit tries again shortly (and reads a new snapshot) rather
    than queue on the lock: a flood for one user would queue there behind every other
    request, into the statement timeout, where polling sees the cap met as soon as it is.
    After ``LOCK_POLL_SECONDS`` it waits in the queue after all.
    """
    using = router.db_for_write(AuthenticationRequest)
    rate = ciba_settings.USER_REQUEST_RATE
    allowed, period = parse_rate(rate) if rate is not None else (0, 0)
    in_cache = rate is not None and cache_is_shared()
    since = now - timedelta(seconds=period)
    db_since = None if rate is None or in_cache else since
    key = _rate_key(user, period, now) if in_cache else None
    waited, attempt = 0.0, 0
    while not try_lock_user(user, using=using):
        snapshot = _counts(client, user, now, using=using, since=db_since)
        refused = _refused(snapshot, allowed)
        if refused is None and key is not None and (_safely_get(key) or 0) >= allowed:
            refused = RATE
        if refused is not None:
            return Admission(admitted=False, reason=refused)
        if waited >= LOCK_POLL_SECONDS:
            lock_user(user, using=using)  # bounded by the statement timeout
            break
        pause = min(0.05, 0.002 * 2**attempt) * (0.5 + random.random())  # 2 ms, doubling, jittered
        time.sleep(pause)
        waited, attempt = waited + pause, attempt + 1
    counts = _counts(client, user, now, using=using, since=db_since)
    refused = _refused(counts, allowed)
    if refused is not None:
        return Admission(admitted=False, reason=refused)
    supersede = _superseded(counts)
    if key is None:
        return Admission(admitted=True, supersede=supersede)
    count = count_in_window(key, period, counting="User request rate (the database counts it)")
    if count is None:  # the cache failed: the database knows every request stored
        recent = _counts(client, user, now, using=using, since=since)["recent"]
        if recent >= allowed:
            return Admission(admitted=False, reason=RATE)
        return Admission(admitted=True, supersede=supersede)
    if count > allowed:
        _safely_decr(key)  # a refused request spends none of the user's rate
        return Admission(admitted=False, reason=RATE)
    return Admission(admitted=True, rate_key=key, supersede=supersede)


def supersedes() -> bool:
    """Whether ``PENDING_CAP_ACTION`` makes a new request at the (client, user) cap replace
    the client's oldest pending one instead of being refused."""
    return ciba_settings.PENDING_CAP_ACTION == "supersede"


def try_lock_user(user: Any, *, using: str) -> bool:
    """Take ``user``'s lock if it is free (PostgreSQL); elsewhere take it, waiting. False: it
    is held by another transaction."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [advisory_key(user.pk)])
            return bool(cursor.fetchone()[0])
    lock_user(user, using=using)
    return True


def lock_user(user: Any, *, using: str) -> None:
    """Serialise the requests for ``user`` until the current transaction ends."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_key(user.pk)])
    elif connection.features.has_select_for_update:
        list(get_user_model().objects.using(using).select_for_update().filter(pk=user.pk).values_list("pk"))
    # SQLite: a write transaction holds the database, writers are serialised already.


def advisory_key(pk: Any) -> int:
    """A signed 64-bit lock id for the user ``pk`` (any type of primary key), in a namespace
    of its own: no other lock of the site takes the same id by chance it could notice."""
    digest = hashlib.sha256(f"ciba.user_limits:{pk}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _counts(client: Any, user: Any, now: datetime, *, using: str, since: datetime | None) -> dict[str, Any]:
    """One statement: whether ``user`` blocked ``client``, their pending, unexpired requests
    from all clients and from ``client``, and (with ``since``) those created after it."""
    requests = (
        AuthenticationRequest.objects.using(using).filter(user=OuterRef("pk")).order_by().values("user")
    )
    pending = requests.filter(state=AuthenticationRequest.State.PENDING, expires_at__gt=now)

    def counted(rows: Any) -> Coalesce:
        return Coalesce(
            Subquery(rows.annotate(n=Count("pk")).values("n")[:1]), Value(0), output_field=IntegerField()
        )

    fields: dict[str, Any] = {
        "blocked": Exists(ClientBlock.objects.using(using).filter(user=OuterRef("pk"), client=client)),
        "pending": counted(pending),
        "pending_here": counted(pending.filter(client=client)),
    }
    if since is not None:
        fields["recent"] = counted(requests.filter(created_at__gt=since))
    row = get_user_model().objects.using(using).filter(pk=user.pk).annotate(**fields).values(*fields).first()
    return row or dict.fromkeys(fields, 0)


def _refused(counts: dict[str, Any], allowed: int) -> str | None:
    """Why ``counts`` refuse a new request (a block, a cap met, or, counted in the database,
    the rate spent), or ``None`` when they admit it."""
    if counts["blocked"]:
        return BLOCKED
    if "recent" in counts and counts["recent"] >= allowed:
        return RATE
    per_client_user = ciba_settings.MAX_PENDING_PER_CLIENT_USER
    if per_client_user is not None and counts["pending_here"] >= per_client_user:
        if not supersedes() or per_client_user < 1:  # a cap of 0 leaves nothing to replace
            return PENDING_PER_CLIENT_USER
    per_user = ciba_settings.MAX_PENDING_PER_USER
    if per_user is not None and counts["pending"] - _superseded(counts) >= per_user:
        return PENDING_PER_USER
    return None


def _superseded(counts: dict[str, Any]) -> int:
    """How many of the client's oldest pending requests an admitted request supersedes: 0
    unless ``supersedes()`` and the (client, user) cap is met, else enough to bring the client
    one below that cap (should it have been lowered)."""
    per_client_user = ciba_settings.MAX_PENDING_PER_CLIENT_USER
    if not supersedes() or per_client_user is None or per_client_user < 1:
        return 0
    return max(0, counts["pending_here"] - per_client_user + 1)


def _rate_key(user: Any, period: int, now: datetime) -> str:
    index = math.floor(now.timestamp() // period)
    digest = hashlib.sha256(str(user.pk).encode()).hexdigest()[:32]
    return f"{RATE_KEY}{digest}:{period}:{index}"


def count_in_window(key: str, period: int, *, counting: str) -> int | None:
    """Count one in the cache key ``key`` of a clock-aligned window of ``period`` seconds (the
    key lives a little longer than its window) and return the count; ``None`` when the cache
    fails, logged as ``counting`` not counted. The rate here and the passkey sign-in rate
    (``ciba.passkeys.sign_in``) both count this way."""
    try:
        if cache.add(key, 1, period + 1):
            return 1
        try:
            return int(cache.incr(key))
        except ValueError:  # expired between add() and incr()
            cache.add(key, 1, period + 1)
            return 1
    except Exception as exc:  # noqa: BLE001 - any cache failure: the caller decides what then
        logger.warning("%s not counted in the cache: it failed (%s)", counting, type(exc).__name__)
        return None


def _safely_get(key: str) -> int | None:
    try:
        return cache.get(key)
    except Exception:  # noqa: BLE001 - unknown: the locked path decides
        return None


def _safely_decr(key: str) -> None:
    try:
        cache.decr(key)
    except Exception:  # noqa: BLE001 - the window ends soon; an uncounted give-back refuses more, never fewer
        pass
