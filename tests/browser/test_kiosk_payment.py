"""The kiosk asks for a payment, not just a login: the phone shows the amount and the payee the
server rendered, and the kiosk receives the payment as approved (RFC 9396), in each mode."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from ciba.models import AuthenticationRequest

from .test_demo import start_purchase

pytestmark = pytest.mark.django_db(transaction=True)

IBAN = "DE02100100109307118603"


@pytest.mark.parametrize("mode", ["poll", "ping", "push"])
def test_the_phone_shows_the_kiosks_payment_and_the_kiosk_gets_back_what_was_approved(pages, demo, mode):
    kiosk, phone = pages
    binding = start_purchase(kiosk, demo["base_url"], mode, amount="42.00")
    # The kiosk says what it asked the bank to show.
    expect(kiosk.locator("#payment-amount")).to_have_text("EUR 42.00")
    expect(kiosk.locator("#payment-payee")).to_have_text("Corner Shop")

    card = phone.locator("li.request", has_text=binding)
    expect(card).to_be_visible(timeout=10_000)
    shown = card.locator(".details .detail")
    expect(shown).to_have_count(1)
    expect(shown).to_have_attribute("data-type", "payment_initiation")
    # The amount as the phone's language writes it, and the payee, from the server's rendering.
    expect(shown).to_contain_text(re.compile(r"42[.,]00"))
    expect(shown).to_contain_text("Corner Shop")

    card.locator(".approve").click()
    expect(phone.locator("li.decision.approved", has_text=binding)).to_be_visible(timeout=10_000)

    expect(kiosk.locator("#status")).to_have_text("Approved: paid.", timeout=20_000)
    expect(kiosk.locator("#paid-payment")).to_have_text("EUR 42.00 to Corner Shop")
    approved = kiosk.locator("#approved-details")
    expect(approved).to_contain_text('"type": "payment_initiation"')
    expect(approved).to_contain_text(IBAN)
    expect(kiosk.locator("#claims")).to_contain_text(f'"aud": "demo-{mode}"')  # and the ID token

    request = AuthenticationRequest.objects.get(binding_message=binding)
    assert request.approved_authorization_details == request.authorization_details
    assert re.fullmatch(r"[0-9a-f]{64}", request.displayed_details_hash)


def test_a_denied_payment_returns_no_payment_to_the_kiosk(pages, demo):
    kiosk, phone = pages
    binding = start_purchase(kiosk, demo["base_url"], "poll", amount="99.00")
    card = phone.locator("li.request", has_text=binding)
    expect(card.locator(".details .detail")).to_contain_text(re.compile(r"99[.,]00"), timeout=10_000)
    card.locator(".deny").click()
    expect(kiosk.locator("#status")).to_have_text("The shopper denied the payment.", timeout=20_000)
    expect(kiosk.locator("#paid")).to_be_hidden()
    expect(kiosk.locator("#approved-details")).to_be_hidden()
    assert AuthenticationRequest.objects.get(binding_message=binding).approved_authorization_details is None
