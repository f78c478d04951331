"""ConnectID (Australia)'s 3-D Secure payment modules of the FAPI-CIBA plan, played here.

The plan's ``connectid_au`` variant runs poll mode with ``private_key_jwt``. Its 3DS modules
put a card primary account number in ``login_hint`` and, in the signed request object, one
``authorization_details`` object of type ``3ds:payment_authorisation``
(``AddConnectIdCiba3DSPaymentAuthorizationDetailsToRequestObject``)::

    {"type": "3ds:payment_authorisation",
     "instructed_amount": {"amount": 25.5, "currency": "AUD"},
     "source_account": "<card number>", "beneficiary_name": "...", "payment_desc": "..."}

ciba ships no such type: a ConnectID site writes one, as below, and registers it the way any
site registers its own (docs/transactions.md)::

    CIBA = {..., "AUTHORIZATION_DETAILS_TYPES": {
        "payment_initiation": "ciba.authorization_details.payment.PaymentInitiation",
        "3ds:payment_authorisation": "mysite.rar.ConnectIdPayment"}}

and its clients register ``authorization_details_types: ["3ds:payment_authorisation"]``. The
suite's negative modules (``AbstractConnectIdCibaEnsureInvalid3DSPaymentAuthorizationDetailsFails``)
accept ``invalid_request`` or ``invalid_authorization_details``
(``CheckErrorFromBackchannelAuthenticationEndpointErrorInvalidRequestOrInvalidAuthorizationDetails``);
ciba answers the precise one, RFC 9396 §5's ``invalid_authorization_details``, and stores nothing.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

import pytest
from django.utils.translation import gettext

from ciba import authorization_details as rar
from ciba.backends.users import UsernameOrEmailUserResolver
from ciba.errors import InvalidAuthorizationDetails
from ciba.models import AuthenticationRequest
from tests.protocol import oauth_error

TYPE = "3ds:payment_authorisation"
#: A test Visa number (passes the Luhn check), the suite's ``client.card_primary_account_number``.
CARD = "4111111111111111"
#: Which card belongs to whom, as the issuing bank knows it.
CARDHOLDERS = {CARD: "alice"}
PAN = re.compile(r"[0-9]{12,19}")
TEXT_MAX = 140
MEMBERS = {"type", "instructed_amount", "source_account", "beneficiary_name", "payment_desc"}


def luhn(number: str) -> bool:
    """ISO/IEC 7812-1's check digit: how a bank tells a card number from a typo."""
    total = 0
    for position, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


class ConnectIdPayment(rar.DetailType):
    """ConnectID's ``3ds:payment_authorisation``: a card payment the cardholder approves in the
    bank's app instead of on a 3-D Secure challenge page. Every member is required (the suite
    expects each one's absence refused); the amount is a JSON number, as the suite sends it.
    Built from ciba's helpers for the parts every type shares: ISO 4217 codes and the locale's
    way of writing money come from Babel's CLDR data, refusals name the member and never
    repeat the client's value."""

    def validate(self, detail: dict[str, Any]) -> dict[str, Any]:
        rar.object_member(detail, "", allowed=MEMBERS, required=MEMBERS - {"type"})
        instructed = rar.object_member(
            detail["instructed_amount"],
            "instructed_amount",
            allowed={"amount", "currency"},
            required={"amount", "currency"},
        )
        return {
            "type": self.type_name,
            "instructed_amount": {
                "amount": self._amount(instructed["amount"]),
                "currency": rar.currency(instructed["currency"], "instructed_amount.currency"),
            },
            "source_account": self._card(detail["source_account"]),
            "beneficiary_name": rar.text_member(
                detail["beneficiary_name"], "beneficiary_name", max_chars=TEXT_MAX
            ),
            "payment_desc": rar.text_member(detail["payment_desc"], "payment_desc", max_chars=TEXT_MAX),
        }

    def render(self, detail: dict[str, Any]) -> str:
        return "\n".join(
            [
                gettext("Card payment of %(amount)s") % {"amount": self._money(detail)},
                rar.labelled(gettext("To"), detail["beneficiary_name"]),
                rar.labelled(gettext("For"), detail["payment_desc"]),
                rar.labelled(gettext("Card"), f"\u2026{detail['source_account'][-4:]}"),
            ]
        )

    def summary(self, detail: dict[str, Any]) -> str:
        return rar.one_line(
            gettext("Pay %(amount)s to %(payee)s")
            % {"amount": self._money(detail), "payee": detail["beneficiary_name"]}
        )

    def narrow(self, requested: dict[str, Any], approved: dict[str, Any]) -> dict[str, Any]:
        """The cardholder may approve a lower amount of the same payment, never anything else."""
        approved = self.validate(approved)
        asked, offered = requested["instructed_amount"], approved["instructed_amount"]
        if {**approved, "instructed_amount": asked} != requested:
            rar.refuse("", "only instructed_amount.amount may differ from the request")
        if offered["currency"] != asked["currency"]:
            rar.refuse("instructed_amount.currency", "must be the requested currency")
        if Decimal(repr(offered["amount"])) > Decimal(repr(asked["amount"])):
            rar.refuse("instructed_amount.amount", "may not be more than the requested amount")
        return approved

    @staticmethod
    def _amount(value: Any) -> int | float:
        # The suite sends a JSON number; "not-an-amount" (a string) is its malformed amount.
        if isinstance(value, bool) or not isinstance(value, int | float):
            rar.refuse("instructed_amount.amount", "must be a number")
        if not math.isfinite(value) or value <= 0:
            rar.refuse("instructed_amount.amount", "must be a number greater than zero")
        return value

    @staticmethod
    def _card(value: Any) -> str:
        if not isinstance(value, str) or not PAN.fullmatch(value) or not luhn(value):
            rar.refuse("source_account", "must be a card primary account number (ISO/IEC 7812)")
        return value

    @staticmethod
    def _money(detail: dict[str, Any]) -> str:
        amount = detail["instructed_amount"]
        return rar.money(Decimal(repr(amount["amount"])), amount["currency"])


