"""Passkeys on the device page, in Chromium with a virtual authenticator (Chrome DevTools
Protocol ``WebAuthn``): enroll, approve a payment with dynamic linking and see the ID token's
``acr``/``amr``/``auth_time``, step up, and every way a bad assertion is refused (wrong
challenge, replay, a sign count that went backwards, wrong origin, no user verification),
each with a clear message and the request left pending.

The live server is ``http://localhost:PORT``: a secure context, RP ID ``localhost``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import expect

from ciba import authorization_details as rar
from ciba import passkeys as passkeys_module
from ciba import services
from ciba.models import ApprovalEvidence, AuthenticationRequest, Passkey
from tests.protocol import poll

from .conftest import phone_context, sign_in

PASSWORD = "erin-password-for-the-browser"
State = AuthenticationRequest.State

PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "249.00"},
    "creditorName": "Bike Shop",
    "creditorAccount": {"iban": "DE02100100109307118603"},
}

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Phone:
    """The device page, signed in, with a platform authenticator the test controls."""

    page: Any
    cdp: Any
    authenticator_id: str

    def credentials(self) -> list[dict[str, Any]]:
        return self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})[
            "credentials"
        ]

    def user_verified(self, verified: bool) -> None:
        self.cdp.send(
            "WebAuthn.setUserVerified", {"authenticatorId": self.authenticator_id, "isUserVerified": verified}
        )


def add_authenticator(context: Any, page: Any, **options: Any) -> tuple[Any, str]:
    """A phone's built-in authenticator (passkeys, user verification by biometrics), that
    answers without a prompt."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
                **options,
            }
        },
    )
    return cdp, added["authenticatorId"]


@pytest.fixture
def erin(live_server: Any) -> Any:
    return get_user_model().objects.create_user("erin", "erin@example.com", PASSWORD)


@pytest.fixture
def phone(browser: Any, live_server: Any, erin: Any) -> Any:
    context = phone_context(browser)
    page = context.new_page()
    cdp, authenticator_id = add_authenticator(context, page)
    sign_in(page, live_server.url, "erin", PASSWORD)
    yield Phone(page, cdp, authenticator_id)
    context.close()


def enroll(page: Any, name: str = "Test phone") -> None:
    """Create a passkey in the page's passkeys section, as a user does."""
    section = page.locator("#ciba-passkeys")
    expect(section).to_be_visible(timeout=10_000)
    section.locator("#ciba-passkey-name").fill(name)
    section.get_by_role("button", name="Create a passkey").click()
    expect(section.locator("#ciba-passkeys-message")).to_have_text(f"Passkey created: {name}.")
    expect(section.locator(".passkey .passkey-name", has_text=name)).to_be_visible()


def new_request(
    make_client: Any, user: Any, binding_message: str, *, payment: bool = False, level: str = "passkey"
) -> tuple[AuthenticationRequest, Any, str]:
    """A pending request of a client whose approvals need ``level``; with ``payment``, RFC 9396
    details the approval must link to."""
    app, secret = make_client("poll", name="Bike Shop", approval_level=level)
    extra: dict[str, Any] = {}
    if payment:
        extra["authorization_details"] = rar.validate(
            rar.parse([PAYMENT]), allowed_types=["payment_initiation"]
        )
    ar = services.create_request(
        expires_in=300,
        client=app,
        user=user,
        hint_kind="login_hint",
        scope="openid payments" if payment else "openid",
        binding_message=binding_message,
        interval=5,
        **extra,
    )
    return ar, app, secret


def card_of(page: Any, binding_message: str) -> Any:
    card = page.locator("li.request", has_text=binding_message)
    expect(card).to_be_visible(timeout=10_000)
    return card


def still_pending(ar: AuthenticationRequest) -> None:
    ar.refresh_from_db()
    assert ar.state == State.PENDING
    assert not ApprovalEvidence.objects.filter(auth_request=ar).exists()


def refused_on_the_card(card: Any, *words: str) -> None:
    """The card says why, in the server's words; its passkey button is there to try again."""
    error = card.locator(".card-error")
    expect(error).to_be_visible(timeout=10_000)
    for word in words:
        expect(error).to_contain_text(word)


# --- enrolling and managing passkeys ---


