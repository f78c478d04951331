"""How the user authenticates an approval, and what the ID token may then say (docs/authentication.md).

Through the consent API as the device uses it: a tap in the signed-in session, the password
re-entered, or a passkey assertion whose challenge is bound to the very transaction (dynamic
linking). The approval achieves a level (ciba.assurance); a request that needs more (its
``acr_values``, an essential ``acr``, the client's, the site's or the FAPI profile's floor)
is refused with ``step_up_required`` and stays pending; what the device sent that does not
verify is ``invalid_authentication`` and changes nothing. The ID token's ``acr``, ``amr``
(RFC 8176) and ``auth_time`` are those of what the user really did.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from unittest import mock

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ciba import passkeys, services, signals
from ciba.models import ApprovalEvidence, AuthenticationRequest, Passkey
from tests.protocol import backchannel, consent_bearer, poll
from tests.test_passkey_api import browser, device_app, enrolled
from tests.test_passkey_api import post as post_with_csrf
from tests.test_rar_consent import PAYMENT, validated, with_amount
from tests.webauthn_authenticator import SoftAuthenticator, from_b64url

State = AuthenticationRequest.State
API = "/o/ciba/requests/"
PASSWORD = "alice-password"


# --- helpers ---------------------------------------------------------------------------------------


def start(
    client: Any, make_client: Any, registered: tuple[Any, str] | None = None, **params: Any
) -> tuple[Any, str, AuthenticationRequest]:
    """A CIBA request for alice over HTTP, by the ``registered`` client (default: a new poll
    client); ``params`` add to the backchannel request's."""
    app, secret = registered or make_client("poll")
    response = backchannel(client, app, secret, {"scope": "openid email", "login_hint": "alice", **params})
    assert response.status_code == 200, response.content
    return app, secret, AuthenticationRequest.objects.get(auth_req_id=response.json()["auth_req_id"])


def post(api: Client, path: str, body: Any) -> Any:
    return api.post(path, json.dumps(body), content_type="application/json")


def options_for(api: Client, ar: AuthenticationRequest, **body: Any) -> dict[str, Any]:
    response = post(api, f"{API}{ar.auth_req_id}/authentication-options/", body)
    assert response.status_code == 200, response.content
    return response.json()


def approve(api: Client, ar: AuthenticationRequest, **body: Any) -> Any:
    return post(api, f"{API}{ar.auth_req_id}/approve/", body)


def with_passkey(credential: dict[str, Any]) -> dict[str, Any]:
    return {"method": "passkey", "credential": credential}


def with_password(password: str) -> dict[str, Any]:
    return {"method": "password", "password": password}


def tap_and_sign(
    api: Client, ar: AuthenticationRequest, authenticator: SoftAuthenticator, **body: Any
) -> Any:
    """Approve with a passkey as the device does: options, ``navigator.credentials.get``, approve."""
    credential = authenticator.get(options_for(api, ar, **body))
    return approve(api, ar, authentication=with_passkey(credential), **body)


def id_token_claims(client: Any, app: Any, secret: str, ar: AuthenticationRequest) -> dict[str, Any]:
    response = poll(client, app, secret, ar.auth_req_id)
    assert response.status_code == 200, response.content
    return jwt.decode(response.json()["id_token"], options={"verify_signature": False})


def pending(ar: AuthenticationRequest) -> bool:
    """Nothing was decided: still pending, no acr or evidence recorded."""
    ar = AuthenticationRequest.objects.get(pk=ar.pk)
    return (
        ar.state == State.PENDING
        and not ar.acr
        and not ApprovalEvidence.objects.filter(auth_request=ar).exists()
    )


def refused(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == error, body
    assert body["error_description"].isascii() and body["error_description"], body
    return body


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "bob-password")


@pytest.fixture
def api(alice) -> Client:
    """Alice's authentication-device app."""
    return device_app(alice)


@pytest.fixture
def phone(api) -> SoftAuthenticator:
    """Alice's phone, with a device-bound passkey enrolled through the API."""
    authenticator = SoftAuthenticator()
    enrolled(api, authenticator, name="Phone")
    return authenticator


