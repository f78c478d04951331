"""An ``INSERT`` of a new model instance, compiled once per database, run with each row's values.

``CompiledInsert(model).save(obj, using=...)`` does what ``obj.save(force_insert=True,
using=...)`` does for a new instance of ``model``: the related objects checked
(``_prepare_related_fields_for_save``), ``pre_save`` sent, the primary key's value on save
taken, each field's value read by its own ``pre_save(obj, add=True)`` and prepared by its own
``get_db_prep_save`` (in that order, as ``SQLInsertCompiler`` does), one ``INSERT`` sent with
the returning columns read back through the database's and fields' converters, the instance
marked saved to ``using``, and ``post_save`` sent (``created=True``). Any error marks an outer
transaction for rollback, as ``save()`` does.

What is not redone on every call is the ORM's query building and compilation: the statement
(``InsertQuery`` compiled by the database's own ``SQLInsertCompiler``) is the same text for
every row of the same fields, because each value's placeholder is a plain ``%s`` — unless a
field has ``get_placeholder`` (geometry fields; a ``BinaryField``'s is a plain ``%s`` but on
MySQL, which keeps ``save()``), a value is an expression (``F()``, ``Now()``,
a ``db_default``), or the database's ``modify_insert_params`` changes parameters. Those, and
whatever ``save()`` does beyond a plain insert (a model's own ``save``/``save_base``, multi-table
inheritance, proxies, ``order_with_respect_to``, a ``base_manager_name``, a database that
cannot return the new key with the ``INSERT``), are left to ``save()`` itself, as before. The
model's options are read once, its save path and the database on every call; a row whose
values do not qualify is found on its call, after ``pre_save`` was sent: Django's own
``_save_table`` then inserts it, as ``save_base`` would have (its fields' ``pre_save`` run
again there, so an ``auto_now`` field takes the later time; the signals are not sent twice).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.db import connections, transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import Model
from django.db.models.signals import post_save, pre_save
from django.db.models.sql import InsertQuery

from ._proof import binary_placeholder, plain_placeholder

#: What ``save()`` runs for a new instance, and must be Django's own for this module to stand
#: in for it (a model overriding any of them keeps ``save()``).
_SAVE_PATH = (
    "save",
    "save_base",
    "_save_parents",
    "_save_table",
    "_do_insert",
    "_prepare_related_fields_for_save",
    "_validate_force_insert",
    "_get_pk_val",
    "_is_pk_set",
)


@dataclass(frozen=True)
class _Statement:
    sql: str
    #: The fields whose values are sent, in the statement's order.
    fields: tuple[Any, ...]
    #: Parameters the ``RETURNING`` clause adds after the values (none on PostgreSQL, SQLite).
    returning_params: tuple[Any, ...]
    returning_fields: tuple[Any, ...]
    #: The returning columns (``Col``), for their converters.
    returning_columns: tuple[Any, ...]


class CompiledInsert:
    """``obj.save(force_insert=True, using=using)`` for new instances of ``model`` (see the
    module)."""

    def __init__(self, model: type[Model]) -> None:
        self._model = model
        self._eligible: bool | None = None
        #: (database, whether the key was given) -> the ORM's statement, compiled at first use.
        self._statements: dict[tuple[str, bool], _Statement] = {}
        self._lock = threading.Lock()

    def save(self, obj: Model, *, using: str) -> None:
        """Insert ``obj`` (a new instance) into ``using``, as ``save(force_insert=True)``."""
        model = self._model
        if type(obj) is not model or not self._model_eligible() or not _database_eligible(using):
            obj.save(force_insert=True, using=using)
            return
        meta = model._meta
        obj._prepare_related_fields_for_save(operation_name="save")
        pre_save.send(sender=model, instance=obj, raw=False, using=using, update_fields=None)
        with transaction.mark_for_rollback_on_error(using=using):
            if not obj._is_pk_set(meta):
                setattr(obj, meta.pk.attname, meta.pk.get_pk_value_on_save(obj))
            pk_set = obj._is_pk_set(meta)
            connection = connections[using]
            statement = self._statements.get((using, pk_set))
            fields = statement.fields if statement is not None else _fields(model, pk_set)
            params = _values(obj, fields, connection)
            if params is None:
                # A value the ORM compiles into the statement itself (an expression): Django's
                # own insert, from where save_base would call it (signals already sent).
                obj._save_table(cls=model, force_insert=(model,), using=using)
            else:
                if statement is None:
                    statement = self._compile(obj, using, pk_set, fields)
                returned = _execute(statement, params, connection) or ()  # one row: never None
                _returned(obj, statement, returned)
        _saved(obj, using)

    def can_chain(self, obj: Model, *, using: str) -> bool:
        """Whether ``save_if`` can insert ``obj`` in ``using`` (it may still find, once
        ``pre_save`` has run, a value it cannot send as a parameter)."""
        meta = self._model._meta
        return bool(
            connections[using].vendor == "postgresql"
            and type(obj) is self._model
            and self._model_eligible()
            and _database_eligible(using)
            and meta.db_returning_fields  # how it tells whether the row was written
            # a key chosen here: save() handles its conflicts, not this statement
            and not obj._is_pk_set(meta)
            and meta.pk.get_pk_value_on_save(obj) is None
        )

    def save_if(self, obj: Model, update: tuple[str, list[Any]], *, using: str) -> bool | None:
        """Insert ``obj`` in the same statement as ``update`` (an ``UPDATE``'s SQL and
        parameters, ``update.CompiledUpdate.statement``), and only if it changed a row: True
        when both were done, False when the update matched nothing (nothing written, ``obj``
        still unsaved), in one round trip and, outside a transaction, one commit of its own.
        None, with nothing written, where that cannot be one statement (only PostgreSQL runs
        an ``UPDATE`` in ``WITH``), or ``save`` would not run this module's ``INSERT``: the
        caller writes them its own way (in a transaction). ``pre_save`` is sent first, and
        ``post_save`` once the row is written, as ``save`` sends them; a value found not to be
        a parameter after ``pre_save`` (an expression) gives None too, so the caller's own
        write sends ``pre_save`` a second time."""
        if not self.can_chain(obj, using=using):
            return None
        model = self._model
        connection = connections[using]
        fields = _fields(model, False)
        obj._prepare_related_fields_for_save(operation_name="save")
        pre_save.send(sender=model, instance=obj, raw=False, using=using, update_fields=None)
        params = _values(obj, fields, connection)
        if params is None:
            return None
        head, tail, statement = self.parts(obj, using=using)
        update_sql, update_params = update
        chained = _Statement(
            sql=f'WITH "updated" AS ({update_sql} RETURNING 1) {head}'
            f'SELECT {", ".join(["%s"] * len(fields))} FROM "updated"{tail}',
            fields=statement.fields,
            returning_params=statement.returning_params,
            returning_fields=statement.returning_fields,
            returning_columns=statement.returning_columns,
        )
        with transaction.mark_for_rollback_on_error(using=using):
            returned = _execute(chained, [*update_params, *params], connection)
        if returned is None:
            return False
        _returned(obj, statement, returned)
        _saved(obj, using)
        return True

    def parts(self, obj: Model, *, using: str) -> tuple[str, str, _Statement]:
        """The ORM's ``INSERT`` of ``obj`` in ``using`` (a row ``can_chain`` accepted, its
        values known to be parameters), split around its ``VALUES (...)``: the text before
        (``INSERT INTO ... (columns) ``), the text after (`` RETURNING ...``), and the
        statement, whose ``fields`` give the values' order. For a caller that writes the row
        from a ``SELECT`` of its own (``chain.Chain``, ``save_if``)."""
        fields = _fields(self._model, False)
        statement = self._statements.get((using, False)) or self._compile(obj, using, False, fields)
        values = f"VALUES ({', '.join(['%s'] * len(fields))})"
        head, found, tail = statement.sql.partition(values)
        if not found:
            raise AssertionError("the ORM's INSERT of one row has no VALUES")  # pragma: no cover
        return head, tail, statement

    def _model_eligible(self) -> bool:
        """The model's options are read once; its save path on every call, so a ``save`` set
        on the class later (a test's patch, a site's late mixin) is still the one called."""
        if self._eligible is None:
            self._eligible = _model_eligible(self._model)
        return self._eligible and _saves_as_django(self._model)

    def _compile(self, obj: Model, using: str, pk_set: bool, fields: tuple[Any, ...]) -> _Statement:
        """The ORM's statement for ``obj`` (whose values are known to need only ``%s``): built
        as ``QuerySet._insert`` builds it, compiled by the database's own compiler. ``raw``
        reads the values ``pre_save`` left on ``obj`` without calling it a second time."""
        meta = self._model._meta
        returning_fields = tuple(meta.db_returning_fields)
        query = InsertQuery(self._model)
        query.insert_values(list(fields), [obj], raw=True)
        compiler = query.get_compiler(using=using)
        compiler.returning_fields = list(returning_fields)
        [(sql, compiled_params)] = compiler.as_sql()
        returning_params = tuple(compiler.returning_params)
        if len(compiled_params) != len(fields) + len(returning_params):
            raise AssertionError("the ORM's INSERT does not have one parameter per field")  # pragma: no cover
        statement = _Statement(
            sql=sql,
            fields=fields,
            returning_params=returning_params,
            returning_fields=returning_fields,
            returning_columns=tuple(field.get_col(meta.db_table) for field in returning_fields),
        )
        with self._lock:
            self._statements[(using, pk_set)] = statement
        return statement


def _model_eligible(model: type[Model]) -> bool:
    """Whether ``save(force_insert=True)`` of a new ``model`` instance is exactly a pre_save,
    one INSERT of its own table through Django's plain base manager, and a post_save."""
    meta = model._meta
    return bool(
        not meta.proxy
        and not meta.parents
        and not meta.auto_created
        and meta.order_with_respect_to is None
        and meta.base_manager_name is None
        and len(meta.pk_fields) == 1
        and all(plain_placeholder(field) for field in meta.local_concrete_fields)
    )