def test_a_user_enrolls_renames_and_removes_a_passkey(phone, erin):
    page = phone.page
    section = page.locator("#ciba-passkeys")
    expect(section.locator("#ciba-passkeys-status")).to_have_text("You have no passkeys yet.")

    enroll(page, "Erin's phone")

    (passkey,) = Passkey.objects.filter(user=erin)
    assert passkey.name == "Erin's phone"
    (credential,) = phone.credentials()
    assert credential["isResidentCredential"] and credential["rpId"] == "localhost"
    assert passkey.credential_id == credential["credentialId"].rstrip("=").replace("+", "-").replace("/", "_")
    item = section.locator(".passkey")
    expect(item.locator(".passkey-meta")).to_contain_text("never used")
    expect(section.locator("#ciba-passkeys-status")).to_have_text("Passkeys on your account: 1")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    item.get_by_role("button", name="Rename").click()
    item.locator(".rename-form input").fill("Work phone")
    item.get_by_role("button", name="Save").click()
    expect(section.locator("#ciba-passkeys-message")).to_have_text("Passkey renamed: Work phone.")
    expect(section.locator(".passkey .passkey-name")).to_have_text("Work phone")
    passkey.refresh_from_db()
    assert passkey.name == "Work phone"

    section.locator(".passkey").get_by_role("button", name="Remove").click()
    section.locator(".passkey").get_by_role("button", name="Remove it").click()
    expect(section.locator("#ciba-passkeys-message")).to_have_text("Passkey removed: Work phone.")
    expect(section.locator(".passkey")).to_have_count(0)
    assert not Passkey.objects.filter(user=erin).exists()


def test_enrolling_the_same_authenticator_twice_is_refused_by_the_browser(phone):
    enroll(phone.page, "First")
    section = phone.page.locator("#ciba-passkeys")
    section.get_by_role("button", name="Create a passkey").click()
    expect(section.locator("#ciba-passkeys-error")).to_have_text(
        "This device already holds a passkey for your account."
    )
    assert len(phone.credentials()) == 1


# --- approving with a passkey ---


def test_a_payment_approved_with_a_passkey_puts_acr_amr_and_auth_time_in_the_id_token(
    phone, erin, make_client
):
    page = phone.page
    enroll(page)
    ar, app, secret = new_request(make_client, erin, "Bike #PK1", payment=True)

    card = card_of(page, "Bike #PK1")
    expect(card.locator(".detail")).to_contain_text("Bike Shop")
    expect(card.locator(".auth-note")).to_have_text("Approving this request needs your passkey.")
    expect(card.locator(".approve")).to_be_hidden()
    approve = card.get_by_role("button", name="Approve with passkey")
    expect(approve).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    approved_body: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: approved_body.append(json.loads(r.post_data)) if r.url.endswith("/approve/") else None,
    )
    before = int(time.time())
    approve.click()

    confirmation = page.locator("li.decision.approved")
    expect(confirmation).to_contain_text("You approved the request from Bike Shop")
    ar.refresh_from_db()
    assert ar.state == State.APPROVED
    # What the device sent: the digest of what it showed, and the assertion.
    (sent,) = approved_body
    assert sent["displayed_details_hash"] == ar.displayed_details_hash
    assert sent["authentication"]["method"] == "passkey"
    assert set(sent["authentication"]["credential"]["response"]) >= {
        "clientDataJSON",
        "authenticatorData",
        "signature",
    }
    # The evidence: this user's passkey, user verified, over exactly this transaction.
    evidence = ar.evidence
    assert evidence.user_verified and evidence.user_present
    assert evidence.passkey.user == erin
    assert evidence.origin == page.url.split("/ciba/")[0]
    assert evidence.rp_id == "localhost"
    assert (
        evidence.transaction_digest
        == passkeys_module.transaction_digest(ar, displayed_details_hash=ar.displayed_details_hash).hex()
    )

    claims = jwt.decode(
        poll(Client(), app, secret, ar.auth_req_id).json()["id_token"], options={"verify_signature": False}
    )
    assert claims["acr"] == "phr"
    assert set(claims["amr"]) == {"hwk", "user", "mfa"}  # a device-bound key, present, verified
    assert before - 1 <= claims["auth_time"] <= int(time.time()) + 1
    # Used: the list says so.
    page.reload()
    expect(page.locator("#ciba-passkeys .passkey-meta")).to_contain_text("last used")


