"""The QR path: the phone shows the user's code, the kiosk reads it with its camera and names the
customer with it (a ``login_hint_token``), the phone approves, the kiosk is paid.

The kiosk's camera is Chromium's fake capture device playing a Y4M video this test writes: the
QR code of the very token the phone's page was given, read from the page's own ``my-code``
response. The kiosk runs in a second Chromium started with that camera; the phone in the usual
one. With ``CIBA_UPDATE_SCREENSHOTS=1`` (as for the demo's other screenshots) the test saves the
phone showing its code (``docs/screenshots/qr-phone-code.png``) and the kiosk after scanning it
(``qr-kiosk-scanned.png``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import segno
from playwright.sync_api import expect

from ciba.models import AuthenticationRequest

from .conftest import ARGS, CHROMIUM, DEVICE_PAGE

pytestmark = pytest.mark.django_db(transaction=True)

WIDTH, HEIGHT = 640, 480
#: Luminance of the QR code's light and dark modules, and of the frame around the code (a
#: phone's bezel, darker than the code's own white quiet zone).
LIGHT, DARK, SURROUNDINGS = 255, 0, 90
QUIET_ZONE = 4
MY_CODE = "/ciba/device/my-code/"


def write_y4m(path: Path, text: str, frames: int = 10) -> None:
    """``text`` as a QR code in a short YUV4MPEG2 video (640x480, 4:2:0, JPEG range): each frame
    the code's matrix, scaled to whole pixels per module, with its four-module quiet zone,
    centred; Y is the luminance, U and V are 128 (grey)."""
    code = segno.make(text, error="m", micro=False)
    modules = code.symbol_size(border=QUIET_ZONE)[0]
    scale = min(WIDTH, HEIGHT) // modules
    assert scale >= 3, f"{modules} modules do not fit a {WIDTH}x{HEIGHT} frame legibly"
    left, top = (WIDTH - modules * scale) // 2, (HEIGHT - modules * scale) // 2
    luma = bytearray([SURROUNDINGS]) * (WIDTH * HEIGHT)
    for row, line in enumerate(code.matrix_iter(scale=scale, border=QUIET_ZONE)):
        start = (top + row) * WIDTH + left
        luma[start : start + len(line)] = bytes(DARK if dark else LIGHT for dark in line)
    chroma = bytes([128]) * ((WIDTH // 2) * (HEIGHT // 2))
    frame = b"FRAME\n" + bytes(luma) + chroma + chroma
    header = f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F30:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + frame * frames)


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot(page: Any, name: str) -> None:
    if os.environ.get("CIBA_UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name))


@pytest.fixture
def issuing(settings: Any) -> None:
    """The site issues codes (the example project does; the test settings leave it off)."""
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_TOKEN_ISSUANCE": True}


@pytest.fixture
def camera(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """``camera(token)``: a kiosk page in a second Chromium whose camera films ``token``'s QR code."""
    launched: list[Any] = []

    def kiosk_with_camera_on(token: str) -> Any:
        video = tmp_path / "customer-code.y4m"
        write_y4m(video, token)
        fake_camera = [
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ]
        instance = browser.browser_type.launch(executable_path=CHROMIUM, args=[*ARGS, *fake_camera])
        launched.append(instance)
        context = instance.new_context(viewport={"width": 900, "height": 640})
        return context.new_page()

    yield kiosk_with_camera_on
    for instance in launched:
        instance.close()


def show_my_code(phone: Any) -> str:
    """Tap "Show my code" and return the token the page was given (from its own response)."""
    with phone.expect_response(lambda response: response.url.endswith(MY_CODE)) as answer:
        phone.click("#ciba-my-code-toggle")
    assert answer.value.status == 200
    token = answer.value.json()["login_hint_token"]
    code = phone.locator("#ciba-my-code-image svg")
    expect(code).to_be_visible()
    expect(code).to_have_attribute("role", "img")
    expect(code).to_have_attribute("aria-label", "QR code that identifies you at a till or kiosk")
    expect(phone.locator("#ciba-my-code-countdown")).to_have_text(re.compile(r"Valid for [12]:\d\d\. "))
    return token


def scan(kiosk: Any, base_url: str, amount: str) -> None:
    kiosk.goto(f"{base_url}/demo/kiosk/")
    kiosk.fill("#amount", amount)
    kiosk.check("input[name=mode][value=poll]")
    kiosk.click("#scan-start")
    expect(kiosk.locator("#scan-status")).to_have_text("Code scanned", timeout=20_000)
    expect(kiosk.locator("#scanner")).to_be_hidden()  # the camera is off after a read