@pytest.fixture
def synced(api) -> SoftAuthenticator:
    """Alice's synced passkey (backup eligible and backed up), enrolled through the API."""
    authenticator = SoftAuthenticator(backup_eligible=True, backed_up=True)
    enrolled(api, authenticator, name="Synced")
    return authenticator


# --- approving with a passkey --------------------------------------------------------------------------


def test_a_passkey_approval_claims_its_acr_amr_and_the_time_of_the_assertion(client, make_client, api, phone):
    app, secret, ar = start(client, make_client)
    options = options_for(api, ar)
    credential = phone.get(options)
    before = timezone.now()
    response = approve(api, ar, authentication=with_passkey(credential))
    assert response.status_code == 200, response.content
    ar.refresh_from_db()
    assert ar.state == State.APPROVED and before <= ar.auth_time <= timezone.now()
    assert (ar.acr, ar.amr) == ("phr", "hwk user mfa")

    evidence = ApprovalEvidence.objects.get(auth_request=ar)
    assert (evidence.method, evidence.level) == ("passkey", "passkey_device_bound")
    assert evidence.passkey == Passkey.objects.get() and evidence.credential_id == credential["id"]
    assert evidence.verified_at == ar.auth_time
    assert evidence.signature == credential["response"]["signature"]
    assert evidence.authenticator_data == credential["response"]["authenticatorData"]
    assert json.loads(evidence.client_data_json)["challenge"] == options["publicKey"]["challenge"]
    assert evidence.challenge == options["publicKey"]["challenge"]
    assert evidence.transaction_digest == options["transaction_digest"]
    assert evidence.user_present and evidence.user_verified and not evidence.backup_eligible
    assert evidence.origin == "http://testserver" and evidence.rp_id == "testserver"
    assert evidence.sign_count == 1 == Passkey.objects.get().sign_count
    assert Passkey.objects.get().last_used_at == ar.auth_time

    claims = id_token_claims(client, app, secret, ar)
    assert claims["acr"] == "phr"
    assert claims["amr"] == ["hwk", "user", "mfa"]
    assert claims["auth_time"] == int(ar.auth_time.timestamp())


def test_a_synced_passkey_claims_a_software_key(client, make_client, api, synced):
    app, secret, ar = start(client, make_client)
    assert tap_and_sign(api, ar, synced).status_code == 200
    claims = id_token_claims(client, app, secret, ar)
    assert (claims["acr"], claims["amr"]) == ("phr", ["swk", "user", "mfa"])
    assert ApprovalEvidence.objects.get(auth_request=ar).level == "passkey"


def test_the_options_are_for_the_users_passkeys_and_bound_to_the_transaction(client, make_client, api, phone):
    _, _, ar = start(client, make_client, binding_message="W4SCT")
    options = options_for(api, ar, scopes=["openid"])
    public_key = options["publicKey"]
    assert [entry["id"] for entry in public_key["allowCredentials"]] == list(phone.credentials)
    assert public_key["userVerification"] == "required" and public_key["rpId"] == "testserver"
    challenge = from_b64url(public_key["challenge"])
    assert len(challenge) == 48
    digest = passkeys.transaction_digest(AuthenticationRequest.objects.get(pk=ar.pk), scopes=["openid"])
    assert options["transaction_digest"] == digest.hex() == challenge[16:].hex()
    # Two options calls for the same transaction differ: a fresh nonce each time.
    assert options_for(api, ar, scopes=["openid"])["publicKey"]["challenge"] != public_key["challenge"]


def test_a_passkey_approves_exactly_the_scopes_its_challenge_was_made_for(client, make_client, api, phone):
    _, _, ar = start(client, make_client)
    credential = phone.get(options_for(api, ar, scopes=["openid"]))
    mismatch = approve(api, ar, scopes=["openid", "email"], authentication=with_passkey(credential))
    refused(mismatch, 400, "invalid_authentication")
    assert pending(ar)
    assert tap_and_sign(api, ar, phone, scopes=["openid"]).status_code == 200
    ar.refresh_from_db()
    assert ar.granted_scope == "openid"


