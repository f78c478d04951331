"""`ciba.device`: the device page a site gets from two lines (INSTALLED_APPS and its URLconf)."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.staticfiles import finders
from django.core import checks
from django.core.management import call_command
from django.test import override_settings

from ciba.device.vapid import UnreadableVapidKey, vapid_public_key

PAGE = "/ciba/device/"
WEBPUSH = "ciba.backends.webpush.WebPushNotifier"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@pytest.fixture
def vapid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(key: Any, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def webpush_settings(private_key: str, notifiers: list[str] | None = None) -> dict[str, Any]:
    return {
        "NOTIFIER_CLASSES": notifiers if notifiers is not None else [WEBPUSH],
        "WEBPUSH_VAPID_PRIVATE_KEY": private_key,
        "WEBPUSH_VAPID_SUBJECT": "mailto:security@example.com",
        "CALLBACK_ALLOW_HTTP": True,
        "CALLBACK_ALLOW_PRIVATE_NETWORKS": True,
    }


class Tags(HTMLParser):
    """Every start tag with its attributes, to look for scripts and event handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


def text_of(response: Any) -> str:
    return response.content.decode()


def root_data(html: str) -> dict[str, str | None]:
    return next(attrs for tag, attrs in tags_of(html) if attrs.get("id") == "ciba-device")


# --- the page ---


def test_the_page_sends_anonymous_visitors_to_the_sites_own_login(client, db):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"] == f"/demo/login/?next={PAGE}"


def test_the_sites_login_leads_to_the_page(client, alice):
    response = client.post("/demo/login/", {"username": "alice", "password": "alice-password"})
    assert response.status_code == 302 and response["Location"] == PAGE


def test_the_page_hands_the_script_the_consent_api_urls(client, alice):
    client.force_login(alice)
    response = client.get(PAGE)

    assert response.status_code == 200
    data = root_data(text_of(response))
    assert data["data-requests-url"] == "/o/ciba/requests/"
    assert data["data-devices-url"] == "/o/ciba/devices/"
    assert data["data-service-worker-url"] == "/ciba/device/sw.js"
    assert data["data-csrf-token"]
    assert "csrftoken" in response.cookies  # for the API's CSRF check on approve and deny
    assert response["X-Frame-Options"] == "DENY"  # a framed Approve button could be clickjacked
    block = re.search(
        r'<script id="ciba-device-messages" type="application/json">(.*?)</script>', text_of(response)
    )
    assert json.loads(block.group(1))["approvedTitle"] == "Approved"


def test_the_page_runs_under_a_strict_csp_no_inline_script_or_handler(client, alice):
    client.force_login(alice)
    html = client.get(PAGE).content.decode()

    scripts = [attrs for tag, attrs in tags_of(html) if tag == "script"]
    assert any(attrs.get("src", "").endswith("ciba/device/device.js") for attrs in scripts)
    for attrs in scripts:
        # Either a file, or the translated sentences as a JSON data block (never executed).
        assert attrs.get("src") or attrs.get("type") == "application/json", attrs
    handlers = [(tag, name) for tag, attrs in tags_of(html) for name in attrs if name.startswith("on")]
    assert handlers == []
    assert "javascript:" not in html
    assert 'style="' not in html


def test_the_page_is_an_installable_web_app(client, alice):
    client.force_login(alice)
    html = client.get(PAGE).content.decode()
    links = {attrs.get("rel"): attrs.get("href") for tag, attrs in tags_of(html) if tag == "link"}
    assert links["manifest"] == "/ciba/device/manifest.webmanifest"
    assert any(tag == "meta" and attrs.get("name") == "theme-color" for tag, attrs in tags_of(html))


def test_the_page_has_headings_and_live_regions(client, alice):
    client.force_login(alice)
    tags = tags_of(client.get(PAGE).content.decode())
    names = [tag for tag, _ in tags]
    assert "h1" in names and "h2" in names
    by_id = {attrs.get("id"): attrs for _, attrs in tags if attrs.get("id")}
    assert by_id["ciba-requests"]["aria-live"] == "polite"
    assert by_id["ciba-decisions"]["aria-live"] == "polite"
    assert by_id["ciba-error"]["role"] == "alert"


