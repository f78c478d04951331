"""Client rows kept in each process, re-read whenever the client changes anywhere.

Every backchannel request and every token request loads the client by ``client_id``; the
ORM query costs more than the rest of client authentication. With a shared poll state
(``RedisPollState``) each process keeps the rows it loaded and checks a per-client version
stamp in Redis on every use (one GET, far cheaper than the query). Saving or deleting a
client changes the stamp after the commit (``ciba.polling.stamps``), so the next
request anywhere reads the new row. Changes that bypass model signals (``QuerySet.update()``,
raw SQL) are picked up within ``MAX_AGE`` seconds. Without a shared poll state, or when
Redis does not answer, every load is a query, as before.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from oauth2_provider.models import get_application_model

from ..polling import poll_state

#: Longest a cached row is used without being re-read, even if its stamp never changes.
MAX_AGE = 60.0
#: Clients kept per process; past this the cache starts over (client ids are few).
MAX_ENTRIES = 1024

_rows: dict[str, tuple[bytes, float, Any]] = {}


def load_client(client_id: str) -> Any:
    """The application with ``client_id``, or ``None``; a copy callers may modify freely."""
    if not client_id:
        return None
    version = poll_state().client_version(client_id)
    if version is None:
        return _query(client_id)
    now = time.monotonic()
    hit = _rows.get(client_id)
    if hit is not None and hit[0] == version and now - hit[1] < MAX_AGE:
        return copy.copy(hit[2])
    client = _query(client_id)
    if client is None:
        _rows.pop(client_id, None)  # unknown ids are not cached: there could be any number
        return None
    if len(_rows) >= MAX_ENTRIES:
        _rows.clear()
    _rows[client_id] = (version, now, client)
    return copy.copy(client)


def clear() -> None:
    _rows.clear()


def drop(client_id: str) -> None:
    """Re-read this client's row on its next use, in this process only (it changed lately)."""
    _rows.pop(client_id, None)


def forget_client(client_id: str) -> None:
    """Stop trusting what every process knows of a client changed without its model signals.

    Saving or deleting a client does this after the commit. A secret rotated with
    ``QuerySet.update()`` or raw SQL would otherwise keep answering pending polls from Redis
    for up to ``CLIENT_SECRET_CACHE_SECONDS`` and other requests for up to ``MAX_AGE``: call
    this after such a change commits.
    """
    _rows.pop(client_id, None)
    poll_state().forget_client(client_id)


def _query(client_id: str) -> Any:
    return get_application_model().objects.filter(client_id=client_id).first()
