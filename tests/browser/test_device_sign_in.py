"""The device app's account side in Chromium: its own sign-in page (``ciba_device:sign-in``),
as a site uses it with ``LOGIN_URL = "ciba_device:sign-in"`` -- the password form, and "Sign in
with a passkey" with a virtual authenticator -- and the user code section of the device page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from playwright.sync_api import expect

from ciba.models import Passkey, UserCode

from .conftest import DEVICE_PAGE, phone_context
from .test_passkeys import add_authenticator, enroll

PASSWORD = "frank-password-for-the-browser"
SIGN_IN = "/ciba/device/sign-in/"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def frank(live_server: Any) -> Any:
    return get_user_model().objects.create_user("frank", "frank@example.com", PASSWORD)


@pytest.fixture
def site(live_server: Any, settings: Any) -> str:
    """A site whose LOGIN_URL is the device app's sign-in page."""
    settings.LOGIN_URL = "ciba_device:sign-in"
    return live_server.url


@pytest.fixture
def phone(browser: Any, site: str) -> Any:
    context = phone_context(browser)
    page = context.new_page()
    add_authenticator(context, page)  # holds the passkeys the tests enroll
    yield context, page
    context.close()


def password_sign_in(page: Any, base_url: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}{DEVICE_PAGE}")
    assert page.url.startswith(f"{base_url}{SIGN_IN}?next=")
    page.fill("#id_username", "frank")
    page.fill("#id_password", password)
    page.locator(".sign-in-form button[type=submit]").click()


def test_the_password_form_signs_in_and_returns_to_the_device_page(phone, site, frank):
    _, page = phone
    password_sign_in(page, site)
    page.wait_for_url(f"{site}{DEVICE_PAGE}")
    expect(page.locator(".account")).to_contain_text("Signed in as frank")
    expect(page.locator("#ciba-status")).to_contain_text("No requests waiting")


def test_a_wrong_password_is_said_and_nobody_is_signed_in(phone, site, frank):
    _, page = phone
    password_sign_in(page, site, password="not-it")
    expect(page.locator(".sign-in-form .error")).to_contain_text("correct username and password")
    assert SIGN_IN in page.url
    page.goto(f"{site}{DEVICE_PAGE}")
    assert SIGN_IN in page.url


def test_a_passkey_signs_in_without_username_or_password(phone, site, frank):
    context, page = phone
    password_sign_in(page, site)
    page.wait_for_url(f"{site}{DEVICE_PAGE}")
    enroll(page, "Frank's phone")
    context.clear_cookies()  # signed out; the authenticator keeps the passkey

    page.goto(f"{site}{DEVICE_PAGE}")
    assert SIGN_IN in page.url
    expect(page.locator(".account")).not_to_contain_text("Signed in")
    page.get_by_role("button", name="Sign in with a passkey").click()

    page.wait_for_url(f"{site}{DEVICE_PAGE}")
    expect(page.locator(".account")).to_contain_text("Signed in as frank")
    passkey = Passkey.objects.get(user=frank)
    assert passkey.last_used_at is not None


def test_a_passkey_the_server_no_longer_knows_is_refused_with_a_message(phone, site, frank):
    context, page = phone
    password_sign_in(page, site)
    page.wait_for_url(f"{site}{DEVICE_PAGE}")
    enroll(page, "Frank's phone")
    Passkey.objects.filter(user=frank).delete()  # say, removed from another device
    context.clear_cookies()

    page.goto(f"{site}{SIGN_IN}")
    page.get_by_role("button", name="Sign in with a passkey").click()

    error = page.locator("#ciba-sign-in-error")
    expect(error).to_be_visible(timeout=10_000)
    expect(error).to_contain_text("You were not signed in")
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_enabled()
    page.goto(f"{site}{DEVICE_PAGE}")
    assert SIGN_IN in page.url


def test_the_user_code_is_set_changed_and_removed_on_the_device_page(phone, site, frank, settings):
    settings.CIBA = {**settings.CIBA, "USER_CODE_SUPPORTED": True, "USER_CODE_MIN_LENGTH": 6}
    _, page = phone
    password_sign_in(page, site)
    page.wait_for_url(f"{site}{DEVICE_PAGE}")
    section = page.locator("#ciba-user-code")
    status = section.locator("#ciba-user-code-status")
    expect(status).to_have_text("You have no user code.")
    expect(section.get_by_role("button", name="Remove the user code")).to_be_hidden()

    section.locator("#ciba-user-code-input").fill("frank")  # too short, and the username
    section.get_by_role("button", name="Set the user code").click()
    expect(section.locator("#ciba-user-code-input")).to_have_js_property("validity.valid", False)
    page.evaluate("document.getElementById('ciba-user-code-input').removeAttribute('minlength')")
    section.get_by_role("button", name="Set the user code").click()
    expect(section.locator("#ciba-user-code-error")).to_contain_text("6 to 64 characters")
    assert not UserCode.objects.filter(user=frank).exists()

    section.locator("#ciba-user-code-input").fill("4711-blue")
    section.get_by_role("button", name="Set the user code").click()
    expect(section.locator("#ciba-user-code-message")).to_have_text("Your user code is saved.")
    expect(status).to_contain_text("You have a user code, set")
    expect(section.locator("#ciba-user-code-error")).to_be_hidden()
    expect(section.locator("#ciba-user-code-input")).to_have_value("")
    assert check_password("4711-blue", UserCode.objects.get(user=frank).code)

    section.locator("#ciba-user-code-input").fill("0815-green")
    section.get_by_role("button", name="Change the user code").click()
    # The message still says "saved" from the first code: the field emptying is what says the
    # change was saved.
    expect(section.locator("#ciba-user-code-input")).to_have_value("")
    expect(section.locator("#ciba-user-code-message")).to_have_text("Your user code is saved.")
    assert check_password("0815-green", UserCode.objects.get(user=frank).code)

    section.get_by_role("button", name="Remove the user code").click()
    expect(section.locator("#ciba-user-code-message")).to_have_text("Your user code is removed.")
    expect(status).to_have_text("You have no user code.")
    assert not UserCode.objects.filter(user=frank).exists()
