"""``ciba.authorization_details`` (RFC 9396): what a client is told when its
``authorization_details`` are refused, what the user reads on the device, what the approval
records and grants, and what an operator sees when a type is registered wrongly.

The endpoints that call it are tested with HTTP elsewhere (tests/test_rar_*.py); here each
rule is exercised directly, with the error body a client would receive.
"""

from __future__ import annotations

import copy
import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import translation

from ciba import authorization_details as rar
from ciba.errors import InvalidAuthorizationDetails, describe

PAYMENT_TYPES = ["payment_initiation"]

#: RFC 9396 §2's example, as a kiosk would send it.
PAYMENT = {
    "type": "payment_initiation",
    "locations": ["https://example.com/payments"],
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02100100109307118603"},
    "remittanceInformationUnstructured": "Ref Number Merchant",
}


def payment(**changes: Any) -> dict[str, Any]:
    detail = copy.deepcopy(PAYMENT)
    for name, value in changes.items():
        if value is None:
            detail.pop(name)
        else:
            detail[name] = value
    return detail


def accepted(raw: Any, allowed: list[str] = PAYMENT_TYPES) -> list[dict[str, Any]]:
    return rar.validate(rar.parse(raw), allowed_types=allowed)


def refusal(raw: Any, allowed: list[str] = PAYMENT_TYPES) -> dict[str, Any]:
    """The error body the client receives, checked to be a 400 invalid_authorization_details."""
    with pytest.raises(InvalidAuthorizationDetails) as caught:
        accepted(raw, allowed)
    assert caught.value.status_code == 400
    body = caught.value.as_dict()
    assert body["error"] == "invalid_authorization_details"
    assert body["error_description"] == describe(body["error_description"])  # RFC 6749 charset
    return body


def description(raw: Any, allowed: list[str] = PAYMENT_TYPES) -> str:
    return refusal(raw, allowed)["error_description"]


@pytest.fixture
def detail_types(settings):
    """Registers the given types (``AUTHORIZATION_DETAILS_TYPES``) for one test."""

    def register(types: dict[str, Any], **others: Any) -> None:
        settings.CIBA = {**settings.CIBA, "AUTHORIZATION_DETAILS_TYPES": types, **others}

    return register


# --- a client's authorization_details accepted ---------------------------------------------------


def test_the_rfc_example_payment_is_accepted_as_a_form_parameter_and_as_a_signed_claim():
    as_form = accepted(json.dumps([PAYMENT]))
    as_claim = accepted([PAYMENT])
    assert as_form == as_claim == [PAYMENT]


def test_an_iban_written_in_groups_is_stored_compact():
    detail = payment(creditorAccount={"iban": "de02 1001 0010 9307 1186 03"})
    [stored] = accepted([detail])
    assert stored["creditorAccount"] == {"iban": "DE02100100109307118603"}


def test_validated_details_are_copies_the_caller_cannot_change_through_the_request():
    sent = [payment()]
    [stored] = accepted(sent)
    sent[0]["instructedAmount"]["amount"] = "999.00"
    assert stored["instructedAmount"]["amount"] == "123.50"


def test_the_same_type_may_appear_twice_for_two_payments():
    second = payment(creditorName="Merchant B", instructedAmount={"currency": "EUR", "amount": "5"})
    assert [d["creditorName"] for d in accepted([payment(), second])] == ["Merchant A", "Merchant B"]


def test_currencies_with_no_minor_unit_or_three_take_exactly_that_many_decimals():
    assert accepted([payment(instructedAmount={"currency": "JPY", "amount": "1000"})])
    assert accepted([payment(instructedAmount={"currency": "BHD", "amount": "1.125"})])
    assert "more decimal places than the currency has (0)" in description(
        [payment(instructedAmount={"currency": "JPY", "amount": "1000.5"})]
    )


def test_the_supported_types_are_the_registered_ones_in_their_order(detail_types):
    assert rar.supported_types() == ["payment_initiation"]
    detail_types(
        {
            "account_information": {"class": "ciba.authorization_details.JsonSchemaType", "schema": {}},
            "payment_initiation": "ciba.authorization_details.payment.PaymentInitiation",
        }
    )
    assert rar.supported_types() == ["account_information", "payment_initiation"]


