""" "I did not ask for this" on the phone (issue 27): the user reports a request, blocks the site
that sent it, sees it under Blocked services, and can unblock it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from ciba.models import AuthenticationRequest, ClientBlock

from .test_demo import start_purchase

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_report_with_block_refuses_the_sites_next_request_until_unblocked(pages, demo):
    kiosk, phone = pages
    binding = start_purchase(kiosk, demo["base_url"], "poll")
    card = phone.locator("li.request", has_text=binding)
    expect(card).to_be_visible(timeout=10_000)
    expect(phone.locator("#ciba-blocks")).to_be_hidden()  # nothing blocked yet

    card.locator(".report").click()
    confirm = card.locator(".confirm-report")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("the site only learns that you declined")
    confirm.get_by_label("Also block Demo kiosk (poll) from asking me again").check()
    confirm.locator(".confirm-report-button").click()

    decision = phone.locator("li.decision.reported", has_text=binding)
    expect(decision).to_be_visible()
    expect(decision.locator(".title")).to_have_text("Reported")
    expect(decision.locator(".next")).to_contain_text("can no longer send you requests")
    blocks = phone.locator("#ciba-blocks")
    expect(blocks).to_be_visible()
    expect(blocks.locator(".block-name")).to_have_text("Demo kiosk (poll)")
    request = AuthenticationRequest.objects.get(binding_message=binding)
    assert request.state == "denied" and request.reported_at is not None
    assert ClientBlock.objects.filter(user=request.user, client=request.client).exists()
    expect(kiosk.locator("#status")).to_contain_text("denied", timeout=20_000)

    # The site's next request for this user is refused before anything reaches the phone.
    kiosk.click("#again")
    kiosk.fill("#amount", "3.00")
    kiosk.check("input[name=mode][value=poll]")
    kiosk.click("#pay")
    expect(kiosk.locator("#error")).to_have_text("The bank refused this purchase (access_denied).")

    blocks.locator(".unblock").click()
    expect(phone.locator("#ciba-blocks-message")).to_have_text(
        "Demo kiosk (poll) can send you requests again."
    )
    expect(blocks.locator(".blocked-client")).to_have_count(0)
    assert not ClientBlock.objects.exists()
    again = start_purchase(kiosk, demo["base_url"], "poll", amount="4.00")
    expect(phone.locator("li.request", has_text=again)).to_be_visible(timeout=10_000)


def test_going_back_from_the_report_leaves_the_request_pending(pages, demo):
    kiosk, phone = pages
    binding = start_purchase(kiosk, demo["base_url"], "poll")
    card = phone.locator("li.request", has_text=binding)
    expect(card).to_be_visible(timeout=10_000)

    card.locator(".report").click()
    card.locator(".confirm-report input[type=checkbox]").check()
    card.locator(".keep-request").click()

    expect(card.locator(".confirm-report")).to_be_hidden()
    expect(card.locator(".report")).to_be_focused()
    expect(card.locator(".confirm-report input[type=checkbox]")).not_to_be_checked()
    assert AuthenticationRequest.objects.get(binding_message=binding).state == "pending"
    assert not ClientBlock.objects.exists()