# --- manifest, service worker, static files ---


def test_the_manifest_is_valid_json_with_what_installing_needs(client, db):
    response = client.get("/ciba/device/manifest.webmanifest")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/manifest+json")
    manifest = json.loads(response.content)
    assert manifest["name"] and manifest["short_name"]
    assert manifest["start_url"] == PAGE and manifest["scope"] == PAGE
    assert manifest["display"] == "standalone"
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        assert icon["src"].startswith("/static/ciba/device/")
        assert finders.find(icon["src"].removeprefix("/static/")), icon["src"]


def test_the_service_worker_is_javascript_served_from_the_pages_own_path(client, db):
    response = client.get("/ciba/device/sw.js")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert "no-cache" in response["Cache-Control"]
    # Its default scope, /ciba/device/, covers the page: no Service-Worker-Allowed needed.
    assert not response.has_header("Service-Worker-Allowed")
    body = response.content.decode()
    assert 'addEventListener("push"' in body and 'addEventListener("notificationclick"' in body
    assert "ciba.authentication_requested" in body
    assert '"/static/ciba/device/icon-192.png"' in body


@pytest.mark.parametrize(
    "path", ["device.js", "passkeys.js", "device.css", "icon.svg", "icon-192.png", "icon-512.png"]
)
def test_the_static_files_ship_with_the_app(path):
    assert finders.find(f"ciba/device/{path}")


# --- Web Push ---


def test_the_vapid_public_key_of_a_pem_key_is_its_uncompressed_point(vapid_key):
    expected = public_point(vapid_key)
    assert len(expected) == 65 and expected[0] == 4

    assert vapid_public_key(pem(vapid_key)) == b64url(expected)
    assert vapid_public_key(pem(vapid_key, serialization.PrivateFormat.TraditionalOpenSSL)) == b64url(
        expected
    )


def test_the_vapid_public_key_of_a_base64url_key_raw_or_der(vapid_key):
    expected = b64url(public_point(vapid_key))
    raw = vapid_key.private_numbers().private_value.to_bytes(32, "big")
    der = vapid_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    assert vapid_public_key(b64url(raw)) == expected
    assert vapid_public_key(b64url(raw) + "=") == expected
    assert vapid_public_key(b64url(der)) == expected
    assert len(base64.urlsafe_b64decode(expected + "=")) == 65


@pytest.mark.parametrize(
    "bad",
    [
        "not a key",
        b64url(b"\x00" * 32),  # the scalar 0 is no private key
        pem(ec.generate_private_key(ec.SECP384R1())),  # VAPID is P-256 only
    ],
)
def test_an_unreadable_vapid_key_is_refused(bad):
    with pytest.raises(UnreadableVapidKey):
        vapid_public_key(bad)


def test_the_push_button_appears_only_when_web_push_is_configured(client, alice, vapid_key):
    client.force_login(alice)
    assert 'id="ciba-push"' not in client.get(PAGE).content.decode()

    with override_settings(CIBA=webpush_settings(pem(vapid_key))):
        html = client.get(PAGE).content.decode()
    assert 'id="ciba-push"' in html and 'id="ciba-push-toggle"' in html
    assert root_data(html)["data-vapid-public-key"] == b64url(public_point(vapid_key))

    # The key without the notifier, or the notifier without the key: no button.
    for incomplete in (
        webpush_settings(pem(vapid_key), notifiers=["ciba.backends.notifiers.LogNotifier"]),
        webpush_settings(""),
    ):
        with override_settings(CIBA=incomplete):
            html = client.get(PAGE).content.decode()
        assert 'id="ciba-push"' not in html and "data-vapid-public-key" not in html


def test_an_unreadable_vapid_key_hides_the_button_and_fails_the_check(client, alice):
    client.force_login(alice)
    with override_settings(CIBA=webpush_settings("not a key")):
        html = client.get(PAGE).content.decode()
        errors = [m.id for m in checks.run_checks() if m.level >= checks.ERROR]
    assert 'id="ciba-push"' not in html
    assert "ciba_device.E001" in errors


