"""One rule for every status column: a change is a single conditional UPDATE.

Each model declares, per target status, the statuses it may be reached from. The UPDATE only
matches a row in one of those, so of two concurrent callers exactly one wins and the loser
sees that it lost; no status is ever overwritten by a stale writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet


def conditional_update(
    rows: QuerySet, field: str, table: Mapping[str, frozenset[str]], to: str, **fields: Any
) -> int:
    """Set ``field`` to ``to`` (and ``fields``) on the rows whose ``field`` may move to ``to``."""
    return rows.filter(**{f"{field}__in": table[to]}).update(**{field: to}, **fields)