# --- a client's authorization_details refused (RFC 9396 §5) ---------------------------------------


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("[{", "must be valid JSON"),
        ('{"type": "payment_initiation"}', "must be a JSON array of objects"),
        ("[]", "must hold at least one object"),
        ("[1]", "authorization_details[0]: must be a JSON object"),
        ("[{}]", "authorization_details[0]: must have a type member holding a non-empty string"),
        ('[{"type": 7}]', "must have a type member holding a non-empty string"),
        ('[{"type": ""}]', "must have a type member holding a non-empty string"),
        ("[NaN]", "must not hold NaN or Infinity"),
        ("[1e999]", "too large to represent"),
        ("[9007199254740993]", "integer beyond 2^53-1"),
        ("[" + "9" * 5000 + "]", "must be valid JSON"),
        ('[{"type": "payment_initiation", "type": "other"}]', "must not repeat a member name"),
    ],
)
def test_malformed_authorization_details_are_refused_with_the_reason(raw, why):
    assert why in description(raw)


def test_more_objects_than_the_limit_are_refused(detail_types):
    detail_types({"payment_initiation": "ciba.authorization_details.payment.PaymentInitiation"})
    assert len(accepted([payment()] * 10)) == 10
    assert "may hold at most 10 objects" in description([payment()] * 11)


def test_more_bytes_than_the_limit_are_refused_before_parsing(detail_types):
    detail_types(
        {"payment_initiation": "ciba.authorization_details.payment.PaymentInitiation"},
        AUTHORIZATION_DETAILS_MAX_BYTES=300,
    )
    text = json.dumps([payment()])
    assert len(text) < 300 and accepted(text)
    assert "must be at most 300 bytes of JSON" in description(text + " " * 300)
    assert "must be at most 300 bytes" in description([payment(remittanceInformationUnstructured="x" * 140)])


def test_nesting_beyond_the_limit_is_refused_however_deep():
    assert rar.MAX_DEPTH == 10
    nested: Any = [payment()]
    nested[0]["locations"] = ["x"]
    assert accepted(nested)  # array, object, locations: 3 levels
    for depth in (rar.MAX_DEPTH + 1, 50, 1000, 8000):  # past Python's recursion limit too
        text = "[" * depth + "]" * depth
        assert "may nest at most 10 levels deep" in description(text)
    assert "must be at most 16384 bytes" in description("[" * 100_000 + "]" * 100_000)
    deep: Any = "x"
    for _ in range(rar.MAX_DEPTH + 1):  # a signed request's claim, already parsed
        deep = [deep]
    assert "may nest at most 10 levels deep" in description(deep)


@pytest.mark.parametrize(
    "text",
    [
        "Merchant\u202eA",  # right-to-left override: the name would read backwards
        "Merchant\u2066A",  # isolate
        "Merchant A\nAmount: 1.00",  # a line break forging a second line
        "Merchant\u2028A",  # line separator
        "Merchant\x00A",  # NUL, which PostgreSQL's jsonb refuses
        "Merchant\x85A",  # C1 next line
    ],
)
def test_text_that_would_display_as_something_else_is_refused(text):
    assert "control characters, line separators or bidirectional overrides" in description(
        json.dumps([payment(creditorName=text)])
    )


def test_a_lone_surrogate_is_refused_rather_than_failing_to_store():
    assert "no lone surrogates" in description('[{"type": "payment_initiation", "x": "\\ud800"}]')


def test_an_unknown_type_is_refused_without_naming_it():
    body = refusal([{"type": "<script>alert(1)</script>"}])
    assert body["error_description"] == (
        "authorization_details[0]: the type is not one this server supports "
        "(authorization_details_types_supported)"
    )