def test_a_configured_site_passes_the_device_checks(vapid_key):
    with override_settings(CIBA=webpush_settings(pem(vapid_key))):
        ids = [m.id for m in checks.run_checks()]
    assert not [i for i in ids if i and i.startswith("ciba_device.")]


# --- the example project's wiring ---


def test_the_demos_old_phone_url_redirects_to_the_page_for_good(client, db):
    response = client.get("/demo/phone/")
    assert response.status_code == 301 and response["Location"] == PAGE


def test_the_demo_overrides_the_frame_to_add_its_sign_out(client, alice):
    client.force_login(alice)
    html = client.get(PAGE).content.decode()
    assert "Signed in as alice" in html
    assert 'action="/demo/logout/"' in html


def test_the_demo_data_prints_the_page_on_the_demos_port(db, monkeypatch, settings, tmp_path):
    settings.CIBA_DEMO_CLIENTS_FILE = str(tmp_path / "clients.json")
    monkeypatch.setenv("PORT", "8123")
    out = io.StringIO()
    call_command("ciba_demo_data", stdout=out)

    printed = out.getvalue()
    assert "http://localhost:8123/ciba/device/" in printed  # by name: passkeys need a domain
    assert "http://127.0.0.1:8123/admin/" in printed
    assert ":8000" not in printed
    clients = json.loads((tmp_path / "clients.json").read_text())["clients"]
    assert clients["ping"]["notification_endpoint"] == "http://127.0.0.1:8123/demo/callbacks/ping/"


# --- the device page: passkeys and user code sections ---


def test_the_page_hands_the_script_the_passkey_urls(client, alice):
    client.force_login(alice)
    html = client.get(PAGE).content.decode()

    data = root_data(html)
    assert data["data-passkeys-url"] == "/o/ciba/passkeys/"
    assert data["data-passkey-options-url"] == "/o/ciba/passkeys/registration-options/"
    ids = {attrs.get("id") for _, attrs in tags_of(html)}
    assert {"ciba-passkeys", "ciba-passkey-list", "ciba-passkey-create", "ciba-passkey-template"} <= ids
    # passkeys.js before device.js: the page uses its window.CibaPasskeys.
    scripts = [attrs["src"] for tag, attrs in tags_of(html) if tag == "script" and attrs.get("src")]
    assert [src.rsplit("/", 1)[1] for src in scripts] == ["passkeys.js", "device.js"]


def test_without_the_webauthn_library_the_page_offers_no_passkeys(client, alice, monkeypatch):
    from ciba import assurance

    monkeypatch.setattr(assurance, "passkeys_available", lambda: False)
    client.force_login(alice)
    html = client.get(PAGE).content.decode()
    assert 'id="ciba-passkeys"' not in html and "data-passkeys-url" not in root_data(html)
    sign_in_html = client.get("/ciba/device/sign-in/").content.decode()
    assert 'id="ciba-passkey-sign-in"' not in sign_in_html


def test_the_user_code_section_appears_only_where_the_site_takes_user_codes(client, alice, settings):
    client.force_login(alice)
    html = client.get(PAGE).content.decode()
    assert 'id="ciba-user-code"' not in html and "data-user-code-url" not in root_data(html)

    settings.CIBA = {**settings.CIBA, "USER_CODE_SUPPORTED": True, "USER_CODE_MIN_LENGTH": 8}
    html = client.get(PAGE).content.decode()
    assert root_data(html)["data-user-code-url"] == "/o/ciba/user-code/"
    field = next(attrs for _, attrs in tags_of(html) if attrs.get("id") == "ciba-user-code-input")
    assert field["type"] == "password" and field["minlength"] == "8" and field["maxlength"] == "64"


