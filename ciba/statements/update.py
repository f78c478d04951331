"""A conditional ``UPDATE`` of plain values, compiled once per database and shape.

``CompiledUpdate(model, shape).update(values, assignments)`` does what
``shape(model._default_manager.all(), *values).update(**assignments)`` does and returns the
same row count: the same SQL, each assigned value prepared by its own field's
``get_db_prep_save`` on every call (as ``SQLUpdateCompiler`` does), and an outer transaction
spoiled by an error (``mark_for_rollback_on_error``), as ``QuerySet.update`` does.

The conditions' values (``values``: ``str``, ``int`` or aware ``datetime``) are found again in
the compiled parameters as stand-ins, by identity, as ``select.CompiledSelect`` finds them,
with its rules: only Django's own lookups on fields preparing values as Django's do, and no
copy of a stand-in left anywhere else in the parameters (a value used twice must reach the
database unchanged both times). An assignment's SQL depends only on which values are ``None``
(``= NULL``), so those are part of the shape. Expressions of the values are given as a function
of them (``expressions``), built from the stand-ins once. Left to ``QuerySet.update`` on every
call: expressions given as values (``F()``, ``Case``), model instances other than a foreign
key's row (its key is sent, as the compiler sends it), a field with ``get_placeholder`` (but
a ``BinaryField`` where its placeholder is a plain ``%s``: all databases but MySQL) or a
preparation of its own, a manager or queryset class of a site's own, a condition across a join,
a database that would change a stand-in (SQLite turns datetimes into text), and any shape whose
conditions are empty at compile time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections, router, transaction
from django.db.models import Model, QuerySet
from django.db.models.sql import UpdateQuery

from ._proof import (
    PREPARING,
    django_lookups,
    plain_manager,
    plain_placeholder,
    slots,
    stand_ins,
)

Shape = Callable[..., QuerySet]


@dataclass(frozen=True)
class _Prepared:
    sql: str
    #: The assigned fields whose value is not None, in the statement's order (one ``%s`` each).
    fields: tuple[Any, ...]
    #: The conditions' parameters, stand-ins included.
    template: tuple[Any, ...]
    #: (position in ``template``, index of the call's value)
    slots: tuple[tuple[int, int], ...]


class CompiledUpdate:
    """``shape(model._default_manager.all(), *values).update(**assignments)``, compiled once
    (see the module)."""

    def __init__(self, model: type[Model], shape: Shape) -> None:
        self._model = model
        self._shape = shape
        self._prepared: dict[tuple[Any, ...], _Prepared | None] = {}
        self._lock = threading.Lock()

    def queryset(self, *values: Any) -> QuerySet:
        """The queryset this statement updates, built by the ORM."""
        return self._shape(self._model._default_manager.all(), *values)

    def update(
        self,
        values: tuple[Any, ...],
        assignments: Mapping[str, Any],
        expressions: Callable[..., Mapping[str, Any]] | None = None,
    ) -> int:
        """The number of rows updated, as ``QuerySet.update`` returns it.

        ``expressions(*values)`` (a module-level function: it is part of the shape) gives
        assignments that are expressions of the values (a ``Case`` on the time, say); built
        from stand-ins once, their parameters are found again as the conditions' are. An
        assignment of the same column wins over an expression's, as in ``{**expressions,
        **assignments}``."""
        using = router.db_for_write(self._model)
        statement = self.statement(values, assignments, expressions, using=using)
        if statement is None:
            derived = expressions(*values) if expressions is not None else {}
            return self.queryset(*values).using(using).update(**{**derived, **assignments})
        sql, params = statement
        connection = connections[using]
        with transaction.mark_for_rollback_on_error(using=using), connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    def statement(
        self,
        values: tuple[Any, ...],
        assignments: Mapping[str, Any],
        expressions: Callable[..., Mapping[str, Any]] | None = None,
        *,
        using: str,
    ) -> tuple[str, list[Any]] | None:
        """The SQL and parameters ``update`` would send to ``using``, for a caller that sends
        it as part of a larger statement (``insert.CompiledInsert.save_if``); None when
        ``update`` would leave it to ``QuerySet.update``."""
        key = (
            using,
            tuple(type(value) for value in values),
            tuple((name, value is None) for name, value in assignments.items()),
            expressions,
        )
        try:
            prepared = self._prepared[key]
        except KeyError:
            prepared = self._prepare(using, values, assignments, expressions)
            with self._lock:
                if len(self._prepared) < 32:
                    self._prepared[key] = prepared
        if prepared is None:
            return None
        connection = connections[using]
        params = []
        for field in prepared.fields:
            value = assignments[field.name]
            if isinstance(value, Model):  # a related row: its key, as the compiler takes it
                value = value.prepare_database_save(field)
            value = field.get_db_prep_save(value, connection=connection)
            if hasattr(value, "as_sql") or hasattr(value, "resolve_expression"):
                return None  # an expression after all: the ORM compiles it
            params.append(value)
        conditions = list(prepared.template)
        for position, index in prepared.slots:
            conditions[position] = values[index]
        return prepared.sql, [*params, *conditions]

    def _prepare(
        self,
        using: str,
        values: tuple[Any, ...],
        assignments: Mapping[str, Any],
        expressions: Callable[..., Mapping[str, Any]] | None,
    ) -> _Prepared | None:
        model = self._model
        manager = plain_manager(model)
        made = stand_ins(values)
        if manager is None or made is None:
            return None
        fields = []
        for name, value in assignments.items():
            try:
                field = model._meta.get_field(name)
            except Exception:  # noqa: BLE001 - the ORM says what is wrong with the name
                return None
            if (
                not field.concrete
                or field.model._meta.concrete_model is not model._meta.concrete_model
                or not plain_placeholder(field, connections[using])
                or hasattr(value, "resolve_expression")
                or (
                    hasattr(value, "prepare_database_save")
                    and not (
                        isinstance(value, Model)
                        and field.remote_field is not None
                        # __class__, not type(): a session's user is a SimpleLazyObject
                        and value.__class__.prepare_database_save is Model.prepare_database_save
                    )
                )
                or not all(
                    getattr(type(field), method).__module__.startswith("django.")
                    for method in (*PREPARING, "get_db_prep_save")
                )
            ):
                return None
            if value is not None:
                fields.append(field)
        try:
            queryset = self._shape(manager.all(), *made).using(using)
        except (TypeError, ValueError):
            return None
        query = queryset.query
        if (
            type(queryset) is not manager._queryset_class
            or query.is_sliced
            or query.combinator
            or query.order_by
            or query.annotations
            or query.extra
            or not django_lookups(query.where)
        ):
            return None
        derived = {}
        if expressions is not None:
            derived = {name: e for name, e in expressions(*made).items() if name not in assignments}
        update = query.chain(UpdateQuery)
        # The plain values first (one ``%s`` each, in order), then the expressions: their
        # parameters are found with the conditions'. The order of SET clauses changes nothing:
        # every one of them reads the row as it was.
        update.add_update_values({**assignments, **derived})
        if update.related_updates:
            return None
        compiler = update.get_compiler(using=using)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            return None
        if not sql or update.count_active_tables() != 1 or len(params) < len(fields):
            return None
        template = tuple(params[len(fields) :])
        found = slots(template, made)
        if found is None:
            return None  # a value was prepared on its way, or also went in changed: not as given
        return _Prepared(sql=sql, fields=tuple(fields), template=template, slots=found)
