"""The device page's "Show my code": a single-use ``login_hint_token`` and its QR code for the
signed-in user, which a kiosk scans and sends to the backchannel endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.etree import ElementTree

import pytest
from django.test import Client

from ciba.models import AuthenticationRequest
from example_project.demo import kiosk
from tests.conftest import basic_auth
from tests.protocol import BACKCHANNEL, FORM, backchannel, form, oauth_error

MY_CODE = "/ciba/device/my-code/"
PAGE = "/ciba/device/"
SVG = "{http://www.w3.org/2000/svg}svg"

pytestmark = pytest.mark.django_db


@pytest.fixture
def issuing(settings: Any) -> None:
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_TOKEN_ISSUANCE": True}


@pytest.fixture
def phone(alice: Any) -> Client:
    """Alice's browser on the device page: signed in, and checked for CSRF as browsers are."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    browser.get(PAGE)  # sets the CSRF cookie, as the page does
    return browser


def ask_for_code(browser: Client) -> Any:
    return browser.post(MY_CODE, HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)


def test_a_signed_in_user_gets_a_code_with_its_lifetime_and_its_qr_code(issuing: None, phone: Client) -> None:
    response = ask_for_code(phone)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    body = response.json()
    assert set(body) == {"login_hint_token", "expires_in", "expires_at", "svg"}
    assert body["expires_in"] == 120
    assert datetime.fromisoformat(body["expires_at"]).tzinfo is not None
    assert body["login_hint_token"].count(".") == 2  # a compact JWS
    assert "alice" not in body["login_hint_token"] and "alice" not in body["svg"]


def test_the_qr_code_is_svg_markup_dark_on_white_with_a_quiet_zone(issuing: None, phone: Client) -> None:
    svg = ask_for_code(phone).json()["svg"]

    assert svg.startswith("<svg") and "<?xml" not in svg
    root = ElementTree.fromstring(svg)
    assert root.tag == SVG
    x, y, width, height = (int(v) for v in root.attrib["viewBox"].split())
    assert width == height and (width - 8 - 21) % 4 == 0  # a QR version's modules, four on each side
    background, modules = list(root)
    assert background.attrib["fill"] == "#fff"  # an opaque white ground, quiet zone included
    assert background.attrib["d"] == f"M0 0h{width}v{height}h-{width}z"
    assert modules.attrib["stroke"] == "#000"
    assert modules.attrib["d"].startswith("M4 4.5")  # the first module row starts after the quiet zone


def test_the_code_is_redeemed_once_at_the_backchannel_endpoint(
    issuing: None, phone: Client, alice: Any, make_client: Any, client: Client
) -> None:
    token = ask_for_code(phone).json()["login_hint_token"]
    app, secret = make_client()
    params = {"scope": "openid", "login_hint_token": token, "binding_message": "W4SCT"}

    first = backchannel(client, app, secret, params)
    assert first.status_code == 200, first.content
    assert AuthenticationRequest.objects.get(auth_req_id=first.json()["auth_req_id"]).user == alice

    again = backchannel(client, app, secret, params)
    oauth_error(again, 400, "invalid_request")
    assert AuthenticationRequest.objects.count() == 1


def test_each_code_is_new(issuing: None, phone: Client) -> None:
    first = ask_for_code(phone).json()["login_hint_token"]
    second = ask_for_code(phone).json()["login_hint_token"]
    assert first != second


def test_without_a_session_the_page_is_told_it_is_signed_out(issuing: None, alice: Any) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.get("/demo/login/")  # a CSRF cookie, but nobody signed in

    response = ask_for_code(browser)

    assert response.status_code == 401
    assert response.json()["error"] == "login_required"
    assert "login_hint_token" not in response.json()


def test_a_post_without_the_csrf_token_is_refused(issuing: None, phone: Client) -> None:
    response = phone.post(MY_CODE)
    assert response.status_code == 403
    assert b"login_hint_token" not in response.content


def test_only_post_mints_a_code(issuing: None, phone: Client) -> None:
    response = phone.get(MY_CODE)
    assert response.status_code == 405


def test_when_issuance_is_off_there_is_no_such_page_and_no_button(phone: Client) -> None:
    assert ask_for_code(phone).status_code == 404
    page = phone.get(PAGE).content.decode()
    assert "ciba-my-code" not in page and "data-my-code-url" not in page


def test_when_issuance_is_on_the_page_offers_the_code(issuing: None, phone: Client) -> None:
    page = phone.get(PAGE).content.decode()
    assert f'data-my-code-url="{MY_CODE}"' in page
    assert 'id="ciba-my-code-toggle"' in page


def test_codes_asked_for_too_fast_are_refused_with_a_time_to_wait(issuing: None, phone: Client) -> None:
    answers = [ask_for_code(phone) for _ in range(6)]

    refused = [answer for answer in answers if answer.status_code == 429]
    assert refused, [answer.status_code for answer in answers]
    assert int(refused[0]["Retry-After"]) >= 1
    assert "login_hint_token" not in refused[0].json()


@pytest.fixture
def kiosk_on_this_server(make_client: Any, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo kiosk as a client of this test server: its POSTs go through the test client."""
    app, secret = make_client()
    credentials = {"client_id": app.client_id, "client_secret": secret}

    def post(url: str, fields: dict[str, str], who: dict[str, Any]) -> Any:
        auth = basic_auth(who["client_id"], who["client_secret"])
        return client.post(url, form(fields), content_type=FORM, HTTP_AUTHORIZATION=auth)

    monkeypatch.setattr(kiosk, "clients", lambda: {"poll": credentials})
    monkeypatch.setattr(kiosk, "discovery", lambda: {"backchannel_authentication_endpoint": BACKCHANNEL})
    monkeypatch.setattr(kiosk, "_post", post)


def test_the_kiosk_names_the_customer_by_the_scanned_code_and_keeps_no_copy(
    issuing: None, phone: Client, alice: Any, kiosk_on_this_server: None
) -> None:
    token = ask_for_code(phone).json()["login_hint_token"]

    purchase = kiosk.start("poll", "bob", "12.50", login_hint_token=token)  # the code wins

    assert purchase["hint"] == "code"
    assert token not in repr(purchase)
    request = AuthenticationRequest.objects.get()
    assert request.user == alice
    assert request.hint_kind == AuthenticationRequest.HintKind.LOGIN_HINT_TOKEN


def test_the_kiosk_says_a_used_code_must_be_scanned_again(
    issuing: None, phone: Client, kiosk_on_this_server: None
) -> None:
    token = ask_for_code(phone).json()["login_hint_token"]
    kiosk.start("poll", "", "12.50", login_hint_token=token)

    with pytest.raises(kiosk.KioskError) as refused:
        kiosk.start("poll", "", "12.50", login_hint_token=token)

    message = str(refused.value)
    assert message.startswith("The bank refused the customer's code: scan a fresh one (invalid_request")
    assert token not in message


def test_the_kiosk_page_refuses_a_code_that_is_not_a_string(client: Client) -> None:
    body = {"login_hint_token": ["a.b.c"], "amount": "1"}
    response = client.post("/demo/kiosk/purchases/", body, content_type="application/json")
    assert response.status_code == 400
    assert "login_hint_token" in response.json()["error"]