def test_the_kiosk_scans_the_code_the_phone_shows_and_the_phone_approves_the_payment(
    issuing, pages, demo, camera
):
    _, phone = pages
    token = show_my_code(phone)
    assert "alice" not in token  # the code names nobody
    screenshot(phone, "qr-phone-code.png")
    phone.emulate_media(color_scheme="dark")  # the page turns dark, the code stays black on white
    ground = "getComputedStyle(document.getElementById('ciba-my-code-image')).backgroundColor"
    assert phone.evaluate(ground) == "rgb(255, 255, 255)"
    assert phone.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 255, 255)"
    phone.emulate_media(color_scheme="light")

    kiosk = camera(token)
    scan(kiosk, demo["base_url"], "23.40")
    expect(kiosk.locator("#login_hint")).to_be_hidden()  # the code replaces the typed customer
    if not kiosk.evaluate("'BarcodeDetector' in window"):  # Chromium on Linux: no native detector
        assert kiosk.evaluate("typeof window.jsQR") == "function"  # the vendored decoder read it
    assert token not in kiosk.content()  # "Code scanned", never the code itself
    screenshot(kiosk, "qr-kiosk-scanned.png")

    sent = []
    kiosk.on("request", lambda request: sent.append(request) if request.url.endswith("/purchases/") else None)
    kiosk.click("#pay")
    binding = kiosk.locator("#binding")
    expect(binding).to_contain_text("Pay EUR 23.40 at Corner Shop #")
    expect(kiosk.locator("#how-hint")).to_have_text("their scanned code (login_hint_token)")
    assert sent[0].post_data_json.get("login_hint_token") == token
    assert "login_hint" not in sent[0].post_data_json

    # The request reaches alice's phone, which hides its code (it did its job).
    card = phone.locator("li.request", has_text=binding.inner_text())
    expect(card).to_be_visible(timeout=10_000)
    expect(phone.locator("#ciba-my-code-panel")).to_be_hidden()
    expect(phone.locator("#ciba-my-code-message")).to_contain_text("A request arrived")
    card.locator(".approve").click()

    expect(kiosk.locator("#status")).to_have_text("Approved: paid.", timeout=20_000)
    expect(kiosk.locator("#paid-payment")).to_have_text("EUR 23.40 to Corner Shop")
    request = AuthenticationRequest.objects.get(binding_message=binding.inner_text())
    assert request.user.username == "alice"
    assert token not in kiosk.content()


def test_a_code_works_once_and_the_kiosk_asks_for_a_fresh_one(issuing, pages, demo, camera):
    _, phone = pages
    token = show_my_code(phone)
    kiosk = camera(token)
    scan(kiosk, demo["base_url"], "5.00")
    kiosk.click("#pay")
    expect(kiosk.locator("#binding")).to_contain_text("Pay EUR 5.00 at Corner Shop #")
    kiosk.click("#cancel")
    kiosk.click("#again")

    scan(kiosk, demo["base_url"], "6.00")  # the same code again (the camera still films it)
    kiosk.click("#pay")

    expect(kiosk.locator("#error")).to_contain_text("The bank refused the customer's code: scan a fresh one")
    expect(kiosk.locator("#error")).to_contain_text("invalid_request")
    expect(kiosk.locator("#scan-status")).to_have_text("Scan the customer's code again.")
    expect(kiosk.locator("#login_hint")).to_be_enabled()  # the typed customer is back
    expect(kiosk.locator("#login_hint")).to_be_visible()
    assert token not in kiosk.content()
    assert AuthenticationRequest.objects.count() == 1


def test_the_code_is_renewed_before_it_expires_and_not_for_a_phone_left_alone(issuing, pages, demo):
    """Codes live 120 s: the page asks for the next one 20 s early, and stops after ten minutes
    without a tap (a phone left on the counter mints no codes), until the user taps again."""
    _, phone = pages
    phone.clock.install()
    phone.goto(f"{demo['base_url']}{DEVICE_PAGE}")
    phone.clock.pause_at(int(time.time() * 1000) + 1_000)  # from now on, time moves when we say
    asked: list[str] = []  # the page's requests for a code
    phone.on("request", lambda request: asked.append(request.url) if request.url.endswith(MY_CODE) else None)
    tokens = [show_my_code(phone)]

    for _ in range(6):  # the page's clock: 100 s, 200 s, ... 600 s since the last tap
        phone.wait_for_timeout(1_200)  # real time between codes, within the server's rate
        phone.clock.run_for(99_000)
        phone.wait_for_timeout(300)
        assert len(asked) == len(tokens)  # not yet: 21 s are left
        with phone.expect_response(lambda response: response.url.endswith(MY_CODE)) as answer:
            phone.clock.run_for(1_000)
        tokens.append(answer.value.json()["login_hint_token"])
        expect(phone.locator("#ciba-my-code-countdown")).to_contain_text("Valid for 2:00")
    assert len(set(tokens)) == 7

    phone.clock.run_for(100_000)  # 700 s without a tap: the page stops instead of renewing
    expect(phone.locator("#ciba-my-code-panel")).to_be_hidden()
    expect(phone.locator("#ciba-my-code-message")).to_have_text(
        "Your code was hidden after 10 minutes without use. Tap Show my code to see it again."
    )
    expect(phone.locator("#ciba-my-code-image svg")).to_have_count(0)
    phone.clock.run_for(300_000)
    phone.wait_for_timeout(500)
    assert len(asked) == 7

    phone.wait_for_timeout(1_200)
    tokens.append(show_my_code(phone))  # a tap brings it back
    assert len(set(tokens)) == 8


