"""The kiosk says how it asks for a purchase, and stops waiting for it when cancelled."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from ciba.models import AuthenticationRequest

from .test_demo import start_purchase

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("mode", ["poll", "ping", "push"])
def test_the_kiosk_names_its_client_delivery_mode_and_client_authentication(pages, demo, mode):
    kiosk, _ = pages
    start_purchase(kiosk, demo["base_url"], mode)

    expect(kiosk.locator("#how-client")).to_have_text(f"demo-{mode}")
    expect(kiosk.locator("#how-mode")).to_have_text(mode)
    expect(kiosk.locator("#how-auth")).to_have_text("client_secret_basic")


def test_a_cancelled_purchase_is_withdrawn_and_no_longer_waited_for(pages, demo):
    """Cancel withdraws the request at the bank (issue 27; what the phone then shows:
    test_cancel_withdraws_prompt.py) and the kiosk stops asking about the purchase at once."""
    kiosk, phone = pages
    binding = start_purchase(kiosk, demo["base_url"], "poll")
    card = phone.locator("li.request", has_text=binding)
    expect(card).to_be_visible(timeout=10_000)

    kiosk.click("#cancel")

    status = kiosk.locator("#status")
    expect(status).to_contain_text("Cancelled: the kiosk withdrew the request at the bank")
    expect(kiosk.locator("#cancel")).to_be_hidden()
    expect(kiosk.locator("#again")).to_be_visible()
    asked = []
    kiosk.on("request", lambda request: asked.append(request.url) if "/purchases/" in request.url else None)
    # Longer than the poll interval (5 s) the kiosk would have polled the token endpoint after.
    kiosk.wait_for_timeout(6_000)

    assert asked == []
    expect(status).to_contain_text("Cancelled")
    expect(kiosk.locator("#claims")).to_be_hidden()
    request = AuthenticationRequest.objects.get(binding_message=binding)
    assert request.state == AuthenticationRequest.State.CANCELLED  # withdrawn, no token fetched