def _saves_as_django(model: type[Model]) -> bool:
    """Whether no class above ``Model`` in ``model``'s MRO (a mixin included) redefines a step
    of the save path."""
    for klass in model.__mro__:
        if klass is Model:
            return True
        if any(name in vars(klass) for name in _SAVE_PATH):
            return False
    return False


def _database_eligible(using: str) -> bool:
    """Whether the database returns the new row's columns from the INSERT itself and sends
    each value as given (``modify_insert_params`` is only Oracle Spatial's)."""
    connection = connections[using]
    operations = type(connection.ops)
    return bool(
        connection.features.can_return_columns_from_insert
        and operations.modify_insert_params is BaseDatabaseOperations.modify_insert_params
        and binary_placeholder(connection)
    )


def _fields(model: type[Model], pk_set: bool) -> tuple[Any, ...]:
    """The fields ``Model._save_table`` inserts: the auto field only when a key was given."""
    meta = model._meta
    return tuple(
        field
        for field in meta.local_concrete_fields
        if not field.generated and (pk_set or field is not meta.auto_field)
    )


def _values(obj: Model, fields: tuple[Any, ...], connection: Any) -> list[Any] | None:
    """Each field's value as ``SQLInsertCompiler`` prepares it (``pre_save`` then
    ``get_db_prep_save``); None when one would not be a plain ``%s`` parameter."""
    params = []
    for field in fields:
        value = field.pre_save(obj, True)
        if hasattr(value, "resolve_expression"):
            return None
        value = field.get_db_prep_save(value, connection=connection)
        if hasattr(value, "as_sql"):
            return None
        params.append(value)
    return params