def test_the_options_and_the_approval_read_the_same_body_the_same_way(client, make_client, api, phone):
    """The challenge is made from the options body as the consent API reads it, and checked
    against the approve body read the same way: what the device sends twice matches itself."""
    _, _, ar = start(client, make_client)
    response = tap_and_sign(api, ar, phone, scopes=[" openid ", "email "])
    assert response.status_code == 200, response.content
    ar.refresh_from_db()
    assert ar.granted_scope == "openid email"


def test_a_signed_in_browser_approves_with_a_passkey_too(client, make_client, alice, phone):
    """The device page's way: a session, with its CSRF token."""
    page = browser(alice)
    _, _, ar = start(client, make_client, acr_values="phr")
    options = post_with_csrf(page, f"{API}{ar.auth_req_id}/authentication-options/", {})
    assert options.status_code == 200, options.content
    body = {"authentication": with_passkey(phone.get(options.json()))}
    assert (
        page.post(f"{API}{ar.auth_req_id}/approve/", json.dumps(body), "application/json").status_code == 403
    )
    assert pending(ar)  # no CSRF token: refused before anything is verified
    response = post_with_csrf(page, f"{API}{ar.auth_req_id}/approve/", body)
    assert response.status_code == 200, response.content
    ar.refresh_from_db()
    assert (ar.acr, ar.amr) == ("phr", "hwk user mfa")


def test_anonymous_callers_get_no_options(client, make_client, alice, phone):
    _, _, ar = start(client, make_client)
    assert Client().post(f"{API}{ar.auth_req_id}/authentication-options/").status_code in (401, 403)
    assert Client(**consent_bearer(alice, scope="openid")).post(
        f"{API}{ar.auth_req_id}/authentication-options/"
    ).status_code in (401, 403)


def test_a_user_without_a_passkey_gets_no_options(client, make_client, api):
    _, _, ar = start(client, make_client)
    refused(post(api, f"{API}{ar.auth_req_id}/authentication-options/", {}), 400, "invalid_authentication")


def test_options_are_404_for_someone_elses_request_and_409_once_decided(client, make_client, api, phone, bob):
    _, _, ar = start(client, make_client)
    url = f"{API}{ar.auth_req_id}/authentication-options/"
    enrolled(device_app(bob), SoftAuthenticator())
    assert post(device_app(bob), url, {}).status_code == 404
    services.deny(ar, user=ar.user)
    assert post(api, url, {}).status_code == 409


def test_options_for_a_payment_need_the_hash_of_what_was_displayed(alice, make_client, api, phone):
    ar = payment_request(make_client, alice)
    response = post(api, f"{API}{ar.auth_req_id}/authentication-options/", {})
    refused(response, 400, "invalid_request")


# --- step-up: what the request needs ----------------------------------------------------------------------


def acr_values(client, make_client):
    return start(client, make_client, acr_values="phr")


def essential_acr(client, make_client):
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["phr"]}}})
    app, secret, ar = start(client, make_client, claims=claims)
    assert ar.acr_essential
    return app, secret, ar


def client_level(client, make_client):
    return start(client, make_client, registered=make_client("poll", approval_level="passkey"))


STEP_UP_CASES = {
    "acr_values": (acr_values, {}),
    "essential acr": (essential_acr, {}),
    "client approval_level": (client_level, {}),
    "APPROVAL_MINIMUM_LEVEL": (start, {"APPROVAL_MINIMUM_LEVEL": "passkey"}),
}


@pytest.mark.parametrize("case", STEP_UP_CASES)
def test_a_request_that_needs_a_passkey_is_not_approved_by_a_tap_or_a_password(
    client, make_client, api, phone, case
):
    make_request, site = STEP_UP_CASES[case]
    with override_settings(CIBA=site):
        app, secret, ar = make_request(client, make_client)
        assert shown(api, ar)["authentication"] == {
            "required_level": "passkey",
            "required_acr": "phr",
            "methods": ["passkey"],
        }
        step_up = refused(approve(api, ar), 403, "step_up_required")
        assert (step_up["level"], step_up["methods"], step_up["acr"]) == ("passkey", ["passkey"], "phr")
        assert pending(ar)
        refused(approve(api, ar, authentication=with_password(PASSWORD)), 403, "step_up_required")
        assert pending(ar)
        assert tap_and_sign(api, ar, phone).status_code == 200
        claims = id_token_claims(client, app, secret, ar)
    assert claims["acr"] == "phr" and claims["amr"] == ["hwk", "user", "mfa"]


