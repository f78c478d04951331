"""What every authorization details type is: the contract a site's own type implements.

A type is the server's promise about one kind of object in ``authorization_details``
(RFC 9396 §2): which members it may hold (anything else is refused, §5), what the user is
shown for it, and whether the user may approve less than was asked. Keeping all four in one
class means the text on the phone cannot describe an object the validator did not check.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from typing import Any, ClassVar, NoReturn

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext

from ..errors import InvalidAuthorizationDetails

#: RFC 9396 §2.2: members any type may use, with the shapes the RFC gives them.
COMMON_MEMBERS = ("locations", "actions", "datatypes", "identifier", "privileges")

#: Line breaks and runs of ASCII spacing; a no-break space (Babel's, between an amount and its
#: currency sign) is kept, so a summary never wraps "123,50" away from its "€".
_WHITESPACE = re.compile(r"[ \t\n\r\f\v]+")

#: The longest summary a push notification carries: FCM and Web Push payloads are small, and
#: a summary is a reminder of the transaction, not its record (the device page shows the text).
SUMMARY_MAX_CHARS = 120


def refuse(path: str, why: str) -> NoReturn:
    """Refuse one member of one object. ``path`` names the member (``instructedAmount.amount``),
    ``why`` says what is wrong in words the client's developer can act on; neither repeats the
    client's value, so an error description never echoes what an attacker sent."""
    raise InvalidAuthorizationDetails(f"{path}: {why}" if path else why)


class DetailType:
    """One ``authorization_details`` type, built from ``CIBA["AUTHORIZATION_DETAILS_TYPES"]``
    as ``cls(type_name, **options)``.

    Subclasses implement ``validate`` (refuse what the type does not define, return a
    normalised copy), ``render`` (the lines the user reads, translated and formatted for the
    active locale) and ``summary`` (one short line for a push notification). ``narrow`` decides
    whether an approved object may replace a requested one; by default only an identical one
    may, so a type lets the user approve less only when it says so.

    ``option_defaults`` lists the options the type accepts: an option the site spells wrongly
    is an ``ImproperlyConfigured`` at the first use, not a silently ignored rule.
    """

    option_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, type_name: str, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.option_defaults))
        if unknown:
            raise ImproperlyConfigured(
                f"CIBA['AUTHORIZATION_DETAILS_TYPES'][{type_name!r}]: {type(self).__name__} "
                f"takes no option {', '.join(map(repr, unknown))} "
                f"(it takes: {', '.join(map(repr, self.option_defaults)) or 'none'})."
            )
        self.type_name = type_name
        self.options = {**copy.deepcopy(self.option_defaults), **options}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.type_name!r}>"

    def validate(self, detail: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def render(self, detail: dict[str, Any]) -> str:
        raise NotImplementedError

    def summary(self, detail: dict[str, Any]) -> str:
        raise NotImplementedError

    def narrow(self, requested: dict[str, Any], approved: dict[str, Any]) -> dict[str, Any]:
        approved = self.validate(approved)
        if approved != requested:
            refuse("", "this type can only be approved as requested")
        return approved


# --- members shared by every type ------------------------------------------------------------


def check_common_members(detail: dict[str, Any]) -> dict[str, Any]:
    """RFC 9396 §2.2's common members, checked against the shapes the RFC gives them: arrays
    of strings, and ``identifier`` a string. Returns those present, copied."""
    common: dict[str, Any] = {}
    for name in COMMON_MEMBERS:
        if name not in detail:
            continue
        value = detail[name]
        if name == "identifier":
            common[name] = text_member(value, name, max_chars=256)
        else:
            if not isinstance(value, list) or not value:
                refuse(name, "must be a non-empty array of strings")
            common[name] = [text_member(item, f"{name}[{i}]", max_chars=2048) for i, item in enumerate(value)]
    return common


def text_member(value: Any, path: str, *, max_chars: int, required: bool = True) -> str:
    """A string member the user may read: non-blank, at most ``max_chars`` characters.
    (``parse`` has already refused the characters that could make a display lie.)"""
    if not isinstance(value, str):
        refuse(path, "must be a string")
    if required and not value.strip():
        refuse(path, "must not be empty")
    if len(value) > max_chars:
        refuse(path, f"must be at most {max_chars} characters")
    return value


def object_member(value: Any, path: str, *, allowed: set[str], required: set[str]) -> dict[str, Any]:
    """A nested object with exactly the members a type defines (RFC 9396 §5: unknown members
    are refused, not ignored)."""
    if not isinstance(value, dict):
        refuse(path, "must be a JSON object")
    unknown = set(value) - allowed
    if unknown:
        refuse(path, f"holds a member this type does not define (allowed: {', '.join(sorted(allowed))})")
    for name in sorted(required - set(value)):
        refuse(f"{path}.{name}" if path else name, "is required")
    return value


# --- what the device shows ---------------------------------------------------------------------


def one_line(text: str, max_chars: int = SUMMARY_MAX_CHARS) -> str:
    """``text`` as one line of at most ``max_chars`` characters (grapheme clusters are not
    split more than Python can tell: combining marks stay with their letter)."""
    line = _WHITESPACE.sub(" ", text).strip()
    if len(line) <= max_chars:
        return line
    cut = max_chars - 1
    while cut > 0 and unicodedata.combining(line[cut]):
        cut -= 1
    return line[:cut].rstrip() + "\u2026"


def labelled(label: str, value: str) -> str:
    """One line of a rendering: "Label: value", with the colon the active language uses."""
    return gettext("%(label)s: %(value)s") % {"label": label, "value": value}
