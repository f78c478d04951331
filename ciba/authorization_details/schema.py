"""A type defined by a JSON Schema the site supplies: a new kind of transaction registered in
settings, without writing a class.

    CIBA = {"AUTHORIZATION_DETAILS_TYPES": {
        "account_information": {
            "class": "ciba.authorization_details.schema.JsonSchemaType",
            "schema": {...},                       # the whole object, "type" included
            "title": "Share your account details", # the first line the user reads
            "display": [["accounts", "Accounts"], ["period.days", "For (days)"]],
            "summary": "Share {accounts}",         # the push notification's line
            "lower": ["period.days"],              # the user may approve a smaller number
        },
    }}

The schema is checked when the type is first used (a broken schema is an
``ImproperlyConfigured``, not a refused client); ``format`` is asserted. Titles, labels and the
summary go through ``gettext`` when shown, so the site's translation catalogues translate them.
An object with exactly ``amount`` and ``currency`` members (an ISO 4217 code) is shown as money
in the user's locale.
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

from babel.numbers import is_currency
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext
from jsonschema import FormatChecker
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.validators import validator_for

from .base import DetailType, check_common_members, labelled, one_line, refuse
from .money import as_decimal, money, number

_MISSING = object()
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
#: A member name fit to repeat in an error description (a client's own names are left out).
_PRINTABLE_NAME = re.compile(r"[A-Za-z0-9_:.\-]{1,64}")


class JsonSchemaType(DetailType):
    """A type whose objects must satisfy ``schema`` (any JSON Schema draft ``jsonschema``
    supports; ``$schema`` chooses, the latest draft otherwise)."""

    option_defaults = {"schema": None, "title": "", "display": None, "summary": "", "lower": []}

    def __init__(self, type_name: str, **options: Any) -> None:
        super().__init__(type_name, **options)
        where = f"CIBA['AUTHORIZATION_DETAILS_TYPES'][{type_name!r}]"
        schema = self.options["schema"]
        if not isinstance(schema, dict):
            raise ImproperlyConfigured(f"{where}: JsonSchemaType needs a 'schema' (a JSON Schema object).")
        cls = validator_for(schema)
        try:
            cls.check_schema(schema)
        except SchemaError as exc:
            raise ImproperlyConfigured(f"{where}: not a valid JSON Schema: {exc.message}") from exc
        self.validator = cls(schema, format_checker=FormatChecker())
        display = self.options["display"]
        if display is not None and not all(
            isinstance(row, (list, tuple)) and len(row) == 2 and all(isinstance(x, str) for x in row)
            for row in display
        ):
            raise ImproperlyConfigured(f"{where}: 'display' is a list of [member path, label] pairs.")
        if not all(isinstance(path, str) for path in self.options["lower"]):
            raise ImproperlyConfigured(f"{where}: 'lower' is a list of member paths.")

    def validate(self, detail: dict[str, Any]) -> dict[str, Any]:
        error = best_match(self.validator.iter_errors(detail))
        if error is not None:
            _refuse_for(error)
        check_common_members(detail)
        return copy.deepcopy(detail)

    def render(self, detail: dict[str, Any]) -> str:
        lines = [gettext(self.options["title"]) if self.options["title"] else self.type_name]
        for path, label in self._display(detail):
            value = member(detail, path)
            if value is not _MISSING:
                lines.append(labelled(gettext(label), show(value)))
        return "\n".join(lines)

    def summary(self, detail: dict[str, Any]) -> str:
        template = self.options["summary"]
        if template:
            text = _PLACEHOLDER.sub(lambda m: _shown_member(detail, m.group(1)), gettext(template))
        else:
            title = gettext(self.options["title"]) if self.options["title"] else self.type_name
            values = (member(detail, path) for path, _ in self._display(detail))
            shown = [show(value) for value in values if value is not _MISSING]
            text = f"{title}: {shown[0]}" if shown else title
        return one_line(text)

    def narrow(self, requested: dict[str, Any], approved: dict[str, Any]) -> dict[str, Any]:
        """Identical but for the ``lower`` members, each at most the requested value and above
        zero."""
        approved = self.validate(approved)
        restored = copy.deepcopy(approved)
        for path in self.options["lower"]:
            wanted, given = member(requested, path), member(approved, path)
            if wanted is _MISSING or given is _MISSING:
                continue
            lower, upper = _amount(given), _amount(wanted)
            if lower is None or upper is None or not (0 < lower <= upper):
                refuse(path, "may only be lowered, and stay above zero")
            _set_member(restored, path, wanted)
        if restored != requested:
            refuse("", f"only {', '.join(self.options['lower']) or 'nothing'} may differ from the request")
        return approved

    def _display(self, detail: dict[str, Any]) -> list[tuple[str, str]]:
        if self.options["display"] is not None:
            return [(path, label) for path, label in self.options["display"]]
        return [(name, name) for name in detail if name != "type"]


def member(detail: Any, path: str) -> Any:
    """The value at a dotted path of objects (``_MISSING`` when absent)."""
    node = detail
    for name in path.split("."):
        if not isinstance(node, dict) or name not in node:
            return _MISSING
        node = node[name]
    return node


def _set_member(detail: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = detail
    for name in parents:
        node = node[name]
    node[last] = copy.deepcopy(value)


def _amount(value: Any) -> Decimal | None:
    if isinstance(value, dict) and set(value) == {"amount", "currency"}:
        value = value["amount"]
    return as_decimal(value)


def show(value: Any) -> str:
    """A JSON value as the user reads it: money in the locale's way, numbers with its
    separators, yes/no, lists joined."""
    if isinstance(value, dict):
        amount = value.get("amount")
        code = value.get("currency")
        if set(value) == {"amount", "currency"} and isinstance(code, str) and is_currency(code, "en"):
            decimal = as_decimal(amount)
            if decimal is not None:
                return money(decimal, code)
        return "; ".join(labelled(name, show(item)) for name, item in value.items())
    if isinstance(value, list):
        return ", ".join(show(item) for item in value)
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, (int, float)):
        return number(value)
    if value is None:
        return "\u2014"
    return str(value)


def _shown_member(detail: dict[str, Any], path: str) -> str:
    value = member(detail, path)
    return "" if value is _MISSING else show(value)


def _refuse_for(error: ValidationError) -> None:
    """An error description from the schema's words, not the client's: the keyword that failed
    and where, never the offending value."""
    names = [str(p) if isinstance(p, int) else p for p in error.absolute_path]
    path = ".".join(n if _PRINTABLE_NAME.fullmatch(str(n)) else "?" for n in map(str, names))
    keyword, expected = error.validator, error.validator_value
    if keyword == "required" and isinstance(error.instance, dict):
        missing = next((name for name in expected if name not in error.instance), "")
        refuse(".".join(filter(None, [path, missing])), "is required")
    if keyword in ("additionalProperties", "unevaluatedProperties"):
        refuse(path, "holds a member this type does not define")
    if keyword == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        refuse(path, f"must be of JSON type {' or '.join(map(str, kinds))}")
    if keyword in ("enum", "const"):
        refuse(path, "is not a value this type allows")
    if keyword == "format":
        refuse(path, f"must be a valid {expected}")
    refuse(path, f"does not satisfy the type's schema ({keyword})")
