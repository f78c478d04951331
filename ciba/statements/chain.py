"""New rows that refer to one another, written with a conditional ``UPDATE`` in one statement.

A push's tokens are four new rows, each keyed to the one before it (the ID token; the access
token naming it; the refresh token naming that; the original authentication of the refresh
token), written only if the request's ``UPDATE`` to ``issued`` wins, with the sealed body stored
beside them. Sent one by one, that is six round trips inside the transaction, and each
``INSERT`` built and compiled by the ORM on every push (issue 29). A ``Chain`` collects the
rows as minting makes them (``insert``, where code would call ``save()``) and sends them in
one statement on PostgreSQL::

    WITH "gate" AS (UPDATE ... RETURNING 1),
         "then" AS (UPDATE ... FROM "gate" WHERE ... RETURNING 1),
         "r0"("pk") AS (INSERT INTO ... SELECT %s, %s FROM "gate" RETURNING "id"),
         "r1"("pk") AS (INSERT INTO ... SELECT %s, "r0"."pk", %s FROM "gate", "r0" RETURNING "id")
    SELECT (SELECT count(*) FROM "gate"), (SELECT count(*) FROM "then"),
           (SELECT "pk" FROM "r0"), (SELECT "pk" FROM "r1")

Each ``INSERT`` is the ORM's own (``insert.CompiledInsert``, compiled once per model), its
``VALUES`` replaced by a ``SELECT`` of the same parameters, in which a field linked to an
earlier row of the chain takes that row's new key. The rows and ``then`` (another ``UPDATE``,
joined to the gate's one row) are written only if the gate changed a row; the caller, in its
transaction, decides from both counts whether to keep what was written (``then`` matching
nothing, say).

Each row is what ``save()`` would write: ``pre_save`` is sent when it is added (a receiver
sees a linked key still unset: the row it names is not written yet), each field's value is
prepared as ``SQLInsertCompiler`` prepares it, and once written the instance gets its key and
its links' keys, is marked saved and ``post_save`` is sent. A row ``save()`` must write itself
(a model of its own save path, a value the ORM puts in the statement, another database), or a
database other than PostgreSQL, makes ``send`` decline: the caller then sends the gate alone and
``save_each`` writes the rows in order, as ``save()`` would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Model
from django.db.models.signals import pre_save

from .insert import CompiledInsert, _fields, _saved, _values, converted

#: The chain collecting rows in this context (``Chain.collecting``), if any.
_CURRENT: ContextVar[Chain | None] = ContextVar("ciba_statement_chain", default=None)

#: One compiled ``INSERT`` per model, shared by every chain of the process.
_INSERTS: dict[type[Model], CompiledInsert] = {}
_INSERTS_LOCK = threading.Lock()


def insert(obj: Model, **links: Model) -> None:
    """Write ``obj``, a new instance, as ``obj.save()`` does; while a chain is collecting, add
    it to the chain instead. ``links`` names ``obj``'s fields that may refer to an earlier row
    of the same chain (a related instance not yet written; one already written is an ordinary
    foreign key)."""
    chain = _CURRENT.get()
    if chain is None:
        obj.save()
    else:
        chain.add(obj, **links)


@dataclass
class _Row:
    obj: Model
    #: field -> the earlier row's instance whose new key it takes.
    links: dict[Any, Model]
    #: The values in the compiled statement's field order; None when ``save()`` writes it.
    params: list[Any] | None
    #: Whether ``pre_save`` was sent when it was added (rows ``send`` can write).
    announced: bool


@dataclass
class Chain:
    """New rows for database ``using``, collected in order, written together (see the module)."""

    using: str
    _rows: list[_Row] = field(default_factory=list)

    @contextmanager
    def collecting(self) -> Iterator[Chain]:
        """While inside, ``insert`` adds to this chain instead of saving."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    def add(self, obj: Model, **links: Model) -> None:
        """Add ``obj`` (written by ``send`` or ``save_each``). Its ``links`` must be rows added
        before it."""
        model = type(obj)
        meta = model._meta
        # A link to a row already written (or to none) is an ordinary foreign key.
        linked = {
            meta.get_field(name): target
            for name, target in links.items()
            if target is not None and target._state.adding
        }
        added = {id(row.obj) for row in self._rows}
        if any(id(target) not in added for target in linked.values()):
            raise ValueError(f"{model.__name__} links to a row that is not earlier in the chain")
        compiled = _compiled(model)
        params = None
        announced = router.db_for_write(model) == self.using and compiled.can_chain(obj, using=self.using)
        if announced:
            pre_save.send(sender=model, instance=obj, raw=False, using=self.using, update_fields=None)
            params = _values(obj, _fields(model, False), connections[self.using])
        self._rows.append(_Row(obj, linked, params, announced))

    def send(
        self, gate: tuple[str, list[Any]] | None, then: tuple[str, list[Any]] | None
    ) -> tuple[bool, bool] | None:
        """Run the ``UPDATE`` ``gate`` and, only if it changed a row, every row's ``INSERT``
        and the ``UPDATE`` ``then``, in one statement: whether the gate changed a row (then
        every row is written) and whether ``then`` did. None, with nothing sent, when that
        cannot be one statement (see the module)."""
        connection = connections[self.using]
        if (
            gate is None
            or then is None
            or then[0].count(" WHERE ") != 1  # where the gate's join goes, found for sure
            or connection.vendor != "postgresql"
            or any(row.params is None for row in self._rows)
        ):
            return None
        gate_sql, gate_params = gate
        then_sql, then_params = then
        then_sql = then_sql.replace(" WHERE ", ' FROM "gate" WHERE ')
        ctes = [f'"gate" AS ({gate_sql} RETURNING 1)', f'"then" AS ({then_sql} RETURNING 1)']
        params: list[Any] = [*gate_params, *then_params]
        names: dict[int, str] = {}
        statements = []
        for index, row in enumerate(self._rows):
            head, tail, statement = _compiled(type(row.obj)).parts(row.obj, using=self.using)
            if statement.returning_fields != (type(row.obj)._meta.pk,):
                return None  # its key is not the one thing returned: save() writes it
            sources = ['"gate"']
            values = []
            for model_field, value in zip(statement.fields, row.params, strict=True):
                target = row.links.get(model_field)
                if target is None:
                    values.append("%s")
                    params.append(value)
                else:
                    source = names[id(target)]
                    values.append(f'{source}."pk"')
                    if source not in sources:
                        sources.append(source)
            params.extend(statement.returning_params)
            name = names[id(row.obj)] = f'"r{index}"'
            ctes.append(f'{name}("pk") AS ({head}SELECT {", ".join(values)} FROM {", ".join(sources)}{tail})')
            statements.append(statement)
        keys = "".join(f', (SELECT "pk" FROM "r{index}")' for index in range(len(self._rows)))
        counts = '(SELECT count(*) FROM "gate"), (SELECT count(*) FROM "then")'
        sql = f"WITH {', '.join(ctes)} SELECT {counts}{keys}"
        with transaction.mark_for_rollback_on_error(using=self.using), connection.cursor() as cursor:
            cursor.execute(sql, params)
            gated, done, *written = cursor.fetchone()
        if not gated:
            return False, False
        for row, statement, key in zip(self._rows, statements, written, strict=True):
            (pk,) = converted(statement, (key,), connection)
            setattr(row.obj, type(row.obj)._meta.pk.attname, pk)
        for row in self._rows:
            for model_field, target in row.links.items():
                setattr(row.obj, model_field.attname, target.pk)
            _saved(row.obj, self.using)
        return True, bool(done)

    def save_each(self) -> None:
        """Write the rows one by one, in order, as ``save()`` writes them (after the caller's
        own gate, where ``send`` declined)."""
        for row in self._rows:
            obj = row.obj
            if row.announced:  # pre_save was sent: Django's insert from where save_base calls it
                obj._prepare_related_fields_for_save(operation_name="save")
                with transaction.mark_for_rollback_on_error(using=self.using):
                    obj._save_table(cls=type(obj), force_insert=(type(obj),), using=self.using)
                _saved(obj, self.using)
            else:
                obj.save(force_insert=True, using=router.db_for_write(type(obj)))


def collecting() -> Chain | None:
    """The chain collecting rows in this context, if any."""
    return _CURRENT.get()


def _compiled(model: type[Model]) -> CompiledInsert:
    compiled = _INSERTS.get(model)
    if compiled is None:
        with _INSERTS_LOCK:
            compiled = _INSERTS.setdefault(model, CompiledInsert(model))
    return compiled