def _returned(obj: Model, statement: _Statement, returned: tuple[Any, ...]) -> None:
    """The columns the INSERT returned (the new key), set on ``obj`` as ``save`` sets them."""
    for field, value in zip(statement.returning_fields, returned, strict=True):
        setattr(obj, field.attname, value)


def _saved(obj: Model, using: str) -> None:
    """``obj`` marked saved to ``using`` and ``post_save`` sent, as ``save`` ends an insert."""
    obj._state.db = using
    obj._state.adding = False
    post_save.send(sender=type(obj), instance=obj, created=True, update_fields=None, raw=False, using=using)


def _execute(statement: _Statement, params: list[Any], connection: Any) -> tuple[Any, ...] | None:
    """Send the statement; the returning columns' values, converted as the ORM converts them
    (None when it inserted no row: ``save_if``'s update matched nothing)."""
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, [*params, *statement.returning_params])
        if not statement.returning_fields:
            return ()
        row = connection.ops.fetch_returned_insert_columns(cursor, statement.returning_params)
    if row is None:
        return None
    return converted(statement, row, connection)


def converted(statement: _Statement, row: Any, connection: Any) -> tuple[Any, ...]:
    """The returning columns' values, converted as the ORM converts them."""
    values = list(row)
    for position, column in enumerate(statement.returning_columns):
        converters = [*connection.ops.get_db_converters(column), *column.get_db_converters(connection)]
        for converter in converters:
            values[position] = converter(values[position], column, connection)
    return tuple(values)
