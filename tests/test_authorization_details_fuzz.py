"""``authorization_details`` fuzzed: whatever a client sends (malformed JSON, deep nesting, huge
arrays, numbers as strings and strings as numbers, any Unicode, duplicate types and member
names), ``parse`` and ``validate`` either accept it or refuse it with
``invalid_authorization_details`` (400) saying why; no other exception ever escapes, so the
endpoint never answers a 500.

What is accepted is also what the rest of the server can use without failing: it is within the
documented limits, storable in PostgreSQL's ``jsonb`` (no NUL, no lone surrogate), shown to the
user, hashed, and granted. And whatever a device sends back as "approved", ``narrow`` grants
only the requested payment or the same with a lower amount.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest
from babel.numbers import get_currency_precision
from django.conf import settings as django_settings
from django.test import override_settings
from django.utils import translation
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ciba import authorization_details as rar
from ciba.conf import ciba_settings
from ciba.errors import InvalidAuthorizationDetails, describe
from tests.test_authorization_details import PAYMENT

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALLOWED = ["payment_initiation"]
PAYMENT_MEMBERS = [*PAYMENT, "debtorAccount", "identifier", "actions", "datatypes", "privileges"]

#: Text as hostile as it gets: every code point (surrogates, NUL, controls, bidi overrides),
#: and, more often, any Unicode a real name could hold (so that much of it is accepted).
hostile_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
name_text = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp", "Cf")), max_size=80)
any_text = st.one_of(name_text, name_text, name_text, hostile_text)
numbers_as_strings = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from(["123.50", "0.01", "1e3", "-5", "00.1", ".5", "5.", "1_000", "\u0661\u0662", "123.505"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    numbers_as_strings,
    any_text,
    st.sampled_from(["EUR", "eur", "JPY", "XXX", "DE02100100109307118603", "payment_initiation"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(
            st.one_of(any_text, st.sampled_from(PAYMENT_MEMBERS + ["amount", "currency", "iban"])), inner
        ),
    ),
    max_leaves=30,
)


@st.composite
def mutated_payments(draw: Any) -> dict[str, Any]:
    """The RFC's payment with some members replaced, removed, added, or nested differently."""
    detail = copy.deepcopy(PAYMENT)
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 4]))):
        name = draw(st.sampled_from(PAYMENT_MEMBERS) | any_text)
        action = draw(st.sampled_from(["replace", "remove", "amount", "currency", "iban"]))
        if action == "remove":
            detail.pop(name, None)
        elif action == "amount":
            detail["instructedAmount"] = {**PAYMENT["instructedAmount"], "amount": draw(scalars)}
        elif action == "currency":
            detail["instructedAmount"] = {**PAYMENT["instructedAmount"], "currency": draw(scalars)}
        elif action == "iban":
            detail["creditorAccount"] = {"iban": draw(scalars)}
        else:
            detail[name] = draw(json_values)
    return detail


#: Payments a real kiosk could send: any currency, amount and name, so that most are accepted
#: and their rendering meets every script, locale and currency.
plausible_payments = st.builds(
    lambda code, amount, name, reference: {
        **PAYMENT,
        "instructedAmount": {"currency": code, "amount": amount},
        "creditorName": name,
        "remittanceInformationUnstructured": reference,
    },
    st.sampled_from(["EUR", "JPY", "BHD", "CHF", "INR", "AUD", "KWD", "CLF", "XAF"]),
    st.from_regex(r"\A(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?\Z"),
    # What a kiosk sends has some text in each: whitespace alone is refused ("must not be empty").
    name_text.map(lambda t: t[:70]).filter(lambda t: t.strip()),
    name_text.map(lambda t: t[:140] if t[:140].strip() else "ref"),
)


def deep(depth: int, leaf: str = "[]") -> str:
    return "[" * depth + leaf + "]" * depth


texts = st.one_of(
    any_text,
    json_values.map(json.dumps),
    st.lists(mutated_payments(), max_size=14).map(json.dumps),
    st.lists(plausible_payments, min_size=1, max_size=3).map(json.dumps),
    # duplicate types, repeated objects: up to well past the item limit
    st.integers(0, 40).map(lambda n: json.dumps([PAYMENT] * n)),
    # deep nesting, around the limit and far beyond Python's recursion limit
    st.integers(0, 9000).map(deep),
    st.integers(0, 30).map(lambda n: json.dumps([{"type": "payment_initiation", "x": json.loads(deep(n))}])),
    # text cut anywhere, and duplicate member names
    st.lists(mutated_payments(), min_size=1, max_size=3).flatmap(
        lambda value: st.integers(0, len(json.dumps(value))).map(lambda cut: json.dumps(value)[:cut])
    ),
    st.just('[{"type": "payment_initiation", "creditorName": "A", "creditorName": "B"}]'),
    # numbers JSON may spell but not every reader can hold
    st.sampled_from(["[NaN]", "[-Infinity]", "[1e400]", "[" + "9" * 4400 + "]", "[9007199254740993]"]),
)
claims = st.one_of(
    st.lists(mutated_payments(), max_size=14),
    st.lists(plausible_payments, min_size=1, max_size=12),
    st.lists(json_values, max_size=4),
    json_values,
    st.integers(0, 40).map(lambda n: [copy.deepcopy(PAYMENT) for _ in range(n)]),
)


