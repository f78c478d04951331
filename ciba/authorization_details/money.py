"""Amounts and currencies, checked against ISO 4217 and shown the way the user's locale
writes money.

Babel carries the CLDR data (currency codes, their minor units, every locale's symbol,
separators and pattern): "€123.50" in English, "123,50 €" in German. A hand-written table
would be wrong for some locale the day a user of it approves a payment.
"""

from __future__ import annotations

import decimal
import re
from contextlib import AbstractContextManager
from decimal import Decimal, InvalidOperation
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, format_decimal, get_currency_precision, is_currency
from django.conf import settings
from django.utils import translation

from .base import refuse

#: ISO 4217 codes that name no money: "no currency" and the testing code.
_NOT_MONEY = frozenset({"XXX", "XTS"})
#: A decimal amount as payment APIs write it (RFC 9396's example: "123.50"): digits, at most
#: one point, no sign, no exponent, no leading zeros; 15 integer digits bound what any
#: currency's largest real payment needs and keep Decimal arithmetic exact.
_AMOUNT = re.compile(r"(?:0|[1-9][0-9]{0,14})(?:\.([0-9]+))?")

#: An IEEE 754 double spans 10^-324 to 10^308; with a locale's fraction digits, 1000 is ample.
_DIGITS_OF_ANY_DOUBLE = 1000


def currency(value: Any, path: str, *, allowed: list[str] | None = None) -> str:
    """An ISO 4217 alphabetic code, upper case as the standard writes it."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value):
        refuse(path, "must be an ISO 4217 currency code (three upper-case letters)")
    if value in _NOT_MONEY or not is_currency(value, "en"):
        refuse(path, "is not an ISO 4217 currency code")
    if allowed and value not in allowed:
        refuse(path, f"must be one of {', '.join(allowed)}")
    return value


def decimal_amount(value: Any, path: str, currency_code: str) -> Decimal:
    """A positive amount written as a decimal string, with no more fraction digits than the
    currency has minor units (so nothing is rounded between the request and the screen)."""
    if not isinstance(value, str):
        refuse(path, 'must be a string holding a decimal number, such as "123.50"')
    match = _AMOUNT.fullmatch(value)
    if not match:
        refuse(path, 'must be a decimal number such as "123.50" (digits, one point, no sign)')
    fraction = match.group(1) or ""
    precision = get_currency_precision(currency_code)
    if len(fraction) > precision:
        refuse(path, f"has more decimal places than the currency has ({precision})")
    amount = Decimal(value)
    if amount <= 0:
        refuse(path, "must be greater than zero")
    return amount


def as_decimal(value: Any) -> Decimal | None:
    """A JSON number or decimal string as a ``Decimal`` (floats through their shortest repr,
    which is what the client wrote); ``None`` when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and _AMOUNT.fullmatch(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            return None
    return None


def active_locale() -> Locale:
    """The Babel locale of the active Django language (``LANGUAGE_CODE`` when none is active),
    English when Babel does not know it."""
    language = translation.get_language() or settings.LANGUAGE_CODE or "en"
    try:
        return Locale.parse(translation.to_locale(language))
    except (UnknownLocaleError, ValueError):
        try:
            return Locale.parse(translation.to_locale(language).split("_")[0])
        except (UnknownLocaleError, ValueError):
            return Locale.parse("en")


def money(amount: Decimal, currency_code: str) -> str:
    """``amount`` in ``currency_code`` as the active locale writes it, every digit kept
    (``decimal_quantization=False``: an amount is never shown rounded)."""
    with _every_digit():
        return format_currency(amount, currency_code, locale=active_locale(), decimal_quantization=False)


def number(value: int | float | Decimal) -> str:
    """A number as the active locale writes it, every digit kept."""
    if isinstance(value, float):
        value = Decimal(repr(value))
    with _every_digit():
        return format_decimal(value, locale=active_locale(), decimal_quantization=False)


def _every_digit() -> AbstractContextManager[decimal.Context]:
    """Room for every digit of any finite JSON number: Babel quantizes in the current context,
    whose default 28 digits cannot hold 1e25 with three decimals (InvalidOperation)."""
    return decimal.localcontext(prec=_DIGITS_OF_ANY_DOUBLE)
