"""``payment_initiation``: RFC 9396's own example type (§2), the payment a kiosk asks the user
to approve on their phone.

The members are the RFC example's: ``instructedAmount`` (``amount`` as a decimal string and
``currency``, ISO 4217), ``creditorName``, ``creditorAccount`` (``iban``), and the optional
``remittanceInformationUnstructured``, with RFC 9396 §2.2's common members. The user may
approve a lower amount than requested and nothing else changed: the payee and the account
are what the user recognises, and a changed one would be a different payment.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext
from stdnum import iban as iban_numbers
from stdnum.exceptions import ValidationError as NumberInvalid

from .base import (
    COMMON_MEMBERS,
    DetailType,
    check_common_members,
    labelled,
    object_member,
    one_line,
    refuse,
    text_member,
)
from .money import currency, decimal_amount, money

#: SEPA's lengths (ISO 20022 Max70Text and Max140Text), which banks' payment APIs inherit.
CREDITOR_NAME_MAX = 70
REMITTANCE_MAX = 140

_MEMBERS = {
    "type",
    "instructedAmount",
    "creditorName",
    "creditorAccount",
    "remittanceInformationUnstructured",
    *COMMON_MEMBERS,
}
_REQUIRED = {"instructedAmount", "creditorName", "creditorAccount"}


class PaymentInitiation(DetailType):
    """RFC 9396 §2's ``payment_initiation``.

    Option ``currencies``: the ISO 4217 codes this site takes payments in (empty: any).
    """

    option_defaults = {"currencies": []}

    def validate(self, detail: dict[str, Any]) -> dict[str, Any]:
        object_member(detail, "", allowed=_MEMBERS, required=_REQUIRED)
        instructed = object_member(
            detail["instructedAmount"],
            "instructedAmount",
            allowed={"amount", "currency"},
            required={"amount", "currency"},
        )
        code = currency(
            instructed["currency"], "instructedAmount.currency", allowed=self.options["currencies"] or None
        )
        decimal_amount(instructed["amount"], "instructedAmount.amount", code)
        account = object_member(
            detail["creditorAccount"], "creditorAccount", allowed={"iban"}, required={"iban"}
        )
        normalised: dict[str, Any] = {
            "type": self.type_name,
            **check_common_members(detail),
            "instructedAmount": {"currency": code, "amount": instructed["amount"]},
            "creditorName": text_member(
                detail["creditorName"], "creditorName", max_chars=CREDITOR_NAME_MAX
            ).strip(),
            "creditorAccount": {"iban": _iban(account["iban"])},
        }
        if "remittanceInformationUnstructured" in detail:
            normalised["remittanceInformationUnstructured"] = text_member(
                detail["remittanceInformationUnstructured"],
                "remittanceInformationUnstructured",
                max_chars=REMITTANCE_MAX,
            ).strip()
        return normalised

    def render(self, detail: dict[str, Any]) -> str:
        lines = [
            gettext("Payment of %(amount)s") % {"amount": self._amount(detail)},
            labelled(gettext("To"), detail["creditorName"]),
            labelled(gettext("Account"), iban_numbers.format(detail["creditorAccount"]["iban"])),
        ]
        if detail.get("remittanceInformationUnstructured"):
            lines.append(labelled(gettext("Reference"), detail["remittanceInformationUnstructured"]))
        return "\n".join(lines)

    def summary(self, detail: dict[str, Any]) -> str:
        return one_line(
            gettext("Pay %(amount)s to %(payee)s")
            % {"amount": self._amount(detail), "payee": detail["creditorName"]}
        )

    def narrow(self, requested: dict[str, Any], approved: dict[str, Any]) -> dict[str, Any]:
        """The approved payment is the requested one, or the same with a lower amount."""
        approved = self.validate(approved)
        requested_amount = requested["instructedAmount"]
        approved_amount = approved["instructedAmount"]
        if {**approved, "instructedAmount": requested_amount} != requested:
            refuse("", "only instructedAmount.amount may differ from the request")
        if approved_amount["currency"] != requested_amount["currency"]:
            refuse("instructedAmount.currency", "must be the requested currency")
        path = "instructedAmount.amount"
        lower = decimal_amount(approved_amount["amount"], path, approved_amount["currency"])
        if lower > decimal_amount(requested_amount["amount"], path, requested_amount["currency"]):
            refuse("instructedAmount.amount", "may not be more than the requested amount")
        return approved

    @staticmethod
    def _amount(detail: dict[str, Any]) -> str:
        instructed = detail["instructedAmount"]
        return money(decimal_amount(instructed["amount"], "", instructed["currency"]), instructed["currency"])


def _iban(value: Any) -> str:
    """ISO 13616, checked (country format and check digits) by python-stdnum, stored compact."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9 ]{5,50}", value):
        refuse("creditorAccount.iban", "must be a string of letters and digits (ISO 13616)")
    try:
        return iban_numbers.validate(value)
    except NumberInvalid:
        refuse("creditorAccount.iban", "is not a valid IBAN (ISO 13616)")
