"""The device page says what is wrong when its script never starts, instead of "Loading…" for ever.

A site whose web server serves no static files (granian, gunicorn without WhiteNoise) used to
show "Loading…" and nothing else. The page's own fallback needs no script and no inline code
(strict CSP): shown at once without device.css, after a few seconds with it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from .conftest import phone_context, sign_in

PASSWORD = "dana-password-for-the-browser"
DEVICE_JS = re.compile(r"/static/ciba/device/device(\.[0-9a-f]{12})?\.js$")
DEVICE_CSS = re.compile(r"/static/ciba/device/device(\.[0-9a-f]{12})?\.css$")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def phone(browser: Any, live_server: Any) -> Any:
    get_user_model().objects.create_user("dana", "dana@example.com", PASSWORD)
    context = phone_context(browser)
    yield context
    context.close()


def device_page(context: Any, live_server: Any, *blocked: re.Pattern) -> Any:
    page = context.new_page()
    for pattern in blocked:
        page.route(pattern, lambda route: route.abort())
    sign_in(page, live_server.url, "dana", PASSWORD)
    return page


def test_a_script_that_does_not_load_is_reported_naming_the_static_files(phone, live_server):
    page = device_page(phone, live_server, DEVICE_JS)

    message = page.locator("#ciba-script-missing")
    expect(message).to_be_visible(timeout=15_000)
    expect(message).to_contain_text("its script did not load")
    expect(message).to_contain_text("not serving its static files (ciba/device/device.js)")
    expect(message).to_have_attribute("role", "alert")


def test_a_site_serving_no_static_files_at_all_shows_the_message_at_once(phone, live_server):
    page = device_page(phone, live_server, DEVICE_JS, DEVICE_CSS)

    # No stylesheet to hide it: there from the first paint, well before the stylesheet's delay.
    expect(page.locator("#ciba-script-missing")).to_be_visible(timeout=2_000)


def test_the_message_never_shows_when_the_script_runs(phone, live_server):
    page = device_page(phone, live_server)

    expect(page.locator("#ciba-status")).to_have_text(
        "No requests waiting. New ones appear here by themselves."
    )
    expect(page.locator("#ciba-script-missing")).to_have_count(0)
