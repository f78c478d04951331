"""The demo end to end with a passkey: the kiosk asks for one (``acr_values=phr``), the phone
approves the payment with its (virtual) platform authenticator, and the kiosk shows the
``acr``, ``amr`` and ``auth_time`` of the ID token it received; without the checkbox, a tap
is enough and the kiosk says no acr was claimed."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from .test_demo import start_purchase
from .test_passkeys import add_authenticator, enroll

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_purchase_requiring_a_passkey_shows_the_strong_acr_and_amr_at_the_kiosk(pages, demo):
    kiosk, phone = pages
    add_authenticator(phone.context, phone)
    enroll(phone, "Alice's phone")

    kiosk.goto(f"{demo['base_url']}/demo/kiosk/")
    kiosk.check("#require_passkey")
    before = int(time.time())
    binding = start_purchase_here(kiosk, "poll", "30.00")
    expect(kiosk.locator("#how-acr")).to_contain_text("acr_values=phr")

    card = phone.locator("li.request", has_text=binding)
    expect(card).to_be_visible(timeout=10_000)
    expect(card.locator(".approve")).to_be_hidden()  # a tap is not enough for this request
    card.get_by_role("button", name="Approve with passkey").click()
    expect(phone.locator("li.decision.approved", has_text=binding)).to_be_visible(timeout=10_000)

    expect(kiosk.locator("#status")).to_have_text("Approved: paid.", timeout=20_000)
    expect(kiosk.locator("#authentication")).to_be_visible()
    expect(kiosk.locator("#acr")).to_contain_text("phr")
    expect(kiosk.locator("#acr")).to_contain_text("phishing-resistant")
    amr = kiosk.locator("#amr li")
    expect(amr).to_have_count(3)
    for value in ("hwk", "user", "mfa"):
        expect(kiosk.locator("#amr")).to_contain_text(value)
    auth_time = int(re.search(r"\((\d+)\)", kiosk.locator("#auth-time").inner_text()).group(1))
    assert before - 1 <= auth_time <= int(time.time()) + 1
    expect(kiosk.locator("#claims")).to_contain_text('"acr": "phr"')


def test_a_plain_purchase_approved_with_a_tap_shows_that_no_acr_was_claimed(pages, demo):
    kiosk, phone = pages
    binding = start_purchase(kiosk, demo["base_url"], "poll", amount="3.00")
    expect(kiosk.locator("#how-acr")).to_contain_text("no acr_values")
    card = phone.locator("li.request", has_text=binding)
    expect(card).to_be_visible(timeout=10_000)
    card.locator(".approve").click()
    expect(kiosk.locator("#status")).to_have_text("Approved: paid.", timeout=20_000)
    expect(kiosk.locator("#acr")).to_contain_text("no acr claimed")
    expect(kiosk.locator("#amr")).to_have_text("none claimed")
    expect(kiosk.locator("#auth-time")).to_have_text(re.compile(r"\S.*\(\d+\)"))


def start_purchase_here(kiosk, mode, amount):
    """``start_purchase`` on the kiosk page already open (its checkbox already set)."""
    kiosk.fill("#amount", amount)
    kiosk.check(f"input[name=mode][value={mode}]")
    kiosk.click("#pay")
    binding = kiosk.locator("#binding")
    expect(binding).to_contain_text(f"Pay EUR {amount} at Corner Shop #")
    return binding.inner_text()
