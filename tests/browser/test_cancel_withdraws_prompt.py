"""Withdrawn prompts in a real browser (issue 27): the kiosk cancels, the phone drops the prompt
without a reload; a pushed withdrawal closes the notification and the card at once."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from ciba import services
from ciba.backends.notifier_base import notification_payload, withdrawal_payload
from ciba.models import AuthenticationRequest

from .conftest import eventually, open_notifications, phone_with_push
from .test_demo import start_purchase
from .test_device import PASSWORD, carol, pending_request  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_kiosk_cancels_and_the_prompt_leaves_the_phone_without_a_reload(pages, demo):
    kiosk, phone = pages
    binding = start_purchase(kiosk, demo["base_url"], "poll")
    card = phone.locator("li.request", has_text=binding)
    expect(card).to_be_visible(timeout=10_000)
    phone.evaluate("window.__sameDocument = true")  # gone after any reload or navigation

    kiosk.click("#cancel")

    status = kiosk.locator("#status")
    expect(status).to_have_text(
        "Cancelled: the kiosk withdrew the request at the bank, and the customer's phone no longer shows it."
    )
    expect(status).to_have_class("status cancelled withdrawn")
    # The phone's periodic refresh finds it gone: it says who withdrew it, then drops it.
    expect(card.locator(".withdrawn-note")).to_have_text("Withdrawn by Demo kiosk (poll).", timeout=10_000)
    expect(card.locator(".approve")).to_be_disabled()
    expect(card).to_have_count(0, timeout=10_000)
    assert phone.evaluate("window.__sameDocument === true")
    expect(phone.locator("#ciba-status")).to_have_text(
        "No requests waiting. New ones appear here by themselves."
    )
    request = AuthenticationRequest.objects.get(binding_message=binding)
    assert (request.state, request.cancel_reason) == ("cancelled", "client")


def test_a_cancel_after_the_shopper_decided_is_refused_and_the_kiosk_says_so(pages, demo):
    kiosk, phone = pages
    # Poll mode: the kiosk learns of the decision only when it asks, so nothing but the cancel
    # can overtake it (in push mode the bank's callback would tell the kiosk first).
    binding = start_purchase(kiosk, demo["base_url"], "poll")
    card = phone.locator("li.request", has_text=binding)
    expect(card).to_be_visible(timeout=10_000)
    request = AuthenticationRequest.objects.get(binding_message=binding)

    def decided_on_another_device_just_before(route: Any) -> None:
        # The shopper denies on another device after the cashier clicked, before the kiosk's
        # cancel reaches the bank: the bank must refuse to withdraw a decided request.
        services.deny(request, user=request.user)
        route.continue_()

    kiosk.route("**/demo/kiosk/purchases/*/cancel/", decided_on_another_device_just_before)
    kiosk.click("#cancel")

    status = kiosk.locator("#status")
    expect(status).to_contain_text("The bank did not withdraw the request", timeout=10_000)
    expect(status).to_contain_text("invalid_grant")
    request.refresh_from_db()
    assert request.state == "denied"


def test_a_pushed_withdrawal_closes_the_notification_and_the_card_at_once(
    browser,
    live_server,
    carol,  # noqa: F811 - the fixture imported above
    make_client,
):
    with phone_with_push(browser, live_server.url, "carol", PASSWORD) as (page, push):
        ar = pending_request(make_client, carol, "Pay EUR 7.00 at Corner Shop #WDRW")
        push({"type": "ciba.authentication_requested", **notification_payload(ar)})
        assert eventually(page, lambda: open_notifications(page))
        card = page.locator("li.request", has_text="#WDRW")
        expect(card).to_be_visible()
        # Slow the page's own refresh right down: only the push can make the card go now.
        page.route("**/o/ciba/requests/", lambda route: None)

        services.cancel(ar, reason=AuthenticationRequest.CancelReason.CLIENT)
        ar.refresh_from_db()
        push(withdrawal_payload(ar))

        expect(card.locator(".withdrawn-note")).to_have_text("Withdrawn by Corner Shop.")
        assert eventually(page, lambda: open_notifications(page) == [])
        expect(card).to_have_count(0, timeout=10_000)
