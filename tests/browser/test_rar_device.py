"""A payment on the phone (RFC 9396 on the device page): the user sees the amount and payee as
prominently as the binding message, and the approval says it was exactly that they saw."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from ciba import authorization_details as rar
from ciba import services
from ciba.backends.notifier_base import notification_payload
from ciba.models import AuthenticationRequest

from .conftest import eventually, open_notifications, phone_context, phone_with_push, sign_in

PASSWORD = "dave-password-for-the-browser"

PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02100100109307118603"},
    "remittanceInformationUnstructured": "Ref Number Merchant",
}


@pytest.fixture
def dave(live_server: Any) -> Any:
    return get_user_model().objects.create_user("dave", "dave@example.com", PASSWORD)


def payment_request(
    make_client: Any, user: Any, binding_message: str, details: list | None = None, **fields: Any
) -> AuthenticationRequest:
    app, _ = make_client("poll", name="Corner Shop")
    if details is None:
        details = rar.validate(rar.parse([PAYMENT]), allowed_types=["payment_initiation"])
    return services.create_request(
        expires_in=300,
        client=app,
        user=user,
        hint_kind="login_hint",
        scope="openid payments",
        binding_message=binding_message,
        interval=5,
        authorization_details=details,
        **fields,
    )


@pytest.mark.django_db(transaction=True)
def test_the_phone_shows_the_payment_and_the_approval_records_what_it_showed(
    browser, live_server, dave, make_client
):
    context = phone_context(browser)
    page = context.new_page()
    try:
        sign_in(page, live_server.url, "dave", PASSWORD)
        ar = payment_request(
            make_client, dave, "Till 3 #PAY1", request_context={"location": "Corner Shop, till 3"}
        )
        card = page.locator("li.request", has_text="#PAY1")
        expect(card).to_be_visible(timeout=10_000)
        detail = card.locator(".details .detail")
        expect(detail).to_have_count(1)
        expect(detail).to_contain_text("Merchant A")
        expect(detail).to_contain_text("123.50")
        expect(card.locator(".binding")).to_have_text("Till 3 #PAY1")
        expect(card.locator(".context")).to_contain_text("About this request")
        card.locator(".context summary").click()
        expect(card.locator(".context-list")).to_contain_text("Corner Shop, till 3")
        # The details come before the scopes and the buttons: read first, on a phone screen.
        boxes = [card.locator(sel).bounding_box() for sel in (".binding", ".details", ".scopes", ".approve")]
        assert [b["y"] for b in boxes] == sorted(b["y"] for b in boxes)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390

        card.locator(".approve").click()

        confirmation = page.locator("li.decision.approved")
        expect(confirmation).to_contain_text("You approved the request from Corner Shop")
        expect(confirmation.locator(".detail-summaries")).to_contain_text("Merchant A")
        ar.refresh_from_db()
        assert ar.state == AuthenticationRequest.State.APPROVED
        shown = rar.rendering(ar.authorization_details)
        assert ar.displayed_details_hash == rar.digest(ar.authorization_details, shown)
        assert ar.approved_authorization_details == ar.authorization_details
    finally:
        context.close()


@pytest.mark.django_db(transaction=True)
def test_a_payment_whose_type_is_no_longer_configured_can_only_be_denied(
    browser, live_server, dave, make_client, settings
):
    context = phone_context(browser)
    page = context.new_page()
    try:
        sign_in(page, live_server.url, "dave", PASSWORD)
        # Validated while the type was configured; the site then drops the type before the
        # phone first sees the request (otherwise the page may show it while still approvable).
        details = rar.validate(rar.parse([PAYMENT]), allowed_types=["payment_initiation"])
        settings.CIBA = {**getattr(settings, "CIBA", {}), "AUTHORIZATION_DETAILS_TYPES": {}}
        ar = payment_request(make_client, dave, "Till 4 #PAY2", details=details)
        card = page.locator("li.request", has_text="#PAY2")
        expect(card).to_be_visible(timeout=10_000)
        expect(card.locator(".detail").first).to_contain_text("Merchant A")  # recognisable
        expect(card.locator(".detail.unreadable")).to_contain_text("cannot be approved")
        expect(card.locator(".approve")).to_be_hidden()
        card.locator(".deny").click()
        expect(page.locator("li.decision.denied")).to_be_visible()
        ar.refresh_from_db()
        assert ar.state == AuthenticationRequest.State.DENIED
    finally:
        context.close()


@pytest.mark.django_db(transaction=True)
def test_a_pushed_payment_names_amount_and_payee_in_the_notification(browser, live_server, dave, make_client):
    with phone_with_push(browser, live_server.url, "dave", PASSWORD) as (page, push):
        ar = payment_request(make_client, dave, "Till 5 #PAY3")
        message = {"type": "ciba.authentication_requested", **notification_payload(ar)}
        push(message)

        (shown,) = eventually(page, lambda: open_notifications(page))
        lines = shown["body"].split("\n")
        assert lines[0] == "Till 5 #PAY3"
        assert lines[1] == message["authorization_details"][0]["summary"]
        assert "Merchant A" in lines[1]
