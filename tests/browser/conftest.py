"""The browser tier: the demo pages in headless Chromium (Debian's package) driven by Playwright.

Run with ``./scripts/test --browser`` (and in CI). These tests fail, never skip, when Chromium
or Playwright is missing: a green run must mean a browser really ran.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

# Playwright's sync API keeps an event loop on the test thread; Django would then refuse the
# test's own (synchronous) database calls. Django documents this switch for such tests.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CIBA_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium).")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('Playwright is not installed (pip install -e ".[dev]").')
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture
def demo(live_server: Any, settings: Any, tmp_path: Path) -> dict[str, Any]:
    """The demo as a newcomer runs it: issuer and callbacks on the live server, demo data created."""
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": f"{live_server.url}/o"}
    settings.CIBA_DEMO_CLIENTS_FILE = str(tmp_path / "demo_clients.json")
    out = io.StringIO()
    call_command(
        "ciba_demo_data", "--json", "--notification-base-url", f"{live_server.url}/demo/callbacks", stdout=out
    )
    data = json.loads(out.getvalue())
    data["base_url"] = live_server.url
    return data


@pytest.fixture
def pages(browser: Any, demo: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """A kiosk page and, beside it, a phone page logged in as alice."""
    kiosk_context = browser.new_context(viewport={"width": 900, "height": 820})
    phone_context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    kiosk, phone = kiosk_context.new_page(), phone_context.new_page()
    phone.goto(f"{demo['base_url']}/demo/phone/")
    phone.fill("#id_username", "alice")
    phone.fill("#id_password", demo["users"]["alice"]["password"])
    phone.click("button[type=submit]")
    yield kiosk, phone
    kiosk_context.close()
    phone_context.close()
