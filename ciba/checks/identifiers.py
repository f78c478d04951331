"""Finding the user from a ``login_hint`` (issue 28): the configured identifiers.

An identifier that cannot be read (not a dict, an unknown key or lookup, a field path that does
not lead to a column of the user model, a normaliser that does not import) would fail every
backchannel request with a ``login_hint`` at run time; a ``PHONE_NUMBER_REGION`` libphonenumber
does not know would silently read no national number at all. Both are errors at start-up
(``ciba.E051``).

Every login_hint is one query OR-ing the configured fields; a field without an index makes each
of them a scan of the user table, which costs a large site its database and, slower for some
hints than others, tells a client more than ``unknown_user_id`` does. ``ciba.W023`` says which
field lacks one, with ``check --deploy``: an index matters at a production site's table sizes,
and a new site on stock ``auth.User`` (whose e-mail has none) is not told so at every
``runserver``. A field counts as indexed when it is a primary key, ``unique``, ``db_index``, or
the first column of an index or unique constraint of its model's ``Meta``; for an ``iexact``
lookup also the first expression of a functional index on ``Upper(field)``, which is what
Django's ``iexact`` compares on PostgreSQL (a ``Lower`` index is never used by it, so it does
not count).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core import checks
from django.db.models import F, Field, Index, UniqueConstraint
from django.db.models.functions import Upper

from .. import identifiers
from ..conf import ciba_settings
from .codes import Codes


@checks.register(checks.Tags.security)
def check_identifiers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``LOGIN_HINT_IDENTIFIERS`` and ``PHONE_NUMBER_REGION`` can be read (``ciba.E051``)."""
    problems = list(identifiers.problems(get_user_model()))
    if not problems:
        return []
    return [
        checks.Error(
            "; ".join(problems) + ".",
            hint='Each entry of CIBA["LOGIN_HINT_IDENTIFIERS"] is {"field": a field path of the user model '
            '(through relations: "profile__phone_number"), "normalizer": the dotted path of a '
            'callable(str) -> str | None (ciba.identifiers.exact, email, phone_number, iban), "lookup": '
            '"exact" or "iexact"}; CIBA["PHONE_NUMBER_REGION"] is "" or a region such as "GB" '
            "(docs/integration.md, Finding the user).",
            id=Codes.IDENTIFIERS,
        )
    ]


@checks.register(checks.Tags.models, deploy=True)
def check_identifier_indexes(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Each configured identifier's column has an index that serves its lookup (``ciba.W023``)."""
    model = get_user_model()
    configured = ciba_settings.raw("LOGIN_HINT_IDENTIFIERS")
    if configured is not None and not isinstance(configured, list | tuple):
        return []  # ciba.E051
    messages = []
    for entry in identifiers.entries(model, configured):
        try:
            identifier = identifiers.compile_entry(model, entry)
        except ValueError:
            continue  # ciba.E051 reports it
        field, _ = identifiers.resolve_field(model, identifier.field)
        if indexed(field, identifier.lookup):
            continue
        where = f"{field.model._meta.label}.{field.name}"
        messages.append(
            checks.Warning(
                f"The login_hint identifier {identifier.field!r} ({where}, lookup {identifier.lookup!r}) "
                "has no database index: every login_hint is a scan of that table, slower as it grows, "
                "and its time can differ with what the table holds.",
                hint=_hint(field, identifier.lookup),
                obj=field.model,
                id=Codes.IDENTIFIER_NOT_INDEXED,
            )
        )
    return messages


def _hint(field: Field, lookup: str) -> str:
    functional = f' or Meta.indexes = [Index(Upper("{field.name}"), name=...)]' if lookup == "iexact" else ""
    return (
        f"Index it: unique=True or db_index=True on {field.name}{functional} (stock auth.User's email "
        "has none: a custom user model with a unique, indexed email, or the identifier kept on a "
        'profile model, e.g. {"field": "profile__email"}), or configure CIBA["LOGIN_HINT_IDENTIFIERS"] '
        "without it. If the user table stays small, silence it: "
        'SILENCED_SYSTEM_CHECKS = ["ciba.W023"].'
    )


def indexed(field: Field, lookup: str) -> bool:
    """Whether the database can find ``field``'s rows by ``lookup`` through an index."""
    if field.primary_key or field.unique or field.db_index:
        return True
    meta = field.model._meta
    candidates = [*meta.indexes, *(c for c in meta.constraints if isinstance(c, UniqueConstraint))]
    for index in candidates:
        if isinstance(index, UniqueConstraint) and index.condition is not None:
            continue  # a partial constraint indexes only some rows
        if isinstance(index, Index) and index.condition is not None:
            continue
        columns = [name.lstrip("-") for name in index.fields]
        if columns and columns[0] == field.name:
            return True
        if lookup == "iexact" and index.expressions and _is_upper_of(index.expressions[0], field.name):
            return True
    return any(together and together[0] == field.name for together in meta.unique_together)


def _is_upper_of(expression: Any, name: str) -> bool:
    """``expression`` is ``Upper(F(name))`` (possibly ordered, ``Upper("email").desc()``)."""
    if not isinstance(expression, Upper):
        expression = getattr(expression, "expression", None)  # OrderBy
    if not isinstance(expression, Upper):
        return False
    sources = expression.get_source_expressions()
    return len(sources) == 1 and isinstance(sources[0], F) and sources[0].name == name