def test_a_tap_is_enough_where_the_session_suffices_and_a_passkey_can_still_be_used(phone, erin, make_client):
    page = phone.page
    enroll(page)
    ar, app, secret = new_request(make_client, erin, "Login #PK2", level="")

    card = card_of(page, "Login #PK2")
    expect(card.get_by_role("button", name="Approve", exact=True)).to_be_visible()
    expect(card.locator(".auth-note")).to_be_hidden()
    card.get_by_role("button", name="Approve with a passkey instead").click()

    expect(page.locator("li.decision.approved")).to_be_visible()
    ar.refresh_from_db()
    assert ar.state == State.APPROVED and ar.evidence.user_verified
    claims = jwt.decode(
        poll(Client(), app, secret, ar.auth_req_id).json()["id_token"], options={"verify_signature": False}
    )
    assert claims["acr"] == "phr" and "hwk" in claims["amr"]


def test_a_user_without_a_passkey_creates_one_on_the_request_and_approves(phone, erin, make_client):
    page = phone.page
    ar, _, _ = new_request(make_client, erin, "Bike #PK3")

    card = card_of(page, "Bike #PK3")
    expect(card.locator(".auth-note")).to_contain_text("you have none yet")
    expect(card.locator(".approve")).to_be_hidden()
    expect(card.locator(".approve-passkey")).to_be_hidden()
    card.get_by_role("button", name="Create a passkey").click()

    approve = card.get_by_role("button", name="Approve with passkey")
    expect(approve).to_be_visible()
    expect(approve).to_be_focused()
    assert Passkey.objects.filter(user=erin).count() == 1
    expect(page.locator("#ciba-passkeys .passkey")).to_have_count(1)
    approve.click()

    expect(page.locator("li.decision.approved")).to_be_visible()
    ar.refresh_from_db()
    assert ar.state == State.APPROVED


def test_a_step_up_asked_after_the_tap_is_answered_with_the_passkey(phone, erin, make_client):
    page = phone.page
    enroll(page)
    ar, app, _ = new_request(make_client, erin, "Login #PK4", level="")
    card = card_of(page, "Login #PK4")
    # The site raises this client's level while the card is on screen.
    app.approval_level = "passkey"
    app.save()

    card.get_by_role("button", name="Approve", exact=True).click()

    refused_on_the_card(card, "passkey")
    still_pending(ar)
    approve = card.get_by_role("button", name="Approve with passkey")
    expect(approve).to_be_visible()
    approve.click()
    expect(page.locator("li.decision.approved")).to_be_visible()
    ar.refresh_from_db()
    assert ar.state == State.APPROVED


def test_without_a_passkey_the_password_step_up_is_offered_and_checked(phone, erin, make_client):
    page = phone.page
    ar, app, secret = new_request(make_client, erin, "Login #PW1", level="password")

    card = card_of(page, "Login #PW1")
    expect(card.locator(".auth-note")).to_have_text("Approving this request needs your password.")
    form = card.locator(".password-form")
    expect(form).to_be_visible()
    form.locator("input").fill("not-the-password")
    form.get_by_role("button", name="Approve with password").click()
    refused_on_the_card(card)
    still_pending(ar)
    expect(form.locator("input")).to_have_value("")

    form.locator("input").fill(PASSWORD)
    form.get_by_role("button", name="Approve with password").click()
    expect(page.locator("li.decision.approved")).to_be_visible()
    ar.refresh_from_db()
    assert ar.state == State.APPROVED
    claims = jwt.decode(
        poll(Client(), app, secret, ar.auth_req_id).json()["id_token"], options={"verify_signature": False}
    )
    assert "pwd" in claims["amr"]


# --- refusals: each with the server's message on the card, the request still pending ---


def test_an_assertion_over_another_requests_challenge_is_refused(phone, erin, make_client):
    page = phone.page
    enroll(page)
    first, _, _ = new_request(make_client, erin, "Bike #WC1")
    second, _, _ = new_request(make_client, erin, "Bike #WC2")
    card = card_of(page, "Bike #WC2")

    # Hand the browser the options (the challenge) of the first request for the second.
    def other_requests_options(route: Any) -> None:
        route.fulfill(
            response=route.fetch(url=route.request.url.replace(second.auth_req_id, first.auth_req_id))
        )

    page.route(f"**/o/ciba/requests/{second.auth_req_id}/authentication-options/", other_requests_options)
    card.get_by_role("button", name="Approve with passkey").click()

    refused_on_the_card(card, "another request")
    still_pending(first)
    still_pending(second)
    expect(card.get_by_role("button", name="Approve with passkey")).to_be_enabled()