def script_keys(name: str) -> set[str]:
    """The message keys a script looks up: t("key"), t(cond ? "a" : "b"), and the map of
    what each approval mode needs."""
    source = open(finders.find(f"ciba/device/{name}"), encoding="utf-8").read()
    keys = set(re.findall(r'\bt\(\s*"(\w+)"', source))
    for pair in re.findall(r'\bt\([^()]*\?\s*"(\w+)"\s*:\s*"(\w+)"', source):
        keys.update(pair)
    return keys | set(re.findall(r':\s*"((?:needs|cannot)\w+)"', source))


@pytest.mark.parametrize("script", ["device.js", "passkeys.js"])
def test_every_sentence_the_scripts_show_is_translated_on_the_server(script):
    from ciba.device.views import script_messages

    keys = script_keys(script)
    assert keys, script
    assert keys <= set(script_messages()), keys - set(script_messages())


# --- the sign-in page ---

SIGN_IN = "/ciba/device/sign-in/"
PASSKEY_OPTIONS = "/ciba/device/sign-in/passkey-options/"
PASSKEY_SIGN_IN = "/ciba/device/sign-in/passkey/"


def test_the_sign_in_page_offers_the_password_form_and_a_passkey(client, db):
    response = client.get(f"{SIGN_IN}?next={PAGE}")

    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    html = text_of(response)
    tags = tags_of(html)
    by_id = {attrs.get("id"): attrs for _, attrs in tags if attrs.get("id")}
    assert by_id["id_username"]["autocomplete"] == "username"
    assert by_id["id_password"]["autocomplete"] == "current-password"
    root = by_id["ciba-sign-in"]
    assert root["data-options-url"] == PASSKEY_OPTIONS
    assert root["data-sign-in-url"] == PASSKEY_SIGN_IN
    assert root["data-next"] == PAGE and root["data-csrf-token"]
    assert "hidden" in by_id["ciba-passkey-sign-in"]  # shown by the script, where WebAuthn works
    assert any(
        tag == "input" and attrs.get("name") == "next" and attrs.get("value") == PAGE for tag, attrs in tags
    )
    # Strict-CSP friendly, like the device page.
    scripts = [attrs for tag, attrs in tags if tag == "script"]
    assert [a.get("src", "").rsplit("/", 1)[-1] for a in scripts if a.get("src")] == ["passkeys.js"]
    assert all(a.get("src") or a.get("type") == "application/json" for a in scripts)
    assert not [name for _, attrs in tags for name in attrs if name.startswith("on")]
    assert 'style="' not in html
    # Nobody is signed in yet: the demo's sign-out button is not offered.
    assert "/demo/logout/" not in html


def test_the_password_form_signs_in_and_goes_to_a_safe_next(client, alice):
    response = client.post(SIGN_IN, {"username": "alice", "password": "alice-password", "next": PAGE})
    assert response.status_code == 302 and response["Location"] == PAGE
    assert client.get(PAGE).status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", ""])
def test_an_unsafe_or_missing_next_leads_to_the_device_page(client, alice, target):
    response = client.post(SIGN_IN, {"username": "alice", "password": "alice-password", "next": target})
    assert response.status_code == 302 and response["Location"] == PAGE


