"""A purchase at the kiosk, approved or denied on the phone (the device page), in each mode."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def start_purchase(kiosk, base_url, mode, amount="12.50"):
    kiosk.goto(f"{base_url}/demo/kiosk/")
    kiosk.fill("#amount", amount)
    kiosk.check(f"input[name=mode][value={mode}]")
    kiosk.click("#pay")
    binding = kiosk.locator("#binding")
    expect(binding).to_contain_text(f"Pay EUR {amount} at Corner Shop #")
    return binding.inner_text()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["poll", "ping", "push"])
def test_a_purchase_approved_on_the_phone_completes_at_the_kiosk(pages, demo, mode):
    kiosk, phone = pages
    binding = start_purchase(kiosk, demo["base_url"], mode)
    card = phone.locator("li.request", has_text=binding)
    expect(card).to_be_visible(timeout=10_000)  # the phone list updates without a reload
    expect(card.locator(".client")).to_have_text(f"Demo kiosk ({mode})")
    expect(card.locator(".scopes")).to_contain_text("Make a payment on your behalf")
    if mode == "ping" and os.environ.get("CIBA_UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(exist_ok=True)
        phone.screenshot(path=str(SCREENSHOTS / "phone.png"))
    card.locator(".approve").click()
    expect(card).to_have_count(0, timeout=10_000)
    expect(phone.locator("li.decision.approved", has_text=binding)).to_be_visible()
    expect(kiosk.locator("#status")).to_have_text("Approved: paid.", timeout=20_000)
    claims = kiosk.locator("#claims")
    expect(claims).to_contain_text('"urn:openid:params:jwt:claim:auth_req_id"')
    expect(claims).to_contain_text(f'"aud": "demo-{mode}"')
    # Epoch times come with a readable local time beside them.
    expect(claims).to_have_text(re.compile(r'"iat": \d+,\s+// \S.*\d'))
    expect(claims).to_have_text(re.compile(r'"exp": \d+,?\s+// \S.*\d'))
    if mode == "push" and os.environ.get("CIBA_UPDATE_SCREENSHOTS"):
        kiosk.screenshot(path=str(SCREENSHOTS / "kiosk.png"))


@pytest.mark.django_db(transaction=True)
def test_a_purchase_denied_on_the_phone_is_denied_at_the_kiosk(pages, demo):
    kiosk, phone = pages
    binding = start_purchase(kiosk, demo["base_url"], "ping", amount="99.00")
    card = phone.locator("li.request", has_text=binding)
    expect(card).to_be_visible(timeout=10_000)
    card.locator(".deny").click()
    expect(phone.locator("li.decision.denied", has_text=binding)).to_be_visible()
    expect(kiosk.locator("#status")).to_have_text("The shopper denied the payment.", timeout=20_000)
    expect(kiosk.locator("#claims")).to_be_hidden()


@pytest.mark.django_db(transaction=True)
def test_the_kiosk_says_clearly_when_the_customer_is_unknown(pages, demo):
    kiosk, _ = pages
    kiosk.goto(f"{demo['base_url']}/demo/kiosk/")
    kiosk.fill("#login_hint", "nobody")
    kiosk.click("#pay")
    expect(kiosk.locator("#error")).to_contain_text("unknown_user_id")


@pytest.mark.django_db(transaction=True)
def test_the_kiosk_asks_for_a_customer_in_plain_words(pages, demo):
    kiosk, _ = pages
    kiosk.goto(f"{demo['base_url']}/demo/kiosk/")
    kiosk.fill("#login_hint", "")
    kiosk.click("#pay")
    expect(kiosk.locator("#error")).to_have_text("Enter the customer's username or email address.")


@pytest.mark.django_db(transaction=True)
def test_the_old_phone_link_opens_the_device_page(pages, demo):
    _, phone = pages
    phone.goto(f"{demo['base_url']}/demo/phone/")
    expect(phone).to_have_url(f"{demo['base_url']}/ciba/device/")
    expect(phone.locator("h1")).to_have_text("Sign-in requests")