class CardholderResolver(UsernameOrEmailUserResolver):
    """The bank's resolver: a card number in ``login_hint`` names its cardholder
    (``SetConnectIdCibaLoginHintToCardPrimaryAccountNumber``); anything else as ciba's default."""

    def resolve_login_hint(self, login_hint: str, *, client: Any, http_request: Any) -> Any:
        return super().resolve_login_hint(
            CARDHOLDERS.get(login_hint, login_hint), client=client, http_request=http_request
        )


@pytest.fixture
def client_auth_type() -> str:
    """The ``connectid_au`` variant authenticates clients by ``private_key_jwt``."""
    return "private_key_jwt"


@pytest.fixture(autouse=True)
def connectid_site(conformance_server: None, settings: Any) -> None:
    """The bank's settings: its payment type registered beside the shipped one, its resolver."""
    settings.CIBA = {
        **settings.CIBA,
        "AUTHORIZATION_DETAILS_TYPES": {
            "payment_initiation": "ciba.authorization_details.payment.PaymentInitiation",
            TYPE: f"{__name__}.ConnectIdPayment",
        },
        "USER_RESOLVER_CLASS": f"{__name__}.CardholderResolver",
    }


@pytest.fixture
def connectid(suite_clients: Any, alice: Any) -> Any:
    """The suite's client1 in poll mode, registered for the 3DS payment type."""
    suite = suite_clients("poll")[0]
    suite.app.authorization_details_types = [TYPE]
    suite.app.save()
    return suite


def payment(**changes: Any) -> dict[str, Any]:
    """What ``AddConnectIdCiba3DSPaymentAuthorizationDetailsToRequestObject`` adds, with the
    suite's configured amount, currency, beneficiary and description."""
    detail: dict[str, Any] = {
        "type": TYPE,
        "instructed_amount": {"amount": 25.5, "currency": "AUD"},
        "source_account": CARD,
        "beneficiary_name": "Bondi Surf Co",
        "payment_desc": "Order 7781: wetsuit",
    }
    for member, value in changes.items():
        if member in ("amount", "currency"):
            target = detail["instructed_amount"]
        else:
            target = detail
        if value is None:
            target.pop(member, None)
        else:
            target[member] = value
    return detail


def refused(suite: Any, **claims: Any) -> dict[str, Any]:
    response = suite.backchannel(suite.request_object(login_hint=CARD, **claims))
    body = oauth_error(response, 400, "invalid_authorization_details")
    assert not AuthenticationRequest.objects.exists()
    return body


