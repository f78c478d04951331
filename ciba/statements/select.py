"""A ``SELECT`` compiled once per database and shape, run with each call's values.

``CompiledSelect(model, shape)`` stands for ``shape(model._default_manager.all(), *values)``:
``fetch(*values)`` returns the list that queryset would, with the same SQL and parameters,
``select_related`` objects and annotations, and the database's and fields' converters applied.

The first call for a database and a kind of values builds the queryset with *stand-ins* (a
unique ``str``, ``int`` or aware ``datetime`` object per value) and compiles it; each stand-in
must then appear in the compiled parameters as the very object given, with no changed copy of
it anywhere else (a lookup that prepares the value — casts, escapes, wraps it — makes a new
object, and the statement is not used), and every condition must be Django's own lookup on a
field that prepares values as Django's fields do (a field of a site's own could change some
values and leave the stand-in alone): ``_proof`` holds these rules for both statements. The shape
must depend on its arguments only: anything else it reads (the time, a setting) would be frozen
into the statement. Whatever cannot be proven this way — a manager or queryset class of a
site's own, ``prefetch_related``, ``values()``, ``select_for_update``, an empty result decided
at compile time, a value of another type — is built and run by the ORM on every call, as
before.

``along(select, *values)`` sends a read with the next compiled ``SELECT`` of the block on the
same PostgreSQL database, in one statement and so one round trip: a view that will read a row
after a query it cannot change (DOT's token lookup, deep inside oauthlib) has it read with that
query instead of one round trip later (issue 29). Only where statements are prepared (planned
once per connection, ``_plans_once``); elsewhere nothing rides along, and the caller reads it
as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections, router
from django.db.models import Model, QuerySet
from django.db.models.query import ModelIterable, get_related_populators

from ._proof import django_lookups, plain_manager, slots, stand_ins

Shape = Callable[..., QuerySet]


@dataclass(frozen=True)
class _Prepared:
    sql: str
    template: tuple[Any, ...]
    #: (position in the parameters, index of the call's value)
    slots: tuple[tuple[int, int], ...]
    model: type[Model]
    init_list: tuple[str, ...]
    fields: slice
    populators: tuple[Any, ...]
    annotation_columns: tuple[tuple[str, int], ...]
    #: (column position, expression) of the columns whose values converters turn into Python's.
    converted: tuple[tuple[int, Any], ...]
    #: How many columns the statement answers.
    width: int


class CompiledSelect:
    """``shape(model._default_manager.all(), *values)``, compiled once (see the module)."""

    def __init__(self, model: type[Model] | Callable[[], type[Model]], shape: Shape) -> None:
        self._model = model
        self._shape = shape
        #: (database, model, kinds of the values) -> the statement, or None: let the ORM run it.
        self._prepared: dict[tuple[Any, ...], _Prepared | None] = {}
        self._lock = threading.Lock()

    def model(self) -> type[Model]:
        model = self._model
        return model if isinstance(model, type) else model()

    def queryset(self, *values: Any) -> QuerySet:
        """The queryset this statement stands for, built by the ORM."""
        return self._shape(self.model()._default_manager.all(), *values)

    def fetch(self, *values: Any) -> list[Any]:
        model = self.model()
        using = router.db_for_read(model)
        prepared = self._prepared_for(model, using, values)
        if prepared is None:
            return list(self.queryset(*values).using(using))
        return _run(prepared, using, values)

    def _prepared_for(self, model: type[Model], using: str, values: tuple[Any, ...]) -> _Prepared | None:
        key = (using, model, tuple(type(value) for value in values))
        try:
            return self._prepared[key]
        except KeyError:
            prepared = self._prepare(model, using, values)
            with self._lock:
                if len(self._prepared) < 32:  # kinds of values are few; never grow without bound
                    self._prepared[key] = prepared
            return prepared

    def first(self, *values: Any) -> Any | None:
        found = self.fetch(*values)
        return found[0] if found else None

    def _prepare(self, model: type[Model], using: str, values: tuple[Any, ...]) -> _Prepared | None:
        manager = plain_manager(model)
        made = stand_ins(values)
        if manager is None or made is None:
            return None
        try:
            queryset = self._shape(manager.all(), *made).using(using)
        except (TypeError, ValueError):
            return None  # a stand-in the field refuses: a value of another kind than it expects
        query = queryset.query
        if (
            type(queryset) is not manager._queryset_class
            or queryset._iterable_class is not ModelIterable
            or queryset._prefetch_related_lookups
            or queryset._known_related_objects
            or query.select_for_update
            or query.combinator
        ):
            return None
        if not django_lookups(query.where):
            return None
        compiler = query.get_compiler(using=using)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            return None
        if not sql or compiler.has_extra_select:
            return None
        found = slots(tuple(params), made)
        if found is None:
            return None  # a value was prepared on its way (cast, escaped): not as given
        info = compiler.klass_info
        if info is None or compiler.query.extra_select:
            return None
        select = compiler.select
        columns = [expression for expression, _, _ in select[: compiler.col_count]]
        if compiler.has_composite_fields(columns):
            return None
        first, last = info["select_fields"][0], info["select_fields"][-1] + 1
        connection = compiler.connection
        return _Prepared(
            sql=sql,
            template=tuple(params),
            slots=found,
            model=info["model"],
            init_list=tuple(column.target.attname for column in columns[first:last]),
            fields=slice(first, last),
            populators=tuple(get_related_populators(info, select, using)),
            annotation_columns=tuple(compiler.annotation_col_map.items()),
            converted=tuple(
                (position, expression)
                for position, expression in enumerate(columns)
                if connection.ops.get_db_converters(expression) or expression.get_db_converters(connection)
            ),
            width=len(select),
        )


class Along:
    """A read sent along with another statement (``along``): its objects in ``rows`` once it
    went, ``None`` while it has not (or could not: the caller then reads it itself)."""

    def __init__(self, select: CompiledSelect, values: tuple[Any, ...]) -> None:
        self.select, self.values = select, values
        self.rows: list[Any] | None = None
        #: A compiled SELECT ran in the block: the one chance to ride along is spent.
        self.spent = False


_along: ContextVar[Along | None] = ContextVar("ciba_statements_along", default=None)


@contextmanager
def along(select: CompiledSelect, *values: Any) -> Iterator[Along]:
    """Within the block, send ``select.fetch(*values)`` with the first compiled ``SELECT`` that
    runs, as one statement, when both read the same PostgreSQL database; the yielded ``Along``
    then holds its objects. The read is the one ``fetch`` would make, only sooner: a caller
    must check what it finds as it would check ``fetch``'s answer (the row's owner, say),
    because the statement it rode with may be one whose caller is then refused. Where it
    cannot ride (another database, statements planned at every run, a statement the ORM runs,
    either finding more than one row), ``rows`` stays ``None``."""
    ahead = Along(select, values)
    token = _along.set(ahead)
    try:
        yield ahead
    finally:
        _along.reset(token)


def _run(prepared: _Prepared, using: str, values: tuple[Any, ...]) -> list[Any]:
    connection = connections[using]
    ahead = _along.get()
    if ahead is not None and not ahead.spent:
        ahead.spent = True
        other = _rider(ahead, using, connection)
        together = _run_together(connection, prepared, values, other, ahead.values) if other else None
        if together is not None:
            ahead.rows = _objects(other, using, connection, together[1])  # type: ignore[arg-type]
            return _objects(prepared, using, connection, together[0])
    with connection.cursor() as cursor:
        cursor.execute(prepared.sql, _params(prepared, values))
        rows = cursor.fetchall()
    return _objects(prepared, using, connection, rows)


def _rider(ahead: Along, using: str, connection: Any) -> _Prepared | None:
    """The compiled statement of the read riding along, where it can ride on ``using``."""
    model = ahead.select.model()
    if connection.vendor != "postgresql" or router.db_for_read(model) != using or not _plans_once(connection):
        return None
    return ahead.select._prepared_for(model, using, ahead.values)


def _plans_once(connection: Any) -> bool:
    """Whether PostgreSQL plans this connection's hot statements once (parameters bound on the
    server, and psycopg preparing them: ``DATABASE_PREPARED_STATEMENTS`` in the example). The
    joined statement takes longer to plan than the round trip it saves takes to travel, so
    where every statement is planned afresh it would cost more than it saves (docs/performance.md,
    the seventh stop)."""
    if not connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"):
        return False
    connection.ensure_connection()
    return getattr(connection.connection, "prepare_threshold", None) is not None


def _run_together(
    connection: Any,
    first: _Prepared,
    first_values: tuple[Any, ...],
    second: _Prepared,
    second_values: tuple[Any, ...],
) -> tuple[list[Any], list[Any]] | None:
    """Both statements' rows from one statement: each a ``LATERAL`` subquery beside the other,
    its rows marked found, so one row carries both answers (a side's columns all ``NULL`` and
    unmarked when it found nothing). ``None`` when either found more than one row (the rows
    would come as a cross product): the caller then runs its own statement alone, and the
    rider is read by its caller."""
    sql = (
        "SELECT * FROM (SELECT 1) AS ciba_one"
        f" LEFT JOIN LATERAL (SELECT true AS ciba_found, q.* FROM ({first.sql}) AS q) AS ciba_first ON true"
        f" LEFT JOIN LATERAL (SELECT true AS ciba_found, q.* FROM ({second.sql}) AS q) AS ciba_second ON true"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(first, first_values) + _params(second, second_values))
        rows = cursor.fetchall()
    if len(rows) != 1:
        return None
    (row,) = rows
    second_at = 2 + first.width  # after the constant, the first's mark and its columns
    mine = [row[2:second_at]] if row[1] is not None else []
    theirs = [row[second_at + 1 : second_at + 1 + second.width]] if row[second_at] is not None else []
    return mine, theirs


def _params(prepared: _Prepared, values: tuple[Any, ...]) -> list[Any]:
    params = list(prepared.template)
    for position, index in prepared.slots:
        params[position] = values[index]
    return params


def _objects(prepared: _Prepared, using: str, connection: Any, rows: list[Any]) -> list[Any]:
    found = []
    for row in rows:
        if prepared.converted:
            row = list(row)
            for position, expression in prepared.converted:
                value = row[position]
                for converter in [
                    *connection.ops.get_db_converters(expression),
                    *expression.get_db_converters(connection),
                ]:
                    value = converter(value, expression, connection)
                row[position] = value
        obj = prepared.model.from_db(using, prepared.init_list, row[prepared.fields])
        for populator in prepared.populators:
            populator.populate(row, obj)
        for name, position in prepared.annotation_columns:
            setattr(obj, name, row[position])
        found.append(obj)
    return found