def test_a_type_the_client_did_not_register_is_refused():
    assert description([payment()], allowed=[]) == (
        "authorization_details[0]: this client is not registered for the type payment_initiation "
        "(authorization_details_types)"
    )


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"instructedAmount": None}, "instructedAmount: is required"),
        ({"creditorName": None}, "creditorName: is required"),
        ({"creditorAccount": None}, "creditorAccount: is required"),
        ({"instructedAmount": {"currency": "EUR"}}, "instructedAmount.amount: is required"),
        ({"instructedAmount": {"amount": "1.00"}}, "instructedAmount.currency: is required"),
        ({"creditorAccount": {}}, "creditorAccount.iban: is required"),
        ({"debtorAccount": {"iban": "DE02100100109307118603"}}, "holds a member this type does not define"),
        (
            {"instructedAmount": {"amount": "1.00", "currency": "EUR", "fee": "1"}},
            "instructedAmount: holds a member this type does not define",
        ),
        ({"instructedAmount": {"amount": 123.5, "currency": "EUR"}}, "must be a string holding a decimal"),
        ({"instructedAmount": {"amount": "1,50", "currency": "EUR"}}, "must be a decimal number"),
        ({"instructedAmount": {"amount": "-1", "currency": "EUR"}}, "must be a decimal number"),
        ({"instructedAmount": {"amount": "1e3", "currency": "EUR"}}, "must be a decimal number"),
        ({"instructedAmount": {"amount": "0.00", "currency": "EUR"}}, "must be greater than zero"),
        ({"instructedAmount": {"amount": "1.001", "currency": "EUR"}}, "more decimal places"),
        ({"instructedAmount": {"amount": "1", "currency": "eur"}}, "ISO 4217 currency code"),
        ({"instructedAmount": {"amount": "1", "currency": "ABC"}}, "is not an ISO 4217 currency code"),
        ({"instructedAmount": {"amount": "1", "currency": "XXX"}}, "is not an ISO 4217 currency code"),
        ({"instructedAmount": "123.50 EUR"}, "instructedAmount: must be a JSON object"),
        ({"creditorName": "   "}, "creditorName: must not be empty"),
        ({"creditorName": "M" * 71}, "creditorName: must be at most 70 characters"),
        ({"creditorName": ["Merchant A"]}, "creditorName: must be a string"),
        ({"creditorAccount": {"iban": "DE02100100109307118604"}}, "is not a valid IBAN"),
        ({"creditorAccount": {"iban": "DE\u0660\u0662100100109307118603"}}, "letters and digits"),
        ({"remittanceInformationUnstructured": "r" * 141}, "at most 140 characters"),
        ({"locations": "https://example.com/payments"}, "locations: must be a non-empty array of strings"),
        ({"actions": [1]}, "actions[0]: must be a string"),
        ({"identifier": 5}, "identifier: must be a string"),
    ],
)
def test_a_payment_breaking_its_type_is_refused_naming_the_member(changes, why):
    text = description([payment(**changes)])
    assert text.startswith("authorization_details[0] (payment_initiation): ")
    assert why in text


def test_the_second_object_at_fault_is_the_one_named():
    text = description([payment(), payment(creditorName=None)])
    assert text == "authorization_details[1] (payment_initiation): creditorName: is required"


def test_a_refusal_never_repeats_what_the_client_sent():
    secret = "Evil Corp <img src=x>"
    for detail in (
        payment(creditorName=secret + "x" * 70),
        payment(instructedAmount={"amount": secret, "currency": "EUR"}),
        payment(**{secret: 1}),
    ):
        assert "Evil" not in description([detail])


def test_a_site_may_take_payments_in_its_own_currencies_only(detail_types):
    detail_types(
        {
            "payment_initiation": {
                "class": "ciba.authorization_details.payment.PaymentInitiation",
                "currencies": ["EUR", "CHF"],
            }
        }
    )
    assert accepted([payment()])
    assert "instructedAmount.currency: must be one of EUR, CHF" in description(
        [payment(instructedAmount={"amount": "1.00", "currency": "USD"})]
    )


# --- what the user reads ---------------------------------------------------------------------------


def test_the_device_shows_the_amount_payee_account_and_reference_in_english():
    with translation.override("en"):
        [shown] = rar.rendering(accepted([PAYMENT]))
    assert shown == {
        "type": "payment_initiation",
        "text": (
            "Payment of €123.50\nTo: Merchant A\nAccount: DE02 1001 0010 9307 1186 03\n"
            "Reference: Ref Number Merchant"
        ),
        "summary": "Pay €123.50 to Merchant A",
    }


@pytest.mark.parametrize(
    ("language", "amount"),
    [
        ("de", "123,50\xa0€"),
        ("fr", "123,50\xa0€"),
        ("de-ch", "EUR\xa0123.50"),
        ("en-gb", "€123.50"),
    ],
)
def test_the_amount_is_written_the_way_the_users_locale_writes_money(language, amount):
    with translation.override(language):
        [shown] = rar.rendering(accepted([PAYMENT]))
    assert shown["text"].splitlines()[0].endswith(amount)
    assert amount in shown["summary"]  # the no-break space keeps the sign with the amount


def test_an_amount_is_never_shown_rounded():
    detail = payment(instructedAmount={"currency": "BHD", "amount": "1000.125"})
    with translation.override("en"):
        [shown] = rar.rendering(accepted([detail]))
    assert "Payment of BHD1,000.125\n" in shown["text"]