HIDE = """hidden => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_a_page_nobody_sees_asks_for_no_codes_and_gets_a_fresh_one_when_seen_again(issuing, pages, demo):
    _, phone = pages
    phone.clock.install()
    phone.goto(f"{demo['base_url']}{DEVICE_PAGE}")
    phone.clock.pause_at(int(time.time() * 1000) + 1_000)
    asked: list[str] = []
    phone.on("request", lambda request: asked.append(request.url) if request.url.endswith(MY_CODE) else None)
    first = show_my_code(phone)

    phone.evaluate(HIDE, True)  # another app in front, or the screen off
    phone.clock.run_for(300_000)
    phone.wait_for_timeout(500)
    assert len(asked) == 1

    phone.wait_for_timeout(1_200)
    with phone.expect_response(lambda response: response.url.endswith(MY_CODE)) as answer:
        phone.evaluate(HIDE, False)  # back: the code shown expired meanwhile, a new one comes
    assert answer.value.json()["login_hint_token"] != first
    expect(phone.locator("#ciba-my-code-countdown")).to_have_text(re.compile(r"Valid for 2:00\. "))


def test_the_phone_offers_no_code_when_the_site_issues_none(pages, demo):
    _, phone = pages
    phone.goto(f"{demo['base_url']}{DEVICE_PAGE}")
    expect(phone.locator("h1")).to_have_text("Sign-in requests")
    expect(phone.locator("#ciba-my-code")).to_have_count(0)


#: A Screen Wake Lock API that records what the page asks for (headless Chromium refuses real
#: locks): ``window.__locks`` lists "request:screen" and "release" in order, and "dropped" when
#: the page is hidden, where a browser releases every lock by itself.
WAKE_LOCK = """(() => {
    window.__locks = [];
    const held = new Set();
    function end(lock, how) {
        if (lock.released) return;
        lock.released = true;
        held.delete(lock);
        window.__locks.push(how);
        lock.listeners.forEach(listener => listener());
    }
    const wakeLock = {
        request: async type => {
            window.__locks.push("request:" + type);
            const lock = {
                released: false,
                listeners: [],
                addEventListener(name, listener) { this.listeners.push(listener); },
                async release() { end(this, "release"); },
            };
            held.add(lock);
            return lock;
        },
    };
    Object.defineProperty(navigator, "wakeLock", { configurable: true, get: () => wakeLock });
    document.addEventListener("visibilitychange", () => {
        if (document.hidden) Array.from(held).forEach(lock => end(lock, "dropped"));
    });
})()"""


def test_the_screen_stays_on_while_the_code_shows_and_may_sleep_once_it_is_hidden(issuing, pages, demo):
    _, phone = pages
    phone.add_init_script(WAKE_LOCK)
    phone.goto(f"{demo['base_url']}{DEVICE_PAGE}")
    assert phone.evaluate("window.__locks") == []  # without a code, the phone's own rules apply

    show_my_code(phone)
    phone.wait_for_function("window.__locks.length === 1")
    phone.click("#ciba-my-code-toggle")  # "Hide my code"
    phone.wait_for_function("window.__locks.length === 2")
    assert phone.evaluate("window.__locks") == ["request:screen", "release"]

    phone.wait_for_timeout(1_200)  # within the server's rate for codes
    show_my_code(phone)
    phone.evaluate(HIDE, True)  # another app in front: the browser drops the lock
    phone.evaluate(HIDE, False)  # back, the code still good: the screen is kept on again
    phone.wait_for_function("window.__locks.length === 5")
    assert phone.evaluate("window.__locks") == [
        "request:screen",
        "release",
        "request:screen",
        "dropped",
        "request:screen",
    ]
