"""One rule for every status column: a change is a single conditional UPDATE.

Each model declares, per target status, the statuses it may be reached from. The UPDATE only
matches a row in one of those, so of two concurrent callers exactly one wins and the loser
sees that it lost; no status is ever overwritten by a stale writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import router
from django.db.models import Model, QuerySet

from ..statements.update import CompiledUpdate


def conditional_update(
    rows: QuerySet, field: str, table: Mapping[str, frozenset[str]], to: str, **fields: Any
) -> int:
    """Set ``field`` to ``to`` (and ``fields``) on the rows whose ``field`` may move to ``to``."""
    return rows.filter(**{f"{field}__in": table[to]}).update(**{field: to}, **fields)


class CompiledTransitions:
    """``conditional_update`` of one row by primary key, its ``UPDATE`` compiled once per
    target status (``ciba.statements.update``): the hot transitions (a callback recorded, a
    request issued) no longer build and compile it on every call. ``extra`` gives the
    conditions beyond the status's, from the call's values (a time compared with the row's).
    Used only on an unfiltered queryset of the model's default manager; any other, or
    assignments the compiled statement cannot take (expressions), go through the ORM."""

    def __init__(self, model: type[Model], field: str, table: Mapping[str, frozenset[str]]) -> None:
        self._model = model
        self._field = field
        self._table = table
        self._statements: dict[Any, CompiledUpdate] = {}

    def apply(
        self, rows: QuerySet, pk: Any, to: str, *, extra: Any = None, expressions: Any = None, **fields: Any
    ) -> int:
        """``conditional_update(rows.filter(pk=pk) + extra, field, table, to, **fields)``, with
        ``expressions(pk, *extra values)`` assigned too (``fields`` win over them)."""
        values = () if extra is None else extra[1]
        if not _unfiltered(rows):
            rows = rows.filter(pk=pk)
            if extra is not None:
                rows = extra[0](rows, *values)
            derived = expressions(pk, *values) if expressions is not None else {}
            return conditional_update(rows, self._field, self._table, to, **{**derived, **fields})
        return self._statement(to, extra).update((pk, *values), {self._field: to, **fields}, expressions)

    def statement(
        self, rows: QuerySet, pk: Any, to: str, *, extra: Any = None, expressions: Any = None, **fields: Any
    ) -> tuple[str, list[Any]] | None:
        """The SQL and parameters ``apply`` would send (``CompiledUpdate.statement``), to be
        sent as part of a larger statement; None when ``apply`` would go through the ORM."""
        if not _unfiltered(rows):
            return None
        values = () if extra is None else extra[1]
        return self._statement(to, extra).statement(
            (pk, *values), {self._field: to, **fields}, expressions, using=router.db_for_write(self._model)
        )

    def _statement(self, to: str, extra: Any) -> CompiledUpdate:
        key = (to, None if extra is None else extra[0])
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = CompiledUpdate(self._model, self._shape(to, extra))
        return statement

    def _shape(self, to: str, extra: Any) -> Any:
        condition = {f"{self._field}__in": self._table[to]}

        def shape(rows: QuerySet, pk: Any, *values: Any) -> QuerySet:
            rows = rows.filter(pk=pk)
            if extra is not None:
                rows = extra[0](rows, *values)
            return rows.filter(**condition)

        return shape


def _unfiltered(rows: QuerySet) -> bool:
    """Whether ``rows`` is the model's default manager's whole table, nothing narrowed."""
    query = rows.query
    return (
        not query.where.children
        and rows._db is None
        and not rows._hints
        and not query.is_sliced
        and type(rows) is rows.model._default_manager._queryset_class
    )