def test_a_replayed_assertion_is_refused(phone, erin, make_client):
    page = phone.page
    enroll(page)
    ar, _, _ = new_request(make_client, erin, "Bike #RP1")
    captured: list[str] = []
    page.on("request", lambda r: captured.append(r.post_data) if r.url.endswith("/approve/") else None)
    card_of(page, "Bike #RP1").get_by_role("button", name="Approve with passkey").click()
    expect(page.locator("li.decision.approved")).to_be_visible()
    (used,) = captured

    # The request pending again, as if the approval had never happened; the assertion that
    # approved it is sent again for it, in place of a fresh one.
    ApprovalEvidence.objects.filter(auth_request=ar).delete()
    AuthenticationRequest.objects.filter(pk=ar.pk).update(
        state=State.PENDING,
        decided_at=None,
        decided_by=None,
        granted_scope="",
        acr="",
        amr="",
        auth_time=None,
    )
    page.route(f"**/o/ciba/requests/{ar.auth_req_id}/approve/", lambda route: route.continue_(post_data=used))
    page.reload()
    card = card_of(page, "Bike #RP1")
    card.get_by_role("button", name="Approve with passkey").click()

    refused_on_the_card(card, "already used")
    still_pending(ar)


def test_a_sign_count_that_went_backwards_is_refused_and_the_passkey_disabled(phone, erin, make_client):
    page = phone.page
    enroll(page)
    first, _, _ = new_request(make_client, erin, "Bike #SC1")
    card_of(page, "Bike #SC1").get_by_role("button", name="Approve with passkey").click()
    expect(page.locator("li.decision.approved")).to_be_visible()
    (passkey,) = Passkey.objects.filter(user=erin)
    assert passkey.sign_count >= 1

    # A copy of the key that has signed less than the original: its counter is behind.
    (credential,) = phone.credentials()
    phone.cdp.send(
        "WebAuthn.removeCredential",
        {"authenticatorId": phone.authenticator_id, "credentialId": credential["credentialId"]},
    )
    phone.cdp.send(
        "WebAuthn.addCredential",
        {"authenticatorId": phone.authenticator_id, "credential": {**credential, "signCount": 0}},
    )
    second, _, _ = new_request(make_client, erin, "Bike #SC2")
    card = card_of(page, "Bike #SC2")
    card.get_by_role("button", name="Approve with passkey").click()

    refused_on_the_card(card, "possibly cloned")
    still_pending(second)
    passkey.refresh_from_db()
    assert passkey.cloned_at is not None
    # The page re-read the passkeys: this one is shown disabled, and no longer offered.
    expect(page.locator("#ciba-passkeys .passkey-disabled")).to_be_visible()
    expect(card.locator(".approve-passkey")).to_be_hidden()


def test_an_assertion_made_on_another_origin_is_refused(phone, erin, make_client, settings):
    page = phone.page
    enroll(page)
    settings.CIBA = {**settings.CIBA, "WEBAUTHN_ORIGINS": ["https://phone.example.com"]}
    ar, _, _ = new_request(make_client, erin, "Bike #OR1")

    card = card_of(page, "Bike #OR1")
    card.get_by_role("button", name="Approve with passkey").click()

    refused_on_the_card(card, "origin", "not allowed")
    still_pending(ar)


def test_an_assertion_without_user_verification_is_refused(phone, erin, make_client):
    page = phone.page
    enroll(page)
    ar, _, _ = new_request(make_client, erin, "Bike #UV1")
    # A browser that did not ask for user verification, and an authenticator that skipped it.
    phone.user_verified(False)

    def without_user_verification(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        body["publicKey"]["userVerification"] = "discouraged"
        route.fulfill(response=response, json=body)

    page.route(f"**/o/ciba/requests/{ar.auth_req_id}/authentication-options/", without_user_verification)
    card = card_of(page, "Bike #UV1")
    card.get_by_role("button", name="Approve with passkey").click()

    refused_on_the_card(card, "user verification")
    still_pending(ar)