def test_a_language_babel_does_not_know_falls_back_without_failing():
    with translation.override("xx-yy"):
        [shown] = rar.rendering(accepted([PAYMENT]))
    assert "€123.50" in shown["text"]


def test_the_summary_is_one_line_short_enough_for_a_push_notification(detail_types):
    detail_types(
        {
            "note": {
                "class": "ciba.authorization_details.JsonSchemaType",
                "schema": {"type": "object"},
                "summary": "Sign: {text}",
            }
        }
    )
    [shown] = rar.rendering(accepted([{"type": "note", "text": "word " * 200}], allowed=["note"]))
    assert "\n" not in shown["summary"]
    assert len(shown["summary"]) == rar.SUMMARY_MAX_CHARS
    assert shown["summary"].startswith("Sign: word word") and shown["summary"].endswith("\u2026")


def test_a_request_whose_type_was_unregistered_since_is_still_shown_so_it_can_be_denied(detail_types):
    stored = accepted([PAYMENT])
    detail_types({})
    with translation.override("en"):
        [shown] = rar.rendering(stored)
    assert shown["text"].splitlines() == [
        "payment_initiation",
        "locations: https://example.com/payments",
        "instructedAmount: €123.50",
        "creditorName: Merchant A",
        "creditorAccount: iban: DE02100100109307118603",
        "remittanceInformationUnstructured: Ref Number Merchant",
    ]
    assert shown["summary"] == "payment_initiation (no longer supported)"
    with pytest.raises(InvalidAuthorizationDetails, match="not one this server supports"):
        rar.narrow(stored, stored)


# --- what the approval records: the digest of what was displayed -----------------------------------


def test_the_digest_is_the_sha256_of_the_canonical_json_of_details_and_rendering():
    details = accepted([PAYMENT])
    with translation.override("en"):
        shown = rar.rendering(details)
    canonical = json.dumps(
        {"authorization_details": details, "rendering": shown},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    assert rar.digest(details, shown) == hashlib.sha256(canonical).hexdigest()
    assert len(rar.digest(details, shown)) == 64


def test_the_digest_changes_with_the_details_and_with_what_was_displayed():
    details = accepted([PAYMENT])
    with translation.override("en"):
        english = rar.rendering(details)
    with translation.override("de"):
        german = rar.rendering(details)
    other = accepted([payment(instructedAmount={"currency": "EUR", "amount": "123.51"})])
    assert rar.digest(details, english) != rar.digest(details, german)
    assert rar.digest(details, english) != rar.digest(other, english)
    assert rar.digest(details, english) == rar.digest(copy.deepcopy(details), copy.deepcopy(english))


# --- what the client is granted: narrowing on approval ---------------------------------------------


def test_approving_without_changes_grants_what_was_requested():
    requested = accepted([PAYMENT])
    granted = rar.narrow(requested, None)
    assert granted == requested and granted is not requested


def test_the_user_may_approve_a_lower_amount_and_the_client_sees_it():
    requested = accepted([PAYMENT])
    granted = rar.narrow(requested, [payment(instructedAmount={"currency": "EUR", "amount": "100.00"})])
    assert granted == [payment(instructedAmount={"currency": "EUR", "amount": "100.00"})]
    assert Decimal(granted[0]["instructedAmount"]["amount"]) < Decimal("123.50")


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"instructedAmount": {"currency": "EUR", "amount": "123.51"}}, "may not be more than the requested"),
        ({"instructedAmount": {"currency": "USD", "amount": "100.00"}}, "must be the requested currency"),
        ({"creditorName": "Mallory"}, "only instructedAmount.amount may differ"),
        ({"creditorAccount": {"iban": "GB82WEST12345698765432"}}, "only instructedAmount.amount may differ"),
        ({"remittanceInformationUnstructured": None}, "only instructedAmount.amount may differ"),
        ({"instructedAmount": {"currency": "EUR", "amount": "0"}}, "must be greater than zero"),
    ],
)
def test_an_approval_that_is_not_a_narrowing_is_refused(changes, why):
    with pytest.raises(InvalidAuthorizationDetails) as caught:
        rar.narrow(accepted([PAYMENT]), [payment(**changes)])
    assert caught.value.as_dict()["error"] == "invalid_authorization_details"
    assert caught.value.description.startswith("approved authorization_details[0] (payment_initiation): ")
    assert why in caught.value.description


