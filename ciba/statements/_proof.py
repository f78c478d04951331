"""What ``CompiledSelect`` and ``CompiledUpdate`` must prove before running a statement they
compiled once, in one place: a statement is only reused when the ORM would have built exactly
the same text, and the call's values reach the database exactly as the ORM would send them.

The proof is by stand-ins: the queryset is built once with a fresh object per value (a unique
``str``, ``int`` or aware ``datetime``), compiled, and each stand-in must be found again in the
parameters *as the very object given*. A value a lookup or field prepares on its way (a cast,
an escape, a wrap, a conversion to text) becomes a new object: then the statement is not used,
because the next call's value would need that preparation too. Only Django's own lookups, on
fields preparing values as Django's do, and managers and querysets building queries as
Django's do, are trusted to treat every value as they treated the stand-in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import BinaryField, Model, QuerySet
from django.db.models.manager import BaseManager

#: Stand-in ints start far above any small-int cache, each a distinct object.
_INT_BASE = 7_346_291_000_000

#: How a field turns a value into a parameter: where a field of a site's own redefines one, a
#: value could be changed only sometimes (never the stand-in), so only Django's are trusted.
PREPARING = ("to_python", "get_prep_value", "get_db_prep_value")

#: What a queryset class may not redefine: anything ``QuerySet`` itself defines (adding methods,
#: as ``as_manager()`` querysets do, is fine).
_QUERYSET_OWN = frozenset(vars(QuerySet)) - {
    "__module__",
    "__doc__",
    "__qualname__",
    "__dict__",
    "__weakref__",
}


def plain_placeholder(field: Any, connection: Any = None) -> bool:
    """Whether ``field``'s value is sent as a plain ``%s``, as a compiled statement sends
    every value: a field without ``get_placeholder``, or a ``BinaryField``, whose placeholder
    is one but on a database that redefines it (MySQL's ``_binary %s``:
    ``binary_placeholder``). Without ``connection``, on some database; with it, on that one."""
    placeholder = getattr(type(field), "get_placeholder", None)
    if placeholder is None:
        return True
    if placeholder is not BinaryField.get_placeholder:
        return False
    return connection is None or binary_placeholder(connection)


def binary_placeholder(connection: Any) -> bool:
    """Whether a ``BinaryField``'s placeholder is a plain ``%s`` on ``connection`` (all of
    Django's databases but MySQL)."""
    return type(connection.ops).binary_placeholder_sql is BaseDatabaseOperations.binary_placeholder_sql


def plain_manager(model: type[Model]) -> Any | None:
    """The model's default manager, if it and its queryset class build queries as Django's
    do; ``None`` (leave every call to the ORM) for a manager or queryset of a site's own."""
    manager = model._default_manager
    if type(manager).get_queryset is not BaseManager.get_queryset or not _plain(manager._queryset_class):
        return None
    return manager


def _plain(queryset_class: type) -> bool:
    """Whether ``queryset_class`` builds and evaluates queries exactly as ``QuerySet`` does."""
    for klass in queryset_class.__mro__:
        if klass is QuerySet:
            return True
        if _QUERYSET_OWN & set(vars(klass)):
            return False
    return False


def stand_ins(values: tuple[Any, ...]) -> list[Any] | None:
    """A fresh object per value, of its type, that no preparation would leave unchanged; or
    ``None`` for a value of another kind (the ORM runs those)."""
    made: list[Any] = []
    for index, value in enumerate(values):
        kind = type(value)
        if kind is str:
            made.append(f" CiBa %_\\ stand-in {index} Ä ")
        elif kind is int:
            made.append(int(str(_INT_BASE + index)))  # a fresh object, not a cached one
        elif kind is datetime and value.tzinfo is not None:
            made.append(datetime(2001, 2, 3, 4, 5, 6, 700_000 + index, tzinfo=UTC))
        else:
            return None
    return made


def django_lookups(node: Any) -> bool:
    """Whether every condition is Django's own lookup on a field preparing values as Django's do."""
    for child in node.children:
        if hasattr(child, "children"):
            if not django_lookups(child):
                return False
            continue
        field = getattr(getattr(child, "lhs", None), "output_field", None)
        if not type(child).__module__.startswith("django.") or field is None:
            return False
        if not all(getattr(type(field), name).__module__.startswith("django.") for name in PREPARING):
            return False
    return True


def slots(params: tuple[Any, ...], made: list[Any]) -> tuple[tuple[int, int], ...] | None:
    """(position in ``params``, index of the value) for every place a stand-in went in as
    given; ``None`` if one is missing (prepared on its way) or also went in changed elsewhere
    (that copy would be frozen into the statement)."""
    found: list[tuple[int, int]] = []
    for index, stand_in in enumerate(made):
        positions = [position for position, param in enumerate(params) if param is stand_in]
        if not positions:
            return None
        found.extend((position, index) for position in positions)
    taken = {position for position, _ in found}
    for position, param in enumerate(params):
        if position not in taken and any(_copy_of(param, stand_in) for stand_in in made):
            return None
    return tuple(found)


def _copy_of(param: Any, stand_in: Any) -> bool:
    """Whether ``param`` is ``stand_in`` changed on its way (equal to it, or holding its text)."""
    if param is stand_in:
        return False
    if type(param) is type(stand_in) and param == stand_in:
        return True
    if isinstance(stand_in, datetime):
        marker = stand_in.strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(stand_in, str):
        marker = stand_in.split("%")[-1].strip(" \\_Ä")  # "stand-in N"
    else:
        marker = str(stand_in)
    return marker in str(param)
