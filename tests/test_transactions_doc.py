"""What docs/transactions.md shows a site owner works as shown: its settings fragment is a
registry the server builds, the example type validates, renders and narrows as the text says,
and the example token response is a payment the shipped type accepts."""

from __future__ import annotations

import importlib.util
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ciba import authorization_details as rar
from ciba.errors import InvalidAuthorizationDetails

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "transactions.md"
SPEC = importlib.util.spec_from_file_location("site_check", ROOT / "scripts" / "site_check.py")
site_check = sys.modules.setdefault("site_check", importlib.util.module_from_spec(SPEC))
if not hasattr(site_check, "blocks"):
    SPEC.loader.exec_module(site_check)


def blocks(language: str, action: str | None = None) -> list[str]:
    """The page's fenced blocks in ``language``, as the walk-through's runner reads them."""
    found = site_check.blocks(DOCUMENT)
    return [b.text for b in found if b.language == language and (action is None or b.action == action)]


def python_namespace(action: str) -> dict[str, Any]:
    [text] = blocks("python", action)
    namespace: dict[str, Any] = {"__name__": "transactions_doc"}
    exec(compile(text, f"{DOCUMENT}:{action}", "exec"), namespace)  # noqa: S102 - our own document
    return namespace


#: The document's own type, importable by dotted path as a site's class would be.
CardPayment = python_namespace("compile")["CardPayment"]
CARD_TYPE = "3ds:payment_authorisation"
PAYMENT = {
    "type": CARD_TYPE,
    "instructed_amount": {"amount": 25.5, "currency": "AUD"},
    "source_account": "4111111111111111",
    "beneficiary_name": "Bondi Surf Co",
    "payment_desc": "Order 7781",
}


@pytest.fixture
def documented_registry(settings: Any) -> dict[str, Any]:
    """The settings fragment's registry, the site's own class standing where the page names it."""
    registry = dict(python_namespace("skip")["CIBA"]["AUTHORIZATION_DETAILS_TYPES"])
    assert registry.pop(CARD_TYPE) == "mybank.rar.CardPayment"
    registry[CARD_TYPE] = f"{__name__}.CardPayment"
    settings.CIBA = {**settings.CIBA, "AUTHORIZATION_DETAILS_TYPES": registry}
    return registry


def test_the_documented_registry_builds_and_discovery_would_list_its_types(documented_registry):
    assert rar.supported_types() == ["payment_initiation", "customer_information", CARD_TYPE]


def test_the_json_schema_type_of_the_fragment_accepts_what_its_schema_allows(documented_registry):
    allowed = ["customer_information"]
    [detail] = rar.validate(
        [{"type": "customer_information", "actions": ["read"], "datatypes": ["address"]}],
        allowed_types=allowed,
    )
    [shown] = rar.rendering([detail])
    assert shown["text"].startswith("Share your customer information")
    assert "address" in shown["summary"]
    with pytest.raises(InvalidAuthorizationDetails):
        rar.validate(
            [{"type": "customer_information", "actions": ["write"], "datatypes": ["address"]}],
            allowed_types=allowed,
        )


def test_the_documented_card_payment_validates_renders_and_approves_a_lower_amount_only(documented_registry):
    [asked] = rar.validate([PAYMENT], allowed_types=[CARD_TYPE])
    [shown] = rar.rendering([asked])
    paid = rar.money(Decimal("25.5"), "AUD")
    assert shown["text"].splitlines() == [f"Card payment of {paid}", "To: Bondi Surf Co", "For: Order 7781"]
    assert shown["summary"] == f"Pay {paid} to Bondi Surf Co"
    lower = {**PAYMENT, "instructed_amount": {"amount": 20, "currency": "AUD"}}
    assert rar.narrow([asked], [lower])[0]["instructed_amount"]["amount"] == 20
    higher = {**PAYMENT, "instructed_amount": {"amount": 30, "currency": "AUD"}}
    elsewhere = {**PAYMENT, "beneficiary_name": "Someone Else"}
    for other in (higher, elsewhere):
        with pytest.raises(InvalidAuthorizationDetails):
            rar.narrow([asked], [other])
    with pytest.raises(InvalidAuthorizationDetails):
        rar.validate(
            [{**PAYMENT, "instructed_amount": {"amount": "lots", "currency": "AUD"}}],
            allowed_types=[CARD_TYPE],
        )


def test_the_example_token_response_carries_a_payment_the_shipped_type_accepts(db):
    example = next(json.loads(text) for text in blocks("json") if '"authorization_details"' in text)
    [payment] = rar.validate(example["authorization_details"], allowed_types=["payment_initiation"])
    assert payment["instructedAmount"] == {"currency": "EUR", "amount": "40.00"}
    # The walk-through approves it in place of the EUR 42.00 it asks for: a lower amount.
    asked = {**payment, "instructedAmount": {"currency": "EUR", "amount": "42.00"}}
    assert rar.narrow([asked], [payment]) == [payment]
    assert Decimal(payment["instructedAmount"]["amount"]) < Decimal("42.00")