def test_the_user_may_approve_some_of_several_objects_in_their_order():
    first, second, third = (
        payment(creditorName=name, instructedAmount={"currency": "EUR", "amount": amount})
        for name, amount in (("A", "10"), ("B", "20"), ("C", "30"))
    )
    requested = accepted([first, second, third])
    assert rar.narrow(requested, [third]) == [third]
    cheaper_third = payment(**{**third, "instructedAmount": {"currency": "EUR", "amount": "1"}})
    assert rar.narrow(requested, [first, cheaper_third]) == [first, cheaper_third]
    with pytest.raises(InvalidAuthorizationDetails, match="no requested object of this type is left"):
        rar.narrow(requested, [third, first])
    with pytest.raises(InvalidAuthorizationDetails, match="only instructedAmount.amount may differ"):
        rar.narrow(requested, [first, first])  # the second "A" is neither "B" nor "C"


def test_approving_an_object_nobody_requested_is_refused(detail_types):
    detail_types(
        {
            "payment_initiation": "ciba.authorization_details.payment.PaymentInitiation",
            "note": {"class": "ciba.authorization_details.JsonSchemaType", "schema": {"type": "object"}},
        }
    )
    requested = accepted([PAYMENT])
    with pytest.raises(InvalidAuthorizationDetails, match="no requested object of this type"):
        rar.narrow(requested, [{"type": "note"}])
    with pytest.raises(InvalidAuthorizationDetails, match="at least one object"):
        rar.narrow(requested, [])


def test_an_approval_is_read_within_the_same_limits_as_a_request():
    with pytest.raises(InvalidAuthorizationDetails, match="may hold at most 10 objects"):
        rar.narrow(accepted([PAYMENT]), [PAYMENT] * 11)
    with pytest.raises(InvalidAuthorizationDetails, match="control characters"):
        rar.narrow(accepted([PAYMENT]), [payment(creditorName="Merchant\u202eA")])


# --- a site's own types ----------------------------------------------------------------------------

ACCOUNT_SCHEMA = {
    "type": "object",
    "required": ["type", "accounts", "period"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "account_information"},
        "accounts": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "period": {
            "type": "object",
            "required": ["days"],
            "additionalProperties": False,
            "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 90}},
        },
        "until": {"type": "string", "format": "date"},
        "locations": {},
        "limit": {"type": "object"},
    },
}
ACCOUNT = {"type": "account_information", "accounts": ["Checking", "Savings"], "period": {"days": 30}}


@pytest.fixture
def account_type(detail_types):
    detail_types(
        {
            "account_information": {
                "class": "ciba.authorization_details.JsonSchemaType",
                "schema": ACCOUNT_SCHEMA,
                "title": "Share account information",
                "display": [["accounts", "Accounts"], ["period.days", "Days"], ["limit", "Limit"]],
                "summary": "Share {accounts} for {period.days} days",
                "lower": ["period.days"],
            }
        }
    )


def account(**changes: Any) -> list[dict[str, Any]]:
    return [{**copy.deepcopy(ACCOUNT), **changes}]


def test_a_json_schema_type_accepts_what_its_schema_accepts(account_type):
    assert accepted(account(), allowed=["account_information"]) == account()


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"accounts": []}, "accounts: does not satisfy the type's schema (minItems)"),
        ({"accounts": "Checking"}, "accounts: must be of JSON type array"),
        ({"period": {}}, "period.days: is required"),
        ({"period": {"days": 91}}, "period.days: does not satisfy the type's schema (maximum)"),
        ({"until": "tomorrow"}, "until: must be a valid date"),
        ({"extra": True}, "holds a member this type does not define"),
        ({"locations": "https://bank.example"}, "locations: must be a non-empty array of strings"),
    ],
)
def test_a_json_schema_type_refuses_in_the_schemas_words(account_type, changes, why):
    text = description(account(**changes), allowed=["account_information"])
    assert text == f"authorization_details[0] (account_information): {why}"


def test_a_json_schema_type_is_shown_with_the_sites_title_labels_and_summary(account_type):
    details = account(limit={"amount": 2500, "currency": "CHF"})
    with translation.override("de"):
        [shown] = rar.rendering(accepted(details, allowed=["account_information"]))
    assert shown == {
        "type": "account_information",
        "text": "Share account information\nAccounts: Checking, Savings\nDays: 30\nLimit: 2.500,00\xa0CHF",
        "summary": "Share Checking, Savings for 30 days",
    }


