"""Which user fields a ``login_hint`` may match, and how what a client typed becomes the stored
form (CIBA §7.1: "email, phone number, account number etc.").

A site lists its identifiers in ``CIBA["LOGIN_HINT_IDENTIFIERS"]``: each a field path on the user
model (``"email"``, or through relations, ``"profile__phone_number"``), a normaliser and a lookup
(``"exact"`` or ``"iexact"``). ``None`` keeps the historical default: the user model's
``USERNAME_FIELD`` exactly, and its email field (when it has one) case-insensitively.

A normaliser is ``callable(value: str) -> str | None``: the stored form of ``value``, or ``None``
when the hint cannot be that kind of identifier, so that identifier is left out of the query
(a username is never looked up as a phone number). It must not raise for any string; the shipped
ones (``exact``, ``email``, ``phone_number``, ``iban``) never do.

``find_user`` answers with one query whatever the outcome: every identifier whose normaliser
accepted the hint, OR-ed, inactive users excluded inside the query, at most two rows read. One
row is the user; none, or two (an e-mail shared by two accounts), is nobody, never a guess. An
unknown identifier, an inactive user's and an ambiguous one cost the same query, so the time of
the answer says no more than ``unknown_user_id`` does.

The configuration is compiled once per settings value and user model (issue 29 found login_hint
resolution at 22% of a web worker's samples): no ``import_string`` and no ``_meta`` walk per
request. The compiled form remembers the setting's value and ``AUTH_USER_MODEL`` it was built
from and is rebuilt when either differs, so ``override_settings(CIBA=...)`` and a swapped user
model in tests take effect at once, and a reader racing a change can never keep a stale form.
The lookup's SQL is written once too, per shape (which identifiers accepted the hint), where
that provably sends what the ORM would (``_statement``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db.models import Field, Model, Q
from django.db.models.expressions import RawSQL
from django.utils.module_loading import import_string
from stdnum import iban as _iban
from stdnum.exceptions import ValidationError as _StdnumError

from .conf import ciba_settings
from .statements.select import CompiledSelect

logger = logging.getLogger("ciba.identifiers")

#: Longer hints, or hints with a NUL, never reach a normaliser or the database (RFC 5321 caps an
#: address path at 256 octets with its brackets; no phone or account number comes near it).
MAX_HINT_LENGTH = 254
#: The lookups an identifier may use: the stored form exactly, or case-insensitively.
LOOKUPS = ("exact", "iexact")
#: The keys an entry of ``LOGIN_HINT_IDENTIFIERS`` may have.
ENTRY_KEYS = ("field", "normalizer", "lookup")

Normaliser = Callable[[str], "str | None"]


# --- the shipped normalisers -------------------------------------------------------------------


def exact(value: str) -> str | None:
    """The hint as typed: a username is compared exactly (as ``authenticate`` compares it)."""
    return value


def email(value: str) -> str | None:
    """An e-mail address: surrounding space removed, exactly one ``@`` between a non-empty local
    part and domain, lower-cased. Lower-casing (not ``str.casefold``, which turns ``ß`` into
    ``ss``) is the per-letter mapping the database's ``UPPER``/``LOWER`` apply, so an ``iexact``
    lookup still finds an address stored in mixed case."""
    value = value.strip()
    local, at, domain = value.partition("@")
    if not at or not local or not domain or "@" in domain:
        return None
    return value.lower()


def phone_number(value: str) -> str | None:
    """A phone number in E.164 (``+442079460123``), read by libphonenumber: written as a person
    writes it (``020 7946 0123``, ``(020) 7946-0123``, ``+44 (0)20 7946 0123``, ``0044 ...``) in
    ``PHONE_NUMBER_REGION`` when it has no country code; without a region only international
    forms (``+44 ...``) are phone numbers. A number must be valid for its region (right length
    and range); letters (vanity numbers, ``ext.``) and extensions make it not a phone number."""
    if not any(ch.isdigit() for ch in value) or any(ch.isalpha() for ch in value):
        return None
    try:
        number = phonenumbers.parse(value, ciba_settings.PHONE_NUMBER_REGION or None)
    except phonenumbers.NumberParseException:
        return None
    if number.extension or not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def iban(value: str) -> str | None:
    """An IBAN in its compact upper-case form (``GB82WEST12345698765432``), spaces and case as
    typed; only if its country's format and its check digits (ISO 13616, mod 97) are right, so
    a mistyped account number matches nobody rather than somebody else."""
    try:
        return _iban.validate(value)
    except _StdnumError:
        return None


# --- the configured identifiers ----------------------------------------------------------------


@dataclass(frozen=True)
class Identifier:
    """One configured identifier: where it is stored, how a hint is normalised, how compared."""

    field: str
    lookup: str
    normalise: Normaliser
    #: The path crosses a one-to-many or many-to-many relation (a user may match twice).
    many: bool = False

    @property
    def query(self) -> str:
        return f"{self.field}__{self.lookup}"


def default_entries(user_model: type[Model]) -> list[dict[str, str]]:
    """What ``LOGIN_HINT_IDENTIFIERS = None`` means for ``user_model``: its ``USERNAME_FIELD``
    exactly, and its e-mail field, if it has one, case-insensitively (stored addresses may
    have mixed case)."""
    username = {"field": user_model.USERNAME_FIELD, "normalizer": "ciba.identifiers.exact", "lookup": "exact"}
    email_field = user_model.get_email_field_name()
    try:
        user_model._meta.get_field(email_field)
    except FieldDoesNotExist:
        return [username]
    return [username, {"field": email_field, "normalizer": "ciba.identifiers.email", "lookup": "iexact"}]


def entries(user_model: type[Model], configured: Any = None) -> list[Any]:
    """The entries ``configured`` lists (the default ones for ``None``), unchecked."""
    if configured is None:
        return default_entries(user_model)
    return configured if isinstance(configured, list | tuple) else [configured]


def resolve_field(user_model: type[Model], path: str) -> tuple[Field, bool]:
    """The concrete field ``path`` names, from ``user_model`` through its relations, and whether
    the way there crosses a relation to many rows; ``ValueError`` saying why not."""
    parts = path.split("__") if isinstance(path, str) and path else []
    if not parts or not all(parts):
        raise ValueError(f"field {path!r} is not a field path such as 'email' or 'profile__phone_number'")
    options, many = user_model._meta, False
    for position, part in enumerate(parts):
        try:
            field = options.get_field(part)
        except FieldDoesNotExist:
            raise ValueError(f"field {path!r}: {options.label} has no field {part!r}") from None
        if position < len(parts) - 1:
            if not field.is_relation or field.related_model is None:
                raise ValueError(f"field {path!r}: {options.label}.{part} is not a relation")
            many = many or bool(field.one_to_many or field.many_to_many)
            options = field.related_model._meta
        elif field.is_relation or not getattr(field, "concrete", False):
            raise ValueError(f"field {path!r}: {options.label}.{part} is not a column a hint can match")
    return field, many


def load_normaliser(value: Any) -> Normaliser:
    """A normaliser from its dotted path (or itself, when a callable is configured)."""
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            raise ValueError(f"normalizer {value!r} cannot be imported ({exc})") from None
    if not callable(value):
        raise ValueError(f"normalizer {value!r} is not callable")
    return value


def compile_entry(user_model: type[Model], entry: Any) -> Identifier:
    """One entry of ``LOGIN_HINT_IDENTIFIERS`` as an ``Identifier``; ``ValueError`` saying what
    is wrong with it (the check ``ciba.E051`` reports the same sentences)."""
    if not isinstance(entry, dict):
        raise ValueError(f"{entry!r} is not a dict with 'field', 'normalizer' and 'lookup'")
    if unknown := sorted(set(entry) - set(ENTRY_KEYS), key=str):
        raise ValueError(f"{entry!r} has unknown keys {unknown!r} (allowed: {', '.join(ENTRY_KEYS)})")
    if "field" not in entry:
        raise ValueError(f"{entry!r} names no 'field'")
    lookup = entry.get("lookup", "exact")
    if lookup not in LOOKUPS:
        raise ValueError(f"field {entry['field']!r}: lookup {lookup!r} is not one of {', '.join(LOOKUPS)}")
    _, many = resolve_field(user_model, entry["field"])
    normaliser = load_normaliser(entry.get("normalizer", "ciba.identifiers.exact"))
    return Identifier(field=entry["field"], lookup=lookup, normalise=normaliser, many=many)


def problems(user_model: type[Model]) -> Iterable[str]:
    """Each thing wrong with the configured identifiers, a sentence each (``ciba.E051``)."""
    configured = ciba_settings.raw("LOGIN_HINT_IDENTIFIERS")
    if configured is not None and not isinstance(configured, list | tuple):
        yield f"LOGIN_HINT_IDENTIFIERS must be None or a list of dicts, not {configured!r}"
        return
    if configured is not None and not configured:
        yield "LOGIN_HINT_IDENTIFIERS is empty: no login_hint could ever name a user (None is the default)"
    for entry in entries(user_model, configured):
        try:
            compile_entry(user_model, entry)
        except ValueError as exc:
            yield f"LOGIN_HINT_IDENTIFIERS: {exc}"
    region = ciba_settings.raw("PHONE_NUMBER_REGION")
    if region != "" and region not in phonenumbers.SUPPORTED_REGIONS:
        yield (
            f"PHONE_NUMBER_REGION {region!r} is not a region libphonenumber knows "
            "(an upper-case ISO 3166 code such as 'GB')"
        )


@dataclass(frozen=True)
class _Compiled:
    source: Any
    user_model_label: str
    model: type[Model]
    identifiers: tuple[Identifier, ...]
    distinct: bool
    #: The user model has an ``is_active`` column, so inactive users are excluded in the query.
    active_column: bool
    #: The lookup's statements written so far, by database and shape (``_statement``).
    statements: dict[Any, Any] = field(default_factory=dict, compare=False)


_compiled: _Compiled | None = None


def _current() -> _Compiled:
    """The compiled identifiers of the current settings and user model (built on first use)."""
    source = ciba_settings.LOGIN_HINT_IDENTIFIERS
    label = settings.AUTH_USER_MODEL
    compiled = _compiled
    if compiled is not None and compiled.source is source and compiled.user_model_label == label:
        return compiled
    return _compile(source, label)


def _compile(source: Any, label: str) -> _Compiled:
    global _compiled
    model = get_user_model()
    identifiers = []
    for entry in entries(model, source):
        try:
            identifiers.append(compile_entry(model, entry))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"CIBA['LOGIN_HINT_IDENTIFIERS']: {exc} (manage.py check reports it: ciba.E051)"
            ) from None
    try:
        active = model._meta.get_field("is_active").concrete
    except FieldDoesNotExist:
        active = False
    compiled = _Compiled(
        source=source,
        user_model_label=label,
        model=model,
        identifiers=tuple(identifiers),
        distinct=any(identifier.many for identifier in identifiers),
        active_column=active,
    )
    _compiled = compiled  # one assignment: a concurrent reader sees the old form or the new
    return compiled


def _normalised(identifier: Identifier, hint: str) -> str | None:
    """``identifier``'s normaliser applied to ``hint``. A site's normaliser that raises (it must
    return ``None`` instead) is a bug of the site's, but a client's odd hint must not turn it
    into a 500: it is logged with its traceback, and the hint is not that kind of identifier."""
    try:
        value = identifier.normalise(hint)
    except Exception:
        logger.exception(
            "The login_hint normaliser of %r raised; it must return None instead.", identifier.field
        )
        return None
    return value if isinstance(value, str) and value else None


def find_user(hint: str, *, annotations: Mapping[str, Any] | None = None) -> Any | None:
    """The one active user ``hint`` identifies through the configured identifiers, else ``None``.

    One query at most, and the same one whether the identifier is unknown, an inactive user's
    or shared by two users; none at all for a hint no normaliser accepts (what the hint looks
    like, not what the database holds) or one longer than ``MAX_HINT_LENGTH`` or with a NUL.

    ``annotations`` (name: expression) are computed in that same query and set on the user
    found: the caller's next question about the user (``user_limits.block_annotation``: did
    they block this client?) then costs no round trip of its own.
    """
    if not isinstance(hint, str) or len(hint) > MAX_HINT_LENGTH or "\x00" in hint:
        return None
    compiled = _current()
    accepted, values = [], []
    for position, identifier in enumerate(compiled.identifiers):
        value = _normalised(identifier, hint)
        if value is not None:
            accepted.append(position)
            values.append(value)
    if not accepted:
        return None
    annotations = annotations or {}
    statement = _statement(compiled, tuple(accepted), annotations)
    if statement is not None:
        users = statement.fetch(
            *values, *(p for expression in annotations.values() for p in expression.params)
        )
    else:
        users = list(_queryset(compiled, accepted, values, annotations)[:2])
    if len(users) != 1:
        return None
    # A user model without an is_active column (AbstractBaseUser's class attribute, or a
    # property) is asked after the query, never in a second one.
    return users[0] if compiled.active_column or getattr(users[0], "is_active", True) else None


def _queryset(
    compiled: _Compiled,
    accepted: Iterable[int],
    values: Iterable[Any],
    annotations: Mapping[str, Any],
    users: Any = None,
) -> Any:
    """The lookup as a queryset: the identifiers at ``accepted`` OR-ed, each with its value."""
    condition = None
    for position, value in zip(accepted, values, strict=True):
        term = Q((compiled.identifiers[position].query, value))
        condition = term if condition is None else condition | term
    if compiled.active_column:
        condition &= Q(is_active=True)
    queryset = (compiled.model._default_manager if users is None else users).filter(condition)
    if annotations:
        queryset = queryset.annotate(**annotations)
    if compiled.distinct:
        queryset = queryset.distinct()
    return queryset


# --- the lookup's statement, written once ------------------------------------------------------
#
# Issue 29: building and compiling the lookup's queryset was most of its CPU (about 0.2 ms of
# 0.5 on the benchmark machine, more than the round trip). Which identifiers accepted a hint is
# all that changes its SQL, so each such shape is a ``ciba.statements`` select, compiled by the
# ORM once and run with the hint's values; it keeps building the queryset per request wherever
# that module cannot prove the statement unchanged (a site's manager, a field of its own, a
# backend that escapes the value, as SQLite's ``iexact`` does). Annotations must be ``RawSQL``:
# their parameters go to the database as given.


def _statement(
    compiled: _Compiled, accepted: tuple[int, ...], annotations: Mapping[str, Any]
) -> CompiledSelect | None:
    """The compiled statement for this shape of lookup, or ``None``: build the queryset."""
    if not all(type(expression) is RawSQL for expression in annotations.values()):
        return None
    key = (
        accepted,
        tuple((name, e.sql, len(e.params), _field_key(e.output_field)) for name, e in annotations.items()),
    )
    try:
        return compiled.statements[key]
    except KeyError:
        pass
    shapes = [(name, e.sql, len(e.params), e.output_field) for name, e in annotations.items()]

    def shape(users: Any, *values: Any) -> Any:
        hint_values, rest = values[: len(accepted)], list(values[len(accepted) :])
        standing = {}
        for name, sql, count, output_field in shapes:
            standing[name] = RawSQL(sql, rest[:count], output_field)
            del rest[:count]
        return _queryset(compiled, accepted, hint_values, standing, users)[:2]

    statement = CompiledSelect(compiled.model, shape)
    if len(compiled.statements) < 64:  # shapes are few: 2 ** identifiers, times annotations
        compiled.statements[key] = statement
    return statement


def _field_key(output_field: Any) -> tuple[Any, ...]:
    """An annotation's output field as part of a shape: its class and arguments. Not the field
    itself: each request makes its own, and fields compare by creation order, so the shape was
    never found again and the lookup was compiled on every request (0.4 ms of CPU each)."""
    _, path, args, kwargs = output_field.deconstruct()
    return (type(output_field), path, repr(args), repr(sorted(kwargs.items())))