def test_the_fapi_profile_can_require_a_passkey(alice, make_client, api, phone):
    app, _ = make_client("poll")
    ar = services.create_request(
        expires_in=300, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    with override_settings(CIBA={"PROFILE": "fapi-ciba", "FAPI_APPROVAL_MINIMUM_LEVEL": "passkey"}):
        assert shown(api, ar)["authentication"]["required_level"] == "passkey"
        step_up = refused(approve(api, ar), 403, "step_up_required")
        assert (step_up["level"], step_up["methods"]) == ("passkey", ["passkey"])
        assert pending(ar)
        assert tap_and_sign(api, ar, phone).status_code == 200
    ar.refresh_from_db()
    assert (ar.state, ar.acr, ar.amr) == (State.APPROVED, "phr", "hwk user mfa")
    # Outside the profile the same setting asks nothing more than a tap.
    with override_settings(CIBA={"FAPI_APPROVAL_MINIMUM_LEVEL": "passkey"}):
        other = services.create_request(
            expires_in=300, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
        )
        assert approve(api, other).status_code == 200


def test_a_device_bound_requirement_refuses_a_synced_passkey(client, make_client, api, synced):
    _, _, ar = start(
        client, make_client, registered=make_client("poll", approval_level="passkey_device_bound")
    )
    step_up = refused(tap_and_sign(api, ar, synced), 403, "step_up_required")
    assert (step_up["level"], step_up["methods"]) == ("passkey_device_bound", ["passkey"])
    assert pending(ar)


def test_the_request_says_what_approving_it_needs(client, make_client, api):
    _, _, plain = start(client, make_client)
    assert shown(api, plain)["authentication"] == {
        "required_level": "session",
        "required_acr": "",
        "methods": ["session", "password", "passkey"],
    }
    _, _, strong = start(client, make_client, acr_values="phr")
    listed = {item["auth_req_id"]: item for item in api.get(API).json()}
    assert listed[strong.auth_req_id]["authentication"]["required_level"] == "passkey"
    _, _, password = start(client, make_client, registered=make_client("poll", approval_level="password"))
    assert shown(api, password)["authentication"] == {
        "required_level": "password",
        "required_acr": "",
        "methods": ["password", "passkey"],
    }
    with override_settings(CIBA={"PASSWORD_REAUTHENTICATION": False}):
        assert shown(api, password)["authentication"]["methods"] == ["passkey"]


def shown(api: Client, ar: AuthenticationRequest) -> dict[str, Any]:
    response = api.get(f"{API}{ar.auth_req_id}/")
    assert response.status_code == 200, response.content
    return response.json()


# --- the password re-entered ------------------------------------------------------------------------------


def test_the_right_password_approves_at_the_password_level(client, make_client, api):
    app, secret, ar = start(client, make_client, registered=make_client("poll", approval_level="password"))
    refused(approve(api, ar), 403, "step_up_required")
    response = approve(api, ar, authentication=with_password(PASSWORD))
    assert response.status_code == 200, response.content
    ar.refresh_from_db()
    assert ar.amr == "pwd"
    evidence = ApprovalEvidence.objects.get(auth_request=ar)
    assert (evidence.level, evidence.method, evidence.signature) == ("password", "password", "")
    claims = id_token_claims(client, app, secret, ar)
    assert claims["amr"] == ["pwd"] and "acr" not in claims  # the password level claims no acr by default
    assert claims["auth_time"] == int(ar.auth_time.timestamp())


def test_a_wrong_password_is_refused_and_the_request_stays_pending(client, make_client, api):
    _, _, ar = start(client, make_client)
    refused(approve(api, ar, authentication=with_password("not-alices")), 400, "invalid_authentication")
    assert pending(ar)


def test_after_five_wrong_passwords_even_the_right_one_is_refused(client, make_client, api):
    _, _, ar = start(client, make_client)
    for _ in range(5):
        refused(approve(api, ar, authentication=with_password("guess")), 400, "invalid_authentication")
    body = refused(approve(api, ar, authentication=with_password(PASSWORD)), 400, "invalid_authentication")
    assert "Too many" in body["error_description"]
    assert pending(ar)


def test_the_right_password_resets_the_count_of_wrong_ones_and_counts_are_per_user(
    client, make_client, api, bob
):
    _, _, ar = start(client, make_client, registered=make_client("poll", approval_level="password"))
    for _ in range(4):
        refused(approve(api, ar, authentication=with_password("guess")), 400, "invalid_authentication")
    assert approve(api, ar, authentication=with_password(PASSWORD)).status_code == 200
    _, _, again = start(client, make_client)
    for _ in range(4):
        refused(approve(api, again, authentication=with_password("guess")), 400, "invalid_authentication")
    bobs = services.create_request(
        expires_in=300,
        client=make_client("poll")[0],
        user=bob,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
    )
    for _ in range(6):  # bob's guesses spend none of alice's
        refused(
            approve(device_app(bob), bobs, authentication=with_password("guess")),
            400,
            "invalid_authentication",
        )
    assert approve(api, again, authentication=with_password(PASSWORD)).status_code == 200


def test_a_site_can_refuse_passwords_at_approval(client, make_client, api):
    _, _, ar = start(client, make_client)
    with override_settings(CIBA={"PASSWORD_REAUTHENTICATION": False}):
        refused(approve(api, ar, authentication=with_password(PASSWORD)), 400, "invalid_authentication")
    assert pending(ar)


# --- what does not verify ---------------------------------------------------------------------------------


BAD_ASSERTIONS = {
    "missing user verification": ({"user_verified": False}, {}, "user verification"),
    "missing user presence": ({"user_present": False}, {}, "presence"),
    "another origin": ({"origin": "https://evil.example"}, {}, "origin"),
    "origin not among WEBAUTHN_ORIGINS": ({}, {"WEBAUTHN_ORIGINS": ["https://phone.example.com"]}, "origin"),
    "another relying party": ({"rp_id": "evil.example"}, {}, "relying party"),
    "a forged signature": ({"corrupt_signature": True}, {}, "signature"),
    "a registration instead of an assertion": ({"client_data_type": "webauthn.create"}, {}, ""),
    "an unknown challenge": ({"challenge": b"\x01" * 48}, {}, "challenge"),
}


@pytest.mark.parametrize("case", BAD_ASSERTIONS)
def test_an_assertion_that_does_not_verify_is_refused_and_nothing_is_decided(
    client, make_client, api, phone, case
):
    knobs, site, phrase = BAD_ASSERTIONS[case]
    _, _, ar = start(client, make_client)
    options = options_for(api, ar)
    credential = phone.get(options, **knobs)
    with override_settings(CIBA=site):
        body = refused(
            approve(api, ar, authentication=with_passkey(credential)), 400, "invalid_authentication"
        )
    assert phrase.lower() in body["error_description"].lower()
    assert pending(ar)


def test_an_assertion_for_another_request_is_refused(client, make_client, api, phone):
    _, _, ar = start(client, make_client)
    _, _, other = start(client, make_client)
    options_for(api, ar)  # the device did ask for this request's challenge too
    credential = phone.get(options_for(api, other))
    refused(approve(api, ar, authentication=with_passkey(credential)), 400, "invalid_authentication")
    assert pending(ar) and pending(other)


def test_a_used_assertion_cannot_be_replayed(client, make_client, api, phone):
    _, _, first = start(client, make_client)
    credential = phone.get(options_for(api, first))
    assert approve(api, first, authentication=with_passkey(credential)).status_code == 200
    _, _, second = start(client, make_client)
    options_for(api, second)
    body = refused(
        approve(api, second, authentication=with_passkey(credential)), 400, "invalid_authentication"
    )
    assert "already used" in body["error_description"]
    assert pending(second)


def test_an_assertion_is_used_once_even_when_the_approval_then_needs_more(client, make_client, api, synced):
    """A verified assertion whose level is not enough (step-up) is spent all the same."""
    _, _, ar = start(
        client, make_client, registered=make_client("poll", approval_level="passkey_device_bound")
    )
    credential = synced.get(options_for(api, ar))
    refused(approve(api, ar, authentication=with_passkey(credential)), 403, "step_up_required")
    refused(approve(api, ar, authentication=with_passkey(credential)), 400, "invalid_authentication")
    assert pending(ar)


def test_a_sign_count_that_goes_backwards_disables_the_passkey(client, make_client, api, phone):
    reports = []

    def receiver(sender, passkey, user, sign_count, stored_sign_count, **kwargs):
        reports.append((passkey.pk, sign_count, stored_sign_count))

    _, _, first = start(client, make_client)
    credential = phone.get(options_for(api, first), sign_count=10)
    assert approve(api, first, authentication=with_passkey(credential)).status_code == 200
    assert Passkey.objects.get().sign_count == 10
    _, _, second = start(client, make_client)
    later = options_for(api, second)  # asked for before the clone was caught
    signals.passkey_clone_suspected.connect(receiver)
    try:
        cloned = phone.get(options_for(api, second), sign_count=5)
        body = refused(
            approve(api, second, authentication=with_passkey(cloned)), 400, "invalid_authentication"
        )
    finally:
        signals.passkey_clone_suspected.disconnect(receiver)
    assert "cloned" in body["error_description"]
    assert pending(second)
    passkey = Passkey.objects.get()
    assert passkey.cloned_at is not None and reports == [(passkey.pk, 5, 10)]
    # From then on it approves nothing, even with a count that goes up again, and is no longer
    # offered.
    credential = phone.get(later, sign_count=20)
    body = refused(
        approve(api, second, authentication=with_passkey(credential)), 400, "invalid_authentication"
    )
    assert "disabled" in body["error_description"]
    refused(
        post(api, f"{API}{second.auth_req_id}/authentication-options/", {}), 400, "invalid_authentication"
    )
    assert pending(second)
    assert api.get("/o/ciba/passkeys/").json()[0]["disabled"] is True


def test_someone_elses_passkey_does_not_approve_for_alice(client, make_client, api, phone, bob):
    bobs_phone = SoftAuthenticator()
    enrolled(device_app(bob), bobs_phone)
    _, _, ar = start(client, make_client)
    (bobs_credential,) = bobs_phone.credentials
    credential = bobs_phone.get(options_for(api, ar), credential_id=bobs_credential)
    refused(approve(api, ar, authentication=with_passkey(credential)), 400, "invalid_authentication")
    assert pending(ar)


@pytest.mark.parametrize(
    "authentication",
    [
        "passkey",
        ["passkey"],
        {},
        {"method": "sms", "code": "123456"},
        {"method": "passkey"},
        {"method": "passkey", "credential": "not an object"},
        {"method": "passkey", "credential": None},
        {"method": "password"},
        {"method": "password", "password": 12345},
        {"method": "password", "password": "x" * 4097},
        {"method": "password", "password": PASSWORD, "credential": {}},
        {"method": ["password"], "password": PASSWORD},
    ],
)
def test_a_malformed_authentication_object_is_invalid_request(client, make_client, api, authentication):
    _, _, ar = start(client, make_client)
    refused(approve(api, ar, authentication=authentication), 400, "invalid_request")
    assert pending(ar)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=20,
)
CREDENTIAL_LIKE = st.fixed_dictionaries(
    {
        "id": st.text(max_size=20),
        "rawId": st.text(max_size=20),
        "type": st.sampled_from(["public-key", "", "x"]),
        "response": st.dictionaries(
            st.sampled_from(["clientDataJSON", "authenticatorData", "signature", "userHandle"]),
            JSON | st.text(alphabet="ABCabc-_0123", max_size=60),
        ),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    authentication=st.one_of(
        JSON,
        st.builds(with_passkey, CREDENTIAL_LIKE),
        st.builds(with_passkey, JSON),
        st.builds(with_password, st.text(max_size=30)),
    )
)
@example(authentication=None)
@example(authentication=with_passkey({"id": "x", "response": {"clientDataJSON": "e30"}}))
def test_any_authentication_object_is_refused_cleanly_and_decides_nothing(
    alice, make_client, no_user_limits, authentication
):
    """For a request that needs a passkey, whatever the device sends instead is a 400 or a 403
    in the protocol's shape, never a 500, and the request stays pending."""
    app, _ = make_client("poll", approval_level="passkey")
    ar = services.create_request(
        expires_in=300, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    try:
        response = approve(Client(**consent_bearer(alice)), ar, authentication=authentication)
        assert response.status_code in (400, 403), response.content
        assert response.json()["error"] in {"invalid_request", "invalid_authentication", "step_up_required"}
        assert pending(ar)
    finally:
        ar.delete()  # keeps the table small (the limits are off: a shared cache counts the rate in Redis)


# --- a payment ---------------------------------------------------------------------------------------------


def payment_request(make_client: Any, user: Any) -> AuthenticationRequest:
    app, _ = make_client("poll", name="Corner Shop")
    return services.create_request(
        expires_in=300,
        client=app,
        user=user,
        hint_kind="login_hint",
        scope="openid payments",
        binding_message="K7QP",
        interval=5,
        authorization_details=validated(PAYMENT),
    )


def test_a_payment_approved_with_a_passkey_binds_what_was_displayed_and_approved(
    alice, make_client, api, phone
):
    ar = payment_request(make_client, alice)
    digest = shown(api, ar)["authorization_details_digest"]
    body = {"displayed_details_hash": digest, "authorization_details": [with_amount("100.00")]}
    options = options_for(api, ar, **body)
    linked = passkeys.transaction_digest(
        ar, authorization_details=body["authorization_details"], displayed_details_hash=digest
    )
    assert options["transaction_digest"] == linked.hex()

    # An assertion over the payment of 100.00 does not approve it in full (123.50).
    over_full = {**body, "authorization_details": None}
    credential = phone.get(options)
    refused(
        approve(api, ar, authentication=with_passkey(credential), **over_full), 400, "invalid_authentication"
    )
    assert pending(ar)

    options = options_for(api, ar, **body)
    response = approve(api, ar, authentication=with_passkey(phone.get(options)), **body)
    assert response.status_code == 200, response.content
    ar.refresh_from_db()
    assert ar.displayed_details_hash == digest
    (approved,) = ar.approved_authorization_details
    assert approved["instructedAmount"] == {"currency": "EUR", "amount": "100.00"}
    evidence = ApprovalEvidence.objects.get(auth_request=ar)
    assert evidence.transaction_digest == linked.hex()
    assert from_b64url(evidence.challenge)[16:] == linked


# --- a tap, and what discovery promises ---------------------------------------------------------------------


def test_a_tap_claims_when_the_session_signed_in_not_the_moment_of_the_tap(client, make_client, alice):
    signed_in = timezone.now() - timedelta(hours=3)
    browser = Client()
    with mock.patch("django.utils.timezone.now", return_value=signed_in):
        assert browser.login(username="alice", password=PASSWORD)
    alice.refresh_from_db()
    alice.last_login = timezone.now() - timedelta(days=3)  # another sign-in, elsewhere
    alice.save(update_fields=["last_login"])
    app, secret, ar = start(client, make_client)
    response = approve(browser, ar)
    assert response.status_code == 200, response.content
    ar.refresh_from_db()
    assert ar.auth_time == signed_in.replace(microsecond=0)
    assert not ApprovalEvidence.objects.filter(auth_request=ar).exists()  # a tap proves nothing new
    claims = id_token_claims(client, app, secret, ar)
    assert claims["auth_time"] == int(signed_in.timestamp())
    assert "acr" not in claims and "amr" not in claims  # a tap claims no acr by default, and no method


def test_discovery_lists_the_acr_a_passkey_achieves_by_default(client, db):
    assert client.get("/o/.well-known/openid-configuration").json()["acr_values_supported"] == ["phr"]