def test_a_wrong_password_shows_the_form_again_with_an_error(client, alice):
    response = client.post(SIGN_IN, {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    html = text_of(response)
    assert 'role="alert"' in html and "correct username and password" in html
    assert client.get(PAGE).status_code == 302


def test_the_passkey_endpoints_take_only_posts_with_the_csrf_token(db):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert strict.get(PASSKEY_OPTIONS).status_code == 405
    assert strict.get(PASSKEY_SIGN_IN).status_code == 405
    assert strict.post(PASSKEY_OPTIONS, "{}", content_type="application/json").status_code == 403
    assert strict.post(PASSKEY_SIGN_IN, "{}", content_type="application/json").status_code == 403

    strict.get(SIGN_IN)
    token = strict.cookies["csrftoken"].value
    response = strict.post(PASSKEY_OPTIONS, "{}", content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert response.json()["publicKey"]["challenge"]


@pytest.fixture
def enrolled(alice: Any) -> Any:
    """alice with one passkey in a software authenticator, enrolled as the device page does."""
    from django.test import RequestFactory

    from ciba import passkeys
    from tests.webauthn_authenticator import SoftAuthenticator

    authenticator = SoftAuthenticator()
    http_request = RequestFactory().post("/o/ciba/passkeys/")
    created = authenticator.create(passkeys.registration_options(http_request, alice))
    passkeys.enroll(http_request, alice, created, name="Test phone")
    return authenticator


def passkey_sign_in(client: Any, authenticator: Any, next_url: str = PAGE, **knobs: Any) -> Any:
    options = client.post(PASSKEY_OPTIONS, "{}", content_type="application/json")
    assert options.status_code == 200, options.content
    public_key = options.json()["publicKey"]
    assert not public_key.get("allowCredentials")  # discoverable: the user is not known yet
    credential = authenticator.get(public_key, **knobs)
    return client.post(
        PASSKEY_SIGN_IN,
        json.dumps({"credential": credential, "next": next_url}),
        content_type="application/json",
    )


def test_a_passkey_signs_the_user_in_and_names_where_to_go(client, alice, enrolled):
    response = passkey_sign_in(client, enrolled)

    assert response.status_code == 200, response.content
    assert response.json() == {"redirect": PAGE}
    assert client.get(PAGE).status_code == 200
    assert int(client.session["_auth_user_id"]) == alice.pk
    assert client.session["_auth_user_backend"] == "django.contrib.auth.backends.ModelBackend"


def test_after_a_passkey_an_unsafe_next_leads_to_the_device_page(client, alice, enrolled):
    response = passkey_sign_in(client, enrolled, next_url="https://evil.example/steal")
    assert response.status_code == 200 and response.json() == {"redirect": PAGE}


def test_a_bad_passkey_signature_signs_nobody_in(client, alice, enrolled):
    response = passkey_sign_in(client, enrolled, corrupt_signature=True)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_authentication" and body["error_description"]
    assert "_auth_user_id" not in client.session
    assert client.get(PAGE).status_code == 302


def test_an_inactive_user_cannot_sign_in_with_a_passkey(client, alice, enrolled):
    alice.is_active = False
    alice.save()

    response = passkey_sign_in(client, enrolled)

    assert response.status_code == 400 and response.json()["error"] == "invalid_authentication"
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("body", ["not json", "[]", '{"credential": "x"}', "{}"])
def test_a_passkey_sign_in_that_is_not_a_credential_is_a_400(client, db, body):
    response = client.post(PASSKEY_SIGN_IN, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_request", "invalid_authentication")


# --- issue 27: withdrawn prompts, "I did not ask for this", blocked services -------------------------


def test_the_service_worker_closes_a_withdrawn_prompt_and_tells_the_open_pages(client, db):
    body = client.get("/ciba/device/sw.js").content.decode()
    assert "ciba.authentication_withdrawn" in body
    assert 'getNotifications({ tag: "ciba-" + data.auth_req_id })' in body
    assert 'type: "ciba.withdrawn"' in body


def test_each_request_card_offers_a_report_with_a_block_checkbox(client, alice):
    client.force_login(alice)
    page = text_of(client.get(PAGE))
    template = page[page.index('id="ciba-request-template"') : page.index('id="ciba-passkey-template"')]
    assert 'class="report link"' in template and "I did not ask for this" in template
    assert 'class="confirm-report" hidden' in template and 'class="block-client"' in template
    assert 'class="withdrawn-note" role="status" hidden' in template
    messages = json.loads(
        re.search(r'<script id="ciba-device-messages" type="application/json">(.*?)</script>', page).group(1)
    )
    assert messages["alsoBlock"] == "Also block {client} from asking me again"
    assert messages["withdrawn"] == "Withdrawn by {client}."


def test_the_page_offers_the_blocked_services_section_through_the_block_list_api(client, alice):
    client.force_login(alice)
    page = text_of(client.get(PAGE))
    assert root_data(page)["data-blocks-url"] == "/o/ciba/blocks/"
    assert 'id="ciba-blocks"' in page and "Blocked services" in page
