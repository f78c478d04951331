"""The demo shows strong authentication end to end: the kiosk can ask for a passkey
(``acr_values=phr``) and shows the ``acr``, ``amr`` and ``auth_time`` of the ID token it
received; the demo's login page leads to passkey sign-in; the phone link works for passkeys."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.cache import cache

from example_project.demo import kiosk, views

CLIENTS = {
    "poll": {
        "client_id": "demo-poll",
        "client_secret": "s",
        "token_endpoint_auth_method": "client_secret_basic",
    }
}
DISCOVERY = {
    "backchannel_authentication_endpoint": "http://as.example/o/backchannel-authentication/",
    "token_endpoint": "http://as.example/o/token/",
    "authorization_details_types_supported": [],
}


class Response:
    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        self.status_code, self.body = status_code, body

    def json(self) -> dict[str, Any]:
        return self.body


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, str]]]:
    """The authorization server as the kiosk sees it: what it was sent, and fixed answers."""
    cache.clear()
    sent: list[tuple[str, dict[str, str]]] = []
    claims = {"aud": "demo-poll", "acr": "phr", "amr": ["hwk", "user", "mfa"], "auth_time": 1_700_000_000}

    def post(url: str, form: dict[str, str], client: dict[str, Any]) -> Response:
        sent.append((url, form))
        if url == DISCOVERY["token_endpoint"]:
            return Response(200, {"access_token": "at", "id_token": "id", "token_type": "Bearer"})
        return Response(200, {"auth_req_id": "req-1", "expires_in": 120, "interval": 0})

    monkeypatch.setattr(kiosk, "clients", lambda: CLIENTS)
    monkeypatch.setattr(kiosk, "discovery", lambda: DISCOVERY)
    monkeypatch.setattr(kiosk, "_post", post)
    monkeypatch.setattr(kiosk, "_verify_id_token", lambda id_token, client_id: claims)
    return sent


# --- the kiosk asks for a passkey ----------------------------------------------------------------


def test_requiring_a_passkey_sends_acr_values_phr(server: list[tuple[str, dict[str, str]]]) -> None:
    purchase = kiosk.start("poll", "alice", "12.50", require_passkey=True)
    ((_, form),) = server
    assert form["acr_values"] == "phr"
    assert purchase["acr_values"] == "phr"


def test_a_plain_purchase_sends_no_acr_values(server: list[tuple[str, dict[str, str]]]) -> None:
    purchase = kiosk.start("poll", "alice", "12.50")
    ((_, form),) = server
    assert "acr_values" not in form and purchase["acr_values"] == ""


def test_the_kiosk_page_sends_the_checkbox_as_require_passkey(
    client: Any, server: list[tuple[str, dict[str, str]]]
) -> None:
    body = {"mode": "poll", "login_hint": "alice", "amount": "5", "require_passkey": True}
    response = client.post("/demo/kiosk/purchases/", json.dumps(body), content_type="application/json")
    assert response.status_code == 200 and response.json()["acr_values"] == "phr"
    assert server[0][1]["acr_values"] == "phr"


def test_require_passkey_must_be_a_boolean(client: Any, server: list[tuple[str, dict[str, str]]]) -> None:
    body = {"mode": "poll", "login_hint": "alice", "amount": "5", "require_passkey": "yes"}
    response = client.post("/demo/kiosk/purchases/", json.dumps(body), content_type="application/json")
    assert response.status_code == 400 and "require_passkey" in response.json()["error"]
    assert server == []


# --- the kiosk shows how the shopper authenticated ------------------------------------------------


def test_the_kiosk_shows_acr_amr_and_auth_time_from_the_verified_id_token(
    client: Any, server: list[tuple[str, dict[str, str]]]
) -> None:
    purchase = kiosk.start("poll", "alice", "12.50", require_passkey=True)
    response = client.get(f"/demo/kiosk/purchases/{purchase['id']}/")
    data = response.json()
    assert data["status"] == "approved"
    assert data["authentication"] == {
        "acr": "phr",
        "acr_meaning": kiosk.ACR_MEANINGS["phr"],
        "amr": ["hwk", "user", "mfa"],
        "amr_meanings": [kiosk.AMR_MEANINGS["hwk"], kiosk.AMR_MEANINGS["user"], kiosk.AMR_MEANINGS["mfa"]],
        "auth_time": 1_700_000_000,
    }


def test_a_token_without_acr_or_amr_says_so() -> None:
    shown = kiosk.authentication({"aud": "demo-poll", "auth_time": 1_700_000_000})
    assert shown["acr"] == "" and "no acr claimed" in shown["acr_meaning"]
    assert shown["amr"] == [] and shown["auth_time"] == 1_700_000_000


def test_unknown_or_malformed_claims_are_shown_without_a_meaning_never_trusted_blindly() -> None:
    shown = kiosk.authentication({"acr": "urn:bank:loa:9", "amr": ["retina", 7], "auth_time": "yesterday"})
    assert (shown["acr"], shown["acr_meaning"]) == ("urn:bank:loa:9", "")
    assert (shown["amr"], shown["amr_meanings"]) == (["retina"], [""])
    assert shown["auth_time"] is None
    assert kiosk.authentication({"acr": ["phr"], "auth_time": True})["acr"] == ""


def test_the_kiosk_page_has_the_checkbox_and_the_places_for_acr_amr_and_auth_time(client: Any) -> None:
    page = client.get("/demo/kiosk/").content.decode()
    assert 'id="require_passkey"' in page and "Require a passkey (acr_values=phr)" in page
    for element in ('id="acr"', 'id="amr"', 'id="auth-time"'):
        assert element in page


# --- the phone: passkeys need a domain ------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://127.0.0.1:8000/ciba/device/", "http://localhost:8000/ciba/device/"),
        ("http://[::1]:8077/ciba/device/", "http://localhost:8077/ciba/device/"),
        ("http://127.0.0.1/ciba/device/", "http://localhost/ciba/device/"),
        ("https://bank.example/ciba/device/", "https://bank.example/ciba/device/"),
    ],
)
def test_the_phone_link_is_on_localhost_where_browsers_allow_passkeys(url: str, expected: str) -> None:
    assert views.passkey_capable(url) == expected


def test_the_kiosk_page_links_the_phone_on_localhost(client: Any) -> None:
    page = client.get("/demo/kiosk/", HTTP_HOST="127.0.0.1:8000").content.decode()
    assert 'href="http://localhost:8000/ciba/device/"' in page


# --- the demo's login page leads to passkey sign-in --------------------------------------------------


def test_the_login_page_offers_sign_in_with_a_passkey_keeping_next(client: Any) -> None:
    page = client.get("/demo/login/?next=/ciba/device/").content.decode()
    assert 'id="passkey-sign-in"' in page and "Sign in with a passkey" in page
    assert 'href="/ciba/device/sign-in/?next=/ciba/device/"' in page
