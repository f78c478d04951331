"""The browser tier: the demo and the device page in headless Chromium (Debian's), via Playwright.

Run with ``./scripts/test --browser`` (and in CI). These tests fail, never skip, when Chromium
or Playwright is missing: a green run must mean a browser really ran.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

# Playwright's sync API keeps an event loop on the test thread; Django would then refuse the
# test's own (synchronous) database calls. Django documents this switch for such tests.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

DEVICE_PAGE = "/ciba/device/"
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


def phone_context(browser: Any) -> Any:
    """A phone-sized browser (390 px wide, touch), as the device page is mostly used."""
    return browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)


def sign_in(page: Any, base_url: str, username: str, password: str) -> None:
    """Open the device page and sign in through the site's own login, as a user would."""
    page.goto(f"{base_url}{DEVICE_PAGE}")
    assert "/demo/login/" in page.url  # the page sent us to settings.LOGIN_URL
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{DEVICE_PAGE}")


def eventually(page: Any, check: Any, timeout: float = 10.0) -> Any:
    """``check()`` once it is truthy. Waits through Playwright, which delivers CDP events meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        page.wait_for_timeout(100)


def open_notifications(page: Any) -> list[dict[str, Any]]:
    """The notifications the page's service worker shows now (title, body, tag)."""
    return page.evaluate(
        """navigator.serviceWorker.ready
          .then(r => r.getNotifications())
          .then(ns => ns.map(n => ({title: n.title, body: n.body, tag: n.tag})))"""
    )


def push_service(context: Any, page: Any, origin: str) -> Callable[[dict[str, Any]], None]:
    """Deliver messages to ``page``'s service worker as a push service would (Chrome DevTools
    Protocol): what ``ciba.backends.webpush.WebPushNotifier`` sends arrives as a push event.
    Waits for the worker's registration, so the first message is never lost."""
    page.evaluate("navigator.serviceWorker.ready")
    cdp = context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    seen: list[str] = []  # what the worker did, for a failure's message (a push shown nowhere)
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
    cdp.on(
        "ServiceWorker.workerVersionUpdated",
        lambda e: seen.extend(f"{v['versionId']}: {v['status']} {v['runningStatus']}" for v in e["versions"]),
    )
    cdp.on("ServiceWorker.workerErrorReported", lambda e: seen.append(f"error: {e['errorMessage']}"))
    cdp.send("ServiceWorker.enable")
    assert eventually(page, lambda: registrations), "the device page registered no service worker"

    def push(message: dict[str, Any]) -> None:
        seen.append(f"push {message.get('type')} to registration {registrations[0]['registrationId']}")
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": origin,
                "registrationId": registrations[0]["registrationId"],
                "data": json.dumps(message, ensure_ascii=False),
            },
        )

    push.seen = seen  # type: ignore[attr-defined]
    return push


@contextmanager
def phone_with_push(browser: Any, origin: str, username: str, password: str) -> Iterator[tuple[Any, Any]]:
    """A phone's page signed in as ``username``, notifications allowed, and ``push(message)``
    delivering to its service worker (``push_service``); the phone is closed afterwards."""
    context = phone_context(browser)
    context.grant_permissions(["notifications"], origin=origin)
    page = context.new_page()
    try:
        sign_in(page, origin, username, password)
        yield page, push_service(context, page, origin)
    finally:
        context.close()


@pytest.fixture
def pages(browser: Any, demo: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """A kiosk page and, beside it, the device page (the phone) signed in as alice."""
    kiosk_context = browser.new_context(viewport={"width": 900, "height": 820})
    phone_ctx = phone_context(browser)
    kiosk, phone = kiosk_context.new_page(), phone_ctx.new_page()
    sign_in(phone, demo["base_url"], "alice", demo["users"]["alice"]["password"])
    yield kiosk, phone
    kiosk_context.close()
    phone_ctx.close()
