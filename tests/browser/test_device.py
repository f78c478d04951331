"""The device page (`ciba.device`) in a phone-sized browser: sign in, see, approve, deny."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from ciba import services
from ciba.backends.notifier_base import notification_payload
from ciba.models import AuthenticationRequest, Device

from .conftest import (
    DEVICE_PAGE,
    eventually,
    open_notifications,
    phone_context,
    phone_with_push,
    sign_in,
)

PASSWORD = "carol-password-for-the-browser"


@pytest.fixture
def carol(live_server: Any) -> Any:
    return get_user_model().objects.create_user("carol", "carol@example.com", PASSWORD)


@pytest.fixture
def phone(browser: Any, live_server: Any, carol: Any) -> Any:
    context = phone_context(browser)
    page = context.new_page()
    sign_in(page, live_server.url, "carol", PASSWORD)
    yield page
    context.close()


def pending_request(make_client: Any, user: Any, binding_message: str) -> AuthenticationRequest:
    app, _ = make_client("poll", name="Corner Shop")
    return services.create_request(
        expires_in=300,
        client=app,
        user=user,
        hint_kind="login_hint",
        scope="openid payments",
        binding_message=binding_message,
        interval=5,
    )


def wait_for_refreshes(page: Any, count: int = 1) -> None:
    """Let the page re-read the consent API (it does every few seconds) ``count`` times."""
    for _ in range(count):
        with page.expect_response(lambda response: "/o/ciba/requests/" in response.url, timeout=10_000):
            pass


@pytest.mark.django_db(transaction=True)
def test_a_signed_in_user_approves_a_request_and_the_confirmation_stays(phone, carol, make_client):
    ar = pending_request(make_client, carol, "Pay EUR 42.00 at Corner Shop #K7QP")

    card = phone.locator("li.request", has_text="Pay EUR 42.00 at Corner Shop #K7QP")
    expect(card).to_be_visible(timeout=10_000)  # appears without a reload
    expect(card.locator(".client")).to_have_text("Corner Shop")
    expect(card.locator(".scopes")).to_contain_text("Make a payment on your behalf")
    expect(card.locator(".scopes")).to_contain_text("Confirm your identity")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # fits a phone

    card.locator(".approve").click()

    confirmation = phone.locator("li.decision.approved")
    expect(confirmation).to_contain_text("Approved")
    expect(confirmation).to_contain_text("You approved the request from Corner Shop")
    expect(confirmation).to_contain_text("Pay EUR 42.00 at Corner Shop #K7QP")
    expect(confirmation).to_be_focused()
    expect(card).to_have_count(0)
    ar.refresh_from_db()
    assert ar.state == AuthenticationRequest.State.APPROVED

    wait_for_refreshes(phone)
    expect(confirmation).to_be_visible()  # it stays until the user dismisses it
    expect(phone.locator("#ciba-status")).to_contain_text("No requests waiting")

    confirmation.locator(".dismiss").click()
    expect(confirmation).to_have_count(0)


@pytest.mark.django_db(transaction=True)
def test_a_signed_in_user_denies_one_request_and_keeps_the_other(phone, carol, make_client):
    denied = pending_request(make_client, carol, "Sign in at the library #1")
    kept = pending_request(make_client, carol, "Sign in at the gym #2")

    card = phone.locator("li.request", has_text="library #1")
    expect(card).to_be_visible(timeout=10_000)
    expect(phone.locator("li.request")).to_have_count(2)
    card.locator(".deny").click()

    confirmation = phone.locator("li.decision.denied")
    expect(confirmation).to_contain_text("Denied")
    expect(confirmation).to_contain_text("You denied the request from Corner Shop")
    expect(confirmation).to_contain_text("library #1")
    expect(phone.locator("li.request")).to_have_count(1)
    expect(phone.locator("li.request")).to_contain_text("gym #2")
    denied.refresh_from_db()
    kept.refresh_from_db()
    assert denied.state == AuthenticationRequest.State.DENIED
    assert kept.state == AuthenticationRequest.State.PENDING

    wait_for_refreshes(phone)
    expect(confirmation).to_be_visible()


@pytest.mark.django_db(transaction=True)
def test_a_request_decided_elsewhere_says_so_instead_of_failing(phone, carol, make_client):
    ar = pending_request(make_client, carol, "Already handled #3")
    card = phone.locator("li.request", has_text="Already handled #3")
    expect(card).to_be_visible(timeout=10_000)
    services.deny(ar, user=carol)  # say, on the user's other phone

    card.locator(".approve").click()

    expect(phone.locator("li.decision.gone")).to_contain_text("Already decided")
    expect(phone.locator("#ciba-error")).to_be_hidden()


@pytest.mark.django_db(transaction=True)
def test_the_push_button_is_hidden_when_web_push_is_not_configured(phone):
    expect(phone.locator("h1")).to_have_text("Sign-in requests")
    expect(phone.locator("#ciba-status")).to_contain_text("No requests waiting")
    expect(phone.locator("#ciba-push")).to_have_count(0)
    expect(phone.get_by_role("button", name="Turn on notifications")).to_have_count(0)


# The Push API needs a real push service (FCM for Chromium), which a test cannot reach; the
# browser's side of it is replaced by a stand-in that records what the page asked for.
FAKE_PUSH = """
(() => {
  // Kept in sessionStorage, as a browser keeps its subscription across reloads.
  window.__push = { subscribedWith: null, unsubscribed: false };
  function load() {
    const saved = sessionStorage.getItem("fake-push");
    if (!saved) return null;
    const key = new Uint8Array(JSON.parse(saved)).buffer;
    return {
      endpoint: "https://push.example.com/send/browser-1",
      options: { applicationServerKey: key },
      toJSON() {
        // A real P-256 public key and a 16-byte secret: registration checks both.
        const keys = {
          p256dh: "BGXeFf7LfsPN-1cPqHq3HOHxjonVl2sHBXzbv_X_hbdgZ9hQmLaQO62CvrDJiPefHylenBKFxYCxmYNhIO0bv34",
          auth: "c2l4dGVlbi1ieXRlLWtleQ",
        };
        return { endpoint: this.endpoint, expirationTime: null, keys };
      },
      unsubscribe() {
        window.__push.unsubscribed = true;
        sessionStorage.removeItem("fake-push");
        return Promise.resolve(true);
      },
    };
  }
  PushManager.prototype.getSubscription = function () { return Promise.resolve(load()); };
  PushManager.prototype.subscribe = function (options) {
    const key = Array.from(new Uint8Array(options.applicationServerKey));
    window.__push.subscribedWith = key;
    sessionStorage.setItem("fake-push", JSON.stringify(key));
    return Promise.resolve(load());
  };
})();
"""


@pytest.mark.django_db(transaction=True)
def test_notifications_register_this_browser_as_a_web_push_device(browser, live_server, carol, settings):
    key = ec.generate_private_key(ec.SECP256R1())
    settings.CIBA = {
        **settings.CIBA,
        "NOTIFIER_CLASSES": ["ciba.backends.webpush.WebPushNotifier"],
        "WEBPUSH_VAPID_PRIVATE_KEY": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "WEBPUSH_VAPID_SUBJECT": "mailto:security@example.com",
    }
    public_key = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    context = phone_context(browser)
    context.grant_permissions(["notifications"], origin=live_server.url)
    context.add_init_script(FAKE_PUSH)
    page = context.new_page()
    try:
        sign_in(page, live_server.url, "carol", PASSWORD)
        # The service worker is registered from the page's own path, so it controls the page.
        scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
        assert scope == f"{live_server.url}{DEVICE_PAGE}"
        section = page.locator("#ciba-push")
        expect(section).to_be_visible(timeout=10_000)

        page.get_by_role("button", name="Turn on notifications").click()

        expect(section).to_contain_text("Notifications are on for this browser.")
        assert bytes(page.evaluate("window.__push.subscribedWith")) == public_key
        device = Device.objects.get(user=carol)
        assert device.kind == Device.Kind.WEBPUSH
        assert device.subscription["endpoint"] == "https://push.example.com/send/browser-1"
        assert device.label.startswith("Web browser on ")

        page.reload()  # the page remembers that this browser is registered
        expect(page.get_by_role("button", name="Turn off notifications")).to_be_visible(timeout=10_000)
        page.get_by_role("button", name="Turn off notifications").click()

        expect(page.get_by_role("button", name="Turn on notifications")).to_be_visible()
        assert page.evaluate("window.__push.unsubscribed")
        assert not Device.objects.filter(user=carol).exists()
    finally:
        context.close()


@pytest.mark.django_db(transaction=True)
def test_a_push_shows_a_notification_that_deciding_clears(browser, live_server, carol, make_client):
    with phone_with_push(browser, live_server.url, "carol", PASSWORD) as (page, push):
        ar = pending_request(make_client, carol, "Pay EUR 7.00 at Corner Shop #PUSH")
        push({"type": "ciba.authentication_requested", **notification_payload(ar)})

        shown = eventually(page, lambda: open_notifications(page))
        assert shown == [
            {
                "title": "Corner Shop asks you to confirm",
                "body": "Pay EUR 7.00 at Corner Shop #PUSH\n"
                "Confirm your identity, Make a payment on your behalf",
                "tag": f"ciba-{ar.auth_req_id}",
            }
        ]
        card = page.locator("li.request", has_text="#PUSH")
        card.locator(".approve").click()
        expect(page.locator("li.decision.approved")).to_be_visible()
        assert eventually(page, lambda: open_notifications(page) == [])


@pytest.mark.django_db(transaction=True)
def test_a_list_asked_for_before_a_push_arrived_leaves_its_notification_open(
    browser, live_server, carol, make_client
):
    """The page's periodic refresh was on its way when the request was made and its push shown:
    its answer cannot know that request, so the prompt stays (a CI run lost it this way)."""
    with phone_with_push(browser, live_server.url, "carol", PASSWORD) as (page, push):
        held: list[Any] = []  # the first list request, answered by hand; later ones go through
        page.route("**/o/ciba/requests/", lambda route: route.continue_() if held else held.append(route))
        assert eventually(page, lambda: held), "the page did not refresh its list"
        stale = held[0].fetch()  # asked for before the request exists: an empty list

        ar = pending_request(make_client, carol, "Pay EUR 7.00 at Corner Shop #LATE")
        push({"type": "ciba.authentication_requested", **notification_payload(ar)})
        shown = eventually(page, lambda: open_notifications(page))
        assert shown, f"no notification shown; the worker: {push.seen}"
        held[0].fulfill(response=stale)
        wait_for_refreshes(page)  # the stale answer rendered, and a fresh one after it

        card = page.locator("li.request", has_text="#LATE")
        expect(card).to_be_visible()
        assert [shown["tag"] for shown in open_notifications(page)] == [f"ciba-{ar.auth_req_id}"]