def test_a_json_schema_type_narrows_only_the_members_the_site_allows(account_type):
    requested = accepted(account(), allowed=["account_information"])
    assert rar.narrow(requested, account(period={"days": 7})) == account(period={"days": 7})
    for approved, why in (
        (account(period={"days": 60}), "period.days: may only be lowered"),
        (account(accounts=["Checking"]), "only period.days may differ"),
    ):
        with pytest.raises(InvalidAuthorizationDetails, match=why):
            rar.narrow(requested, approved)


class GiftCard(rar.DetailType):
    """A site's own type written as a class: a gift card of a fixed value from a shop."""

    option_defaults = {"shop": "the shop"}

    def validate(self, detail):
        rar.object_member(detail, "", allowed={"type", "value"}, required={"value"})
        rar.decimal_amount(detail["value"], "value", "EUR")
        return {"type": self.type_name, "value": detail["value"]}

    def render(self, detail):
        return f"Gift card from {self.options['shop']}\n" + rar.labelled(
            "Value", rar.money(Decimal(detail["value"]), "EUR")
        )

    def summary(self, detail):
        return f"Gift card {rar.money(Decimal(detail['value']), 'EUR')}"


def test_a_site_registers_its_own_class_with_options(detail_types):
    detail_types({"gift_card": {"class": "tests.test_authorization_details.GiftCard", "shop": "Kiosk 7"}})
    details = accepted([{"type": "gift_card", "value": "25"}], allowed=["gift_card"])
    with translation.override("en"):
        assert rar.rendering(details) == [
            {
                "type": "gift_card",
                "text": "Gift card from Kiosk 7\nValue: €25.00",
                "summary": "Gift card €25.00",
            }
        ]
    assert rar.narrow(details, details) == details
    with pytest.raises(InvalidAuthorizationDetails, match="can only be approved as requested"):
        rar.narrow(details, [{"type": "gift_card", "value": "20"}])


# --- what an operator sees when a type is registered wrongly ----------------------------------------


@pytest.mark.parametrize(
    ("types", "message"),
    [
        (["payment_initiation"], "must be a dict of type name to class path"),
        ({"x": 5}, "must be a dotted path or a dict with a 'class' dotted path"),
        ({"x": "ciba.authorization_details.Nothing"}, "cannot import 'ciba.authorization_details.Nothing'"),
        (
            {"x": "ciba.errors.InvalidAuthorizationDetails"},
            "is not a ciba.authorization_details.DetailType subclass",
        ),
        (
            {"x": {"class": "ciba.authorization_details.payment.PaymentInitiation", "currency": ["EUR"]}},
            "PaymentInitiation takes no option 'currency' (it takes: 'currencies')",
        ),
        ({"x": {"class": "ciba.authorization_details.JsonSchemaType"}}, "needs a 'schema'"),
        (
            {"x": {"class": "ciba.authorization_details.JsonSchemaType", "schema": {"type": "thing"}}},
            "not a valid JSON Schema",
        ),
        (
            {"x": {"class": "ciba.authorization_details.JsonSchemaType", "schema": {}, "display": ["a"]}},
            "'display' is a list of [member path, label] pairs",
        ),
    ],
)
def test_a_misregistered_type_is_an_improperly_configured_naming_the_setting(detail_types, types, message):
    detail_types(types)
    with pytest.raises(ImproperlyConfigured) as caught:
        rar.supported_types()
    assert "CIBA['AUTHORIZATION_DETAILS_TYPES']" in str(caught.value)
    assert message in str(caught.value)


def test_a_type_registry_that_cannot_be_built_is_a_start_up_error(settings):
    """A wrong class path is reported by ``manage.py check`` (ciba.E045), not as a 500 at
    discovery or at the first request that names the type."""
    from django.core import checks as django_checks

    settings.CIBA = {**settings.CIBA, "AUTHORIZATION_DETAILS_TYPES": {"payment_initiation": "no.such.Type"}}
    errors = [m for m in django_checks.run_checks() if m.id == "ciba.E045"]
    assert errors and "AUTHORIZATION_DETAILS_TYPES" in errors[0].hint

    settings.CIBA = {**settings.CIBA, "AUTHORIZATION_DETAILS_TYPES": {}, "AUTHORIZATION_DETAILS_MAX_ITEMS": 0}
    errors = [m for m in django_checks.run_checks() if m.id == "ciba.E045"]
    assert [e.msg for e in errors] == [
        'CIBA["AUTHORIZATION_DETAILS_MAX_ITEMS"] must be a positive whole number, not 0.'
    ]