SITE_SCHEMA = {
    "type": "object",
    "required": ["type", "limit"],
    "properties": {
        "limit": {"type": "object", "required": ["amount", "currency"]},
        "days": {"type": "integer", "multipleOf": 7, "maximum": 1e308},
        "email": {"type": "string", "format": "email"},
        "until": {"type": "string", "format": "date-time"},
        "code": {"type": "string", "pattern": "^[A-Z]{2}[0-9]+$"},
    },
}
SITE_TYPES = {
    "payment_initiation": "ciba.authorization_details.payment.PaymentInitiation",
    "spending_limit": {
        "class": "ciba.authorization_details.JsonSchemaType",
        "schema": SITE_SCHEMA,
        "summary": "Limit {limit} for {days} days",
        "lower": ["limit.amount", "days"],
    },
    "anything": {"class": "ciba.authorization_details.JsonSchemaType", "schema": {}},
}


@pytest.fixture(autouse=True, scope="module")
def site_types():
    """The shipped payment type and two of a site's own, for every example of this module
    (a fixture per example would rebuild the registry hundreds of times)."""
    with override_settings(CIBA={**django_settings.CIBA, "AUTHORIZATION_DETAILS_TYPES": SITE_TYPES}):
        yield


def refused_clearly(exc: InvalidAuthorizationDetails) -> None:
    body = exc.as_dict()
    assert exc.status_code == 400
    assert body["error"] == "invalid_authorization_details"
    assert body["error_description"] and body["error_description"] == describe(body["error_description"])


def check_usable(details: list[dict[str, Any]]) -> None:
    """What was accepted can be stored, shown, hashed and granted."""
    assert 1 <= len(details) <= ciba_settings.AUTHORIZATION_DETAILS_MAX_ITEMS
    stored = json.dumps(details, ensure_ascii=False, allow_nan=False)
    assert "\x00" not in stored
    stored.encode("utf-8")  # no lone surrogate: PostgreSQL's jsonb would refuse the row
    assert len(stored.encode("utf-8")) <= ciba_settings.AUTHORIZATION_DETAILS_MAX_BYTES
    for language in ("en", "de", "ar"):
        with translation.override(language):
            shown = rar.rendering(details)
        assert [s["type"] for s in shown] == [d["type"] for d in details]
        for item in shown:
            assert item["text"] and "\n" not in item["summary"]
            assert len(item["summary"]) <= rar.SUMMARY_MAX_CHARS
        assert len(rar.digest(details, shown)) == 64
    assert rar.narrow(details, None) == details
    assert rar.narrow(details, copy.deepcopy(details)) == details


def outcome(raw: Any) -> list[dict[str, Any]] | None:
    try:
        details = rar.validate(rar.parse(raw), allowed_types=ALLOWED)
    except InvalidAuthorizationDetails as exc:
        refused_clearly(exc)
        return None
    check_usable(details)
    return details


@EXAMPLES
@given(texts)
@example("[" * 100_000)
@example(json.dumps([PAYMENT]))
def test_any_form_parameter_is_accepted_or_refused_with_invalid_authorization_details(raw):
    outcome(raw)


@EXAMPLES
@given(claims)
@example([PAYMENT, PAYMENT])
def test_any_signed_request_claim_is_accepted_or_refused_with_invalid_authorization_details(raw):
    outcome(raw)


@EXAMPLES
@given(st.lists(mutated_payments(), min_size=1, max_size=3))
def test_an_accepted_payment_has_every_member_the_type_requires_and_no_other(details):
    accepted = outcome(details)
    if accepted is None:
        return
    for detail in accepted:
        assert set(detail) - {"locations", "actions", "datatypes", "identifier", "privileges"} <= {
            "type",
            "instructedAmount",
            "creditorName",
            "creditorAccount",
            "remittanceInformationUnstructured",
        }
        assert Decimal(detail["instructedAmount"]["amount"]) > 0


@EXAMPLES
@given(st.one_of(st.lists(mutated_payments(), max_size=3), claims, st.none()))
@example([{**PAYMENT, "instructedAmount": {"currency": "EUR", "amount": "1.00"}}])
def test_whatever_the_device_approves_the_client_gets_the_request_or_a_lower_amount(approved):
    requested = rar.validate([PAYMENT], allowed_types=ALLOWED)
    try:
        granted = rar.narrow(requested, approved)
    except InvalidAuthorizationDetails as exc:
        refused_clearly(exc)
        return
    assert len(granted) == 1
    [payment] = granted
    asked = requested[0]
    assert {**payment, "instructedAmount": asked["instructedAmount"]} == asked
    assert payment["instructedAmount"]["currency"] == asked["instructedAmount"]["currency"]
    assert 0 < Decimal(payment["instructedAmount"]["amount"]) <= Decimal(asked["instructedAmount"]["amount"])


@EXAMPLES
@given(st.lists(plausible_payments, min_size=1, max_size=3))
def test_a_payment_any_kiosk_could_send_is_accepted_exactly_when_its_amount_fits_its_currency(details):
    def fits(detail: dict[str, Any]) -> bool:
        amount = detail["instructedAmount"]["amount"]
        decimals = len(amount.partition(".")[2])
        return Decimal(amount) > 0 and decimals <= get_currency_precision(
            detail["instructedAmount"]["currency"]
        )

    assert (outcome(details) is not None) == all(fits(detail) for detail in details)


@settings(EXAMPLES, max_examples=200)  # most of its time is generating nested JSON
@given(
    st.lists(
        st.one_of(
            st.dictionaries(
                st.sampled_from(["limit", "days", "email", "until", "code", "note"]), json_values
            ).map(lambda members: {**members, "type": "spending_limit"}),
            json_values.map(lambda value: {"type": "anything", "value": value}),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_object_of_a_sites_schema_type_is_accepted_and_shown_or_refused_clearly(details):
    try:
        accepted = rar.validate(rar.parse(details), allowed_types=["spending_limit", "anything"])
    except InvalidAuthorizationDetails as exc:
        refused_clearly(exc)
        return
    check_usable(accepted)
