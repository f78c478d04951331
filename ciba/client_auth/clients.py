"""Client rows kept in each process, re-read whenever the client changes anywhere.

Every backchannel request and every token request loads the client by ``client_id``; the
ORM query costs more than the rest of client authentication. With a shared poll state
(``RedisPollState``) each process keeps the rows it loaded and checks a per-client version
stamp in Redis (one GET, far cheaper than the query), at most once every ``STAMP_MAX_AGE``
seconds per client: a busy client's requests within that second use the row without asking
Redis (issue 29: the GET was one round trip per backchannel request). Saving or deleting a
client changes the stamp after the commit (``ciba.polling.stamps``), so the next request
anywhere else reads the new row within ``STAMP_MAX_AGE``; the process that saved or deleted it
forgets its rows at the commit (``_forget_here``), so it reads the new row at once. Changes that
bypass model signals (``QuerySet.update()``, raw SQL) are picked up within ``MAX_AGE`` seconds,
or, after ``forget_client``, at once here and within ``STAMP_MAX_AGE`` elsewhere. Without a
shared poll state, or when Redis does not answer, every load is a query, as before.
"""

from __future__ import annotations

import copy
import threading
from time import monotonic
from typing import Any

from django.db import router, transaction
from django.db.models.signals import post_delete, post_save
from oauth2_provider.models import get_application_model

from ..polling import poll_state

#: Longest a cached row is used without being re-read, even if its stamp never changes.
MAX_AGE = 60.0
#: Longest a client's version stamp, once read from Redis, is trusted without reading it again:
#: a client saved, rotated or deleted in another process is seen here within this many seconds
#: (in the process that made the change, at once).
STAMP_MAX_AGE = 1.0
#: Clients kept per process; past this the cache starts over (client ids are few).
MAX_ENTRIES = 1024

#: client_id -> (version stamp, when the row was read, when the stamp was read, row)
_rows: dict[str, tuple[bytes, float, float, Any]] = {}
_lock = threading.Lock()
#: Changes each time this process forgets rows: a load that began before does not keep its row.
_generation = 0


def load_client(client_id: str) -> Any:
    """The application with ``client_id``, or ``None``; a copy callers may modify freely."""
    if not client_id:
        return None
    now = monotonic()
    hit = _rows.get(client_id)
    if hit is not None and now - hit[2] < STAMP_MAX_AGE and now - hit[1] < MAX_AGE:
        return copy.copy(hit[3])
    generation = _generation
    version = poll_state().client_version(client_id)
    if version is None:
        return _query(client_id)
    if hit is not None and hit[0] == version and now - hit[1] < MAX_AGE:
        _keep(client_id, generation, (version, hit[1], now, hit[3]))
        return copy.copy(hit[3])
    client = _query(client_id)
    if client is None:
        _rows.pop(client_id, None)  # unknown ids are not cached: there could be any number
        return None
    _keep(client_id, generation, (version, now, now, client))
    return copy.copy(client)


def clear() -> None:
    _forget_here()


def drop(client_id: str) -> None:
    """Re-read this client's row on its next use, in this process only (it changed lately)."""
    global _generation
    with _lock:
        _generation += 1
        _rows.pop(client_id, None)


def forget_client(client_id: str) -> None:
    """Stop trusting what every process knows of a client changed without its model signals.

    Saving or deleting a client does this after the commit. A secret rotated with
    ``QuerySet.update()`` or raw SQL would otherwise keep answering pending polls from Redis
    for up to ``CLIENT_SECRET_CACHE_SECONDS`` and other requests for up to ``MAX_AGE``: call
    this after such a change commits. This process forgets the row at once, the others within
    ``STAMP_MAX_AGE``.
    """
    drop(client_id)
    poll_state().forget_client(client_id)


def _keep(client_id: str, generation: int, entry: tuple[bytes, float, float, Any]) -> None:
    """Cache ``entry`` unless this process forgot rows since the load began (its row or stamp
    may be older than the change)."""
    with _lock:
        if generation != _generation:
            return
        if len(_rows) >= MAX_ENTRIES:
            _rows.clear()
        _rows[client_id] = entry


def watch_changes(model: Any) -> None:
    """Forget this process's rows when it saves or deletes a ``model`` row (``_forget_here``).

    Connected by ``ciba.apps`` at startup, before any row is cached, so no cached row can miss a
    change made here. (``ciba.polling.stamps`` changes the stamp for the other processes; it
    cannot reach this cache, which sits in a layer above it.)
    """
    post_save.connect(_changed, sender=model, weak=False, dispatch_uid="ciba.client_auth.clients.save")
    post_delete.connect(_changed, sender=model, weak=False, dispatch_uid="ciba.client_auth.clients.delete")


def _changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    """After the commit: forgetting earlier would let a concurrent request re-read (and keep)
    the old row. Every row, not only this client's: the admin can change a client's id."""
    transaction.on_commit(_forget_here, using=router.db_for_write(sender))


def _forget_here() -> None:
    global _generation
    with _lock:
        _generation += 1
        _rows.clear()


def _query(client_id: str) -> Any:
    return get_application_model().objects.filter(client_id=client_id).first()