def test_fapi_ciba_id1_connectid_ensure_authorization_request_with_3ds_payment_authorization_details_succeeds(
    connectid,
):
    auth_req_id = connectid.start(login_hint=CARD, authorization_details=[payment()])
    request = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    assert request.user.username == "alice"
    assert request.authorization_details == [payment()]
    [shown] = rar.rendering(request.authorization_details)
    paid = rar.money(Decimal("25.5"), "AUD")  # "A$25.50" in English
    assert paid in shown["text"] and "Bondi Surf Co" in shown["text"] and "\u20261111" in shown["text"]
    assert shown["summary"] == f"Pay {paid} to Bondi Surf Co"

    connectid.automated_approval(auth_req_id)
    tokens = connectid.tokens(auth_req_id)

    # RFC 9396 §7: the token response says what was authorized.
    assert tokens["authorization_details"] == [payment()]


def test_fapi_ciba_id1_connectid_ensure_authorization_request_with_3ds_card_login_hint_succeeds(connectid):
    auth_req_id = connectid.start(login_hint=CARD)
    connectid.automated_approval(auth_req_id)
    tokens = connectid.tokens(auth_req_id)
    assert AuthenticationRequest.objects.get(auth_req_id=auth_req_id).user.username == "alice"
    assert "authorization_details" not in tokens  # a login, not a payment


def test_fapi_ciba_id1_connectid_ensure_authorization_request_with_wrong_3ds_payment_type_fails(
    connectid,
):
    """``SetConnectIdCiba3DSPaymentAuthorizationDetailsTypeToInvalid``: ``"type": "payment"``,
    a type this server does not know."""
    refused(connectid, authorization_details=[payment(type="payment")])


@pytest.mark.parametrize(
    "missing",
    [
        pytest.param("instructed_amount", id="without-3ds-payment-instructed-amount-fails"),
        pytest.param("amount", id="without-3ds-payment-amount-fails"),
        pytest.param("currency", id="without-3ds-payment-currency-fails"),
        pytest.param("source_account", id="without-3ds-payment-source-account-fails"),
        pytest.param("beneficiary_name", id="without-3ds-payment-beneficiary-name-fails"),
        pytest.param("payment_desc", id="without-3ds-payment-desc-fails"),
    ],
)
def test_fapi_ciba_id1_connectid_ensure_authorization_request_without_a_3ds_payment_member_fails(
    connectid, missing
):
    """``RemoveConnectIdCiba3DSPayment{InstructedAmount,Amount,Currency,SourceAccount,
    BeneficiaryName,Desc}``."""
    body = refused(connectid, authorization_details=[payment(**{missing: None})])
    assert missing in body["error_description"]


@pytest.mark.parametrize(
    ("member", "value"),
    [
        pytest.param("amount", "not-an-amount", id="malformed-3ds-payment-amount-fails"),
        pytest.param("currency", "NOT_A_CURRENCY", id="malformed-3ds-payment-currency-fails"),
        pytest.param(
            "source_account",
            "not-a-card-primary-account-number",
            id="malformed-3ds-payment-source-account-fails",
        ),
    ],
)
def test_fapi_ciba_id1_connectid_ensure_authorization_request_with_a_malformed_3ds_payment_member_fails(
    connectid, member, value
):
    """``SetConnectIdCiba3DSPayment{Amount,Currency,SourceAccount}ToInvalid``."""
    body = refused(connectid, authorization_details=[payment(**{member: value})])
    assert member in body["error_description"]


# --- beyond the suite: what the same site must also refuse or publish -----------------------


def test_a_card_number_failing_the_luhn_check_is_refused(connectid):
    refused(connectid, authorization_details=[payment(source_account="4111111111111112")])


def test_a_client_that_did_not_register_the_3ds_type_cannot_send_it(connectid):
    connectid.app.authorization_details_types = ["payment_initiation"]
    connectid.app.save()
    refused(connectid, authorization_details=[payment()])


def test_discovery_lists_the_registered_3ds_type_beside_the_shipped_one(connectid, client):
    supported = client.get("/o/.well-known/openid-configuration").json()[
        "authorization_details_types_supported"
    ]
    assert set(supported) == {"payment_initiation", TYPE}


def test_the_cardholder_may_approve_a_lower_amount_of_the_same_payment_only():
    kind = ConnectIdPayment(TYPE)
    asked = kind.validate(payment())
    assert kind.narrow(asked, payment(amount=20))["instructed_amount"]["amount"] == 20
    for other in (payment(amount=30), payment(currency="NZD"), payment(beneficiary_name="Someone Else")):
        with pytest.raises(InvalidAuthorizationDetails):
            kind.narrow(asked, other)
