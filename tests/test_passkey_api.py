"""A user enrolls, lists, renames and removes their passkeys through the consent API, by session
or by the device app's token; nobody else sees or touches them (docs/authentication.md).

Enrollment is real WebAuthn registration: the options the API gives go to a software
authenticator (tests/webauthn_authenticator.py), and what it makes comes back as a browser's
``credential.toJSON()`` would send it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from ciba import signals
from ciba.models import Passkey, WebAuthnChallenge
from tests.protocol import consent_bearer
from tests.webauthn_authenticator import SoftAuthenticator

API = "/o/ciba/passkeys/"
OPTIONS = f"{API}registration-options/"
#: What the API shows of a passkey, and nothing more: never the key, its ID or the user handle.
PASSKEY_FIELDS = {"id", "name", "created_at", "last_used_at", "device_bound", "backed_up", "disabled"}


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "bob-password")


def device_app(user: Any) -> Client:
    """The user's authentication-device app: a token carrying the consent scope."""
    return Client(**consent_bearer(user))


def browser(user: Any) -> Client:
    """The user's browser, signed in to the site (a session; CSRF is checked for real)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/admin/login/")  # any page that sets the CSRF cookie
    return client


def post(api: Client, path: str, body: Any, **extra: Any) -> Any:
    return api.post(path, json.dumps(body), content_type="application/json", **_csrf(api), **extra)


def _csrf(api: Client) -> dict[str, str]:
    cookie = api.cookies.get("csrftoken")
    return {"HTTP_X_CSRFTOKEN": cookie.value} if cookie else {}


def enroll(api: Client, authenticator: SoftAuthenticator, name: str = "", **knobs: Any) -> Any:
    """Enroll a new passkey of ``authenticator`` as a browser does: options, create, post."""
    options = post(api, OPTIONS, {})
    assert options.status_code == 200, options.content
    credential = authenticator.create(options.json(), **knobs)
    body = {"credential": credential, **({"name": name} if name else {})}
    return post(api, API, body)


def enrolled(api: Client, authenticator: SoftAuthenticator, name: str = "", **knobs: Any) -> dict[str, Any]:
    response = enroll(api, authenticator, name, **knobs)
    assert response.status_code == 201, response.content
    return response.json()


def invalid_authentication(response: Any) -> str:
    """The refusal of what the device sent: 400 invalid_authentication, with a description."""
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_authentication", body
    assert body["error_description"], body
    return body["error_description"]


# --- enroll, list, rename, remove -------------------------------------------------------------------


@pytest.mark.parametrize("caller", [device_app, browser], ids=["token", "session"])
def test_a_user_enrolls_lists_renames_and_removes_a_passkey(alice, caller):
    api = caller(alice)
    passkey = enrolled(api, SoftAuthenticator(), name="Alice's phone")
    assert set(passkey) == PASSKEY_FIELDS
    assert passkey["name"] == "Alice's phone"
    assert passkey["device_bound"] is True and passkey["backed_up"] is False
    assert passkey["disabled"] is False and passkey["last_used_at"] is None
    assert api.get(API).json() == [passkey]

    renamed = api.patch(
        f"{API}{passkey['id']}/", json.dumps({"name": "Work phone"}), "application/json", **_csrf(api)
    )
    assert renamed.status_code == 200, renamed.content
    assert renamed.json() == {**passkey, "name": "Work phone"}
    assert Passkey.objects.get().name == "Work phone"

    assert api.delete(f"{API}{passkey['id']}/", **_csrf(api)).status_code == 204
    assert api.get(API).json() == [] and not Passkey.objects.exists()


def test_the_registration_options_are_for_a_verified_discoverable_passkey_under_an_opaque_handle(alice):
    options = post(device_app(alice), OPTIONS, {}).json()["publicKey"]
    assert options["rp"]["id"] == "testserver"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["attestation"] == "none"
    # user.id is an opaque handle: never the username or the primary key.
    assert options["user"]["id"] not in {"alice", str(alice.pk)}
    assert WebAuthnChallenge.objects.filter(purpose="register", user=alice).count() == 1


def test_one_account_keeps_one_user_handle_and_excludes_what_it_already_enrolled(alice):
    api = device_app(alice)
    phone, laptop = SoftAuthenticator(), SoftAuthenticator()
    first = enrolled(api, phone)
    options = post(api, OPTIONS, {}).json()["publicKey"]
    assert [entry["id"] for entry in options["excludeCredentials"]] == [Passkey.objects.get().credential_id]
    second = enrolled(api, laptop, name="Laptop")
    assert [p["id"] for p in api.get(API).json()] == [first["id"], second["id"]]  # oldest first
    assert len({p.user_handle for p in Passkey.objects.all()}) == 1


def test_a_synced_passkey_is_shown_as_not_device_bound(alice):
    passkey = enrolled(device_app(alice), SoftAuthenticator(backup_eligible=True, backed_up=True))
    assert passkey["device_bound"] is False and passkey["backed_up"] is True


def test_the_name_is_optional_and_bounded(alice):
    api = device_app(alice)
    assert enrolled(api, SoftAuthenticator())["name"] == ""
    too_long = enroll(api, SoftAuthenticator(), name="x" * 65)
    assert too_long.status_code == 400
    assert Passkey.objects.count() == 1
    passkey = Passkey.objects.get()
    response = api.patch(f"{API}{passkey.pk}/", json.dumps({"name": "y" * 65}), "application/json")
    assert response.status_code == 400
    assert api.patch(f"{API}{passkey.pk}/", json.dumps({}), "application/json").status_code == 400
    passkey.refresh_from_db()
    assert passkey.name == ""


def test_enrolling_and_removing_are_announced(alice):
    seen: list[tuple[str, str, Any]] = []

    def enrolled_receiver(sender, passkey, user, **kwargs):
        seen.append(("enrolled", passkey.credential_id, user))

    def removed_receiver(sender, passkey, user, **kwargs):
        seen.append(("removed", passkey.credential_id, user))

    signals.passkey_enrolled.connect(enrolled_receiver)
    signals.passkey_removed.connect(removed_receiver)
    try:
        api = device_app(alice)
        authenticator = SoftAuthenticator()
        passkey = enrolled(api, authenticator)
        assert api.delete(f"{API}{passkey['id']}/").status_code == 204
    finally:
        signals.passkey_enrolled.disconnect(enrolled_receiver)
        signals.passkey_removed.disconnect(removed_receiver)
    (credential_id,) = authenticator.credentials
    assert seen == [("enrolled", credential_id, alice), ("removed", credential_id, alice)]


def test_a_passkey_suspected_of_being_cloned_is_shown_disabled(alice):
    api = device_app(alice)
    passkey = enrolled(api, SoftAuthenticator())
    Passkey.objects.filter(pk=passkey["id"]).update(cloned_at="2026-01-01T00:00:00Z")
    assert api.get(API).json()[0]["disabled"] is True


# --- what is refused -----------------------------------------------------------------------------------


def test_a_credential_that_fails_verification_is_refused_and_nothing_is_kept(alice):
    api = device_app(alice)
    assert invalid_authentication(enroll(api, SoftAuthenticator(), user_verified=False))
    assert invalid_authentication(enroll(api, SoftAuthenticator(), origin="https://evil.example"))
    assert invalid_authentication(enroll(api, SoftAuthenticator(), challenge=b"\x00" * 32))
    assert not Passkey.objects.exists()


def test_a_registration_challenge_is_used_once(alice):
    api = device_app(alice)
    options = post(api, OPTIONS, {}).json()
    authenticator = SoftAuthenticator()
    assert post(api, API, {"credential": authenticator.create(options)}).status_code == 201
    assert invalid_authentication(post(api, API, {"credential": SoftAuthenticator().create(options)}))
    assert Passkey.objects.count() == 1


def test_someone_elses_registration_challenge_is_refused(alice, bob):
    options = post(device_app(bob), OPTIONS, {}).json()
    credential = SoftAuthenticator().create(options)
    assert invalid_authentication(post(device_app(alice), API, {"credential": credential}))
    assert not Passkey.objects.exists()


def test_the_same_credential_cannot_be_enrolled_twice(alice, bob):
    authenticator = SoftAuthenticator()
    first = enrolled(device_app(alice), authenticator)
    (credential_id,) = authenticator.credentials
    again = enroll(device_app(bob), authenticator, credential_id=credential_id)
    assert again.status_code == 400, again.content
    assert [str(p.pk) for p in Passkey.objects.all()] == [first["id"]]


@override_settings(CIBA={"PASSKEYS_PER_USER": 2})
def test_a_user_enrolls_at_most_passkeys_per_user(alice):
    api = device_app(alice)
    enrolled(api, SoftAuthenticator())
    early = post(api, OPTIONS, {}).json()  # options asked for before the limit was reached
    enrolled(api, SoftAuthenticator())
    assert "remove one" in invalid_authentication(post(api, OPTIONS, {}))
    assert invalid_authentication(post(api, API, {"credential": SoftAuthenticator().create(early)}))
    assert Passkey.objects.filter(user=alice).count() == 2


@pytest.mark.parametrize(
    "body",
    [{}, {"credential": "not an object"}, {"credential": []}, {"credential": None}, {"credential": {}}],
)
def test_a_malformed_enrollment_is_a_400_never_a_500(alice, body):
    response = post(device_app(alice), API, body)
    assert response.status_code == 400, response.content
    assert not Passkey.objects.exists()


def test_nobody_sees_renames_or_removes_someone_elses_passkey(alice, bob):
    passkey = enrolled(device_app(alice), SoftAuthenticator(), name="Alice's phone")
    bobs = device_app(bob)
    assert bobs.get(API).json() == []
    url = f"{API}{passkey['id']}/"
    assert bobs.patch(url, json.dumps({"name": "mine"}), "application/json").status_code == 404
    assert bobs.delete(url).status_code == 404
    assert Passkey.objects.get().name == "Alice's phone"


def test_an_unknown_passkey_is_404(alice):
    api = device_app(alice)
    unknown = f"{API}00000000-0000-4000-8000-000000000000/"
    assert api.delete(unknown).status_code == 404
    assert api.patch(unknown, json.dumps({"name": "x"}), "application/json").status_code == 404


def test_anonymous_callers_and_tokens_without_the_consent_scope_are_refused(alice):
    passkey = enrolled(device_app(alice), SoftAuthenticator())
    for api in (Client(), Client(**consent_bearer(alice, scope="openid email"))):
        assert api.get(API).status_code in (401, 403)
        assert post(api, OPTIONS, {}).status_code in (401, 403)
        assert post(api, API, {"credential": {}}).status_code in (401, 403)
        assert api.delete(f"{API}{passkey['id']}/").status_code in (401, 403)
    assert Passkey.objects.count() == 1


def test_session_users_need_a_csrf_token(alice):
    api = browser(alice)
    assert api.post(OPTIONS, "{}", content_type="application/json").status_code == 403
    assert post(api, OPTIONS, {}).status_code == 200
