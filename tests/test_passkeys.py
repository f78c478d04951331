"""``ciba.passkeys`` through its public functions: the Relying Party, enrollment, approval
with dynamic linking, sign-in.

A software authenticator (tests/webauthn_authenticator.py) stands in for the browser and the
phone; each test changes one thing it sends (origin, RP ID, flags, sign count, challenge,
signature) and checks the refusal the user reads. The consent API and the device page are
tested over HTTP elsewhere; the real browser with a virtual authenticator in tests/browser.

The helpers here (``http_request``, ``make_request``, ``enroll``, ``refused``, ``payment``)
are shared by the other tests/test_passkeys_*.py files.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from datetime import timedelta
from typing import Any

import pytest
import rfc8785
from django.contrib.auth import get_user_model
from django.core.exceptions import DisallowedHost
from django.test import RequestFactory
from django.utils import timezone
from webauthn.helpers import (
    decode_credential_public_key,
    decoded_public_key_to_cryptography,
    verify_signature,
)

from ciba import assurance, passkeys, services, signals
from ciba.errors import InvalidAuthentication, describe
from ciba.models import ApprovalEvidence, Passkey, WebAuthnChallenge
from ciba.passkeys import challenges
from tests.webauthn_authenticator import SoftAuthenticator, b64url, from_b64url

User = get_user_model()

#: RFC 9396's payment, as a kiosk sends it (tests/test_authorization_details.py).
PAYMENT = {
    "type": "payment_initiation",
    "locations": ["https://example.com/payments"],
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02100100109307118603"},
    "remittanceInformationUnstructured": "Ref Number Merchant",
}


# --- shared helpers ------------------------------------------------------------------------------


def http_request(host: str = "testserver", *, secure: bool = False) -> Any:
    """A Django request to the device page's host (the RP ID and origin default to it)."""
    return RequestFactory().post("/ciba/device/", HTTP_HOST=host, secure=secure)


def make_request(app: Any, user: Any, **fields: Any) -> Any:
    """A pending CIBA request of ``app`` for ``user``."""
    values: dict[str, Any] = {
        "client": app,
        "user": user,
        "hint_kind": "login_hint",
        "scope": "openid profile email",
        "binding_message": "W4SCT",
        "interval": 5,
    }
    values.update(fields)
    return services.create_request(expires_in=300, **values)


def enroll(user: Any, authenticator: SoftAuthenticator | None = None, **knobs: Any) -> Passkey:
    """Enroll a new passkey of ``authenticator`` for ``user``; returns the ``Passkey``."""
    authenticator = authenticator or SoftAuthenticator()
    options = passkeys.registration_options(http_request(), user)
    return passkeys.enroll(http_request(), user, authenticator.create(options, **knobs))


def refused(call: Any, *args: Any, **kwargs: Any) -> str:
    """The description of the ``InvalidAuthentication`` ``call`` raises (checked to be within
    RFC 6749's error_description characters as written)."""
    with pytest.raises(InvalidAuthentication) as caught:
        call(*args, **kwargs)
    description = caught.value.description
    assert caught.value.error == "invalid_authentication"
    assert describe(description) == description, description
    return description


def payment(amount: str = "123.50") -> dict[str, Any]:
    detail = copy.deepcopy(PAYMENT)
    detail["instructedAmount"]["amount"] = amount
    return detail


def approve_with(
    authenticator: SoftAuthenticator, ar: Any, user: Any, knobs: dict[str, Any] | None = None, **fields: Any
) -> Any:
    """Options for ``fields`` (the approve body's), an assertion for them (with the
    authenticator's ``knobs``), verified."""
    options = passkeys.approval_options(http_request(), ar, user, **fields)
    assertion = authenticator.get(options, **(knobs or {}))
    return passkeys.verify_approval(http_request(), ar, user, assertion, **fields)


@pytest.fixture
def bob(db: Any) -> Any:
    return User.objects.create_user("bob", "bob@example.com", "bob-password")


@pytest.fixture
def app(make_client: Any) -> Any:
    return make_client()[0]


@pytest.fixture
def phone() -> SoftAuthenticator:
    return SoftAuthenticator()


@pytest.fixture
def ar(app: Any, alice: Any) -> Any:
    return make_request(app, alice)


@pytest.fixture
def caught_signals() -> Any:
    """Every passkey signal sent during the test, as (name, kwargs)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    receivers = []
    for name in ("passkey_enrolled", "passkey_removed", "passkey_clone_suspected"):

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            seen.append((_name, kwargs))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((name, receiver))
    yield seen
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


# --- the Relying Party -------------------------------------------------------------------------


def test_the_relying_party_is_the_request_host_without_its_port_and_its_origin_with_it():
    rp = passkeys.relying_party(http_request("localhost:8000"))
    assert rp.id == "localhost"
    assert rp.origins == ["http://localhost:8000"]
    assert rp.name
    assert passkeys.relying_party(http_request(secure=True)).origins == ["https://testserver"]


def test_a_host_django_does_not_serve_never_becomes_an_rp_id():
    with pytest.raises(DisallowedHost):  # answered 400 by Django
        passkeys.relying_party(http_request("evil.example"))


def test_the_relying_party_comes_from_the_settings_when_set(settings):
    settings.CIBA = {
        **settings.CIBA,
        "WEBAUTHN_RP_ID": "example.com",
        "WEBAUTHN_ORIGINS": ["https://device.example.com", "https://example.com"],
        "WEBAUTHN_RP_NAME": "Example Bank",
    }
    rp = passkeys.relying_party(http_request())
    assert (rp.id, rp.name, rp.origins) == (
        "example.com",
        "Example Bank",
        ["https://device.example.com", "https://example.com"],
    )


# --- enrollment --------------------------------------------------------------------------------


def test_registration_options_ask_for_a_discoverable_user_verified_passkey_without_attestation(alice):
    options = passkeys.registration_options(http_request(), alice)["publicKey"]
    assert options["rp"]["id"] == "testserver"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert options["timeout"] == 300_000
    assert options["excludeCredentials"] == []
    assert options["user"]["name"] == "alice"
    row = WebAuthnChallenge.objects.get(challenge=options["challenge"])
    assert (row.purpose, row.user, row.rp_id) == ("register", alice, "testserver")


def test_the_user_handle_is_opaque_random_and_shared_by_one_users_passkeys(alice, bob):
    first = passkeys.registration_options(http_request(), alice)["publicKey"]["user"]["id"]
    handle = from_b64url(first)
    assert len(handle) >= 16
    for personal in ("alice", "alice@example.com"):
        assert personal.encode() not in handle
        assert first != b64url(personal.encode())
    # The primary key is a byte or two: any 32 random bytes may contain it, so the handle is
    # checked not to be it (in any of its usual encodings), rather than not to contain it.
    for encoded in (str(alice.pk).encode(), alice.pk.to_bytes(8, "big"), alice.pk.to_bytes(4, "big")):
        assert handle != encoded
        assert first != b64url(encoded)
    assert passkeys.registration_options(http_request(), bob)["publicKey"]["user"]["id"] != first
    passkey = enroll(alice)
    again = passkeys.registration_options(http_request(), alice)["publicKey"]["user"]["id"]
    assert passkey.user_handle == again
    assert enroll(alice).user_handle == passkey.user_handle


def test_enrollment_stores_the_passkey_and_says_so(alice, phone, caught_signals):
    options = passkeys.registration_options(http_request(), alice)
    created = phone.create(options, transports=["internal", "hybrid"])
    passkey = passkeys.enroll(http_request(), alice, created, name="  My phone  ")
    assert passkey.user == alice
    assert passkey.name == "My phone"
    assert passkey.credential_id == created["id"]
    assert passkey.user_handle == options["publicKey"]["user"]["id"]
    assert passkey.transports == ["internal", "hybrid"]
    assert passkey.aaguid == "00000000-0000-0000-0000-000000000000"
    assert passkey.device_bound and not passkey.backed_up
    assert passkey.sign_count == 0 and passkey.cloned_at is None
    assert caught_signals == [
        ("passkey_enrolled", {"signal": signals.passkey_enrolled, "passkey": passkey, "user": alice})
    ]
    assert not WebAuthnChallenge.objects.exists()


def test_a_synced_passkey_is_stored_as_backup_eligible(alice):
    passkey = enroll(alice, SoftAuthenticator(backup_eligible=True, backed_up=True))
    assert passkey.backup_eligible and passkey.backed_up and not passkey.device_bound


def test_enrollment_without_user_verification_is_refused(alice, phone):
    options = passkeys.registration_options(http_request(), alice)
    description = refused(passkeys.enroll, http_request(), alice, phone.create(options, user_verified=False))
    assert "user verification is required" in description
    assert not Passkey.objects.exists()


def test_enrollment_without_user_presence_is_refused(alice, phone):
    options = passkeys.registration_options(http_request(), alice)
    assert "user presence" in refused(
        passkeys.enroll, http_request(), alice, phone.create(options, user_present=False)
    )


def test_a_passkey_enrolled_already_is_refused_and_excluded_from_the_options(alice, bob, phone):
    passkey = enroll(alice, phone)
    options = passkeys.registration_options(http_request(), alice)
    assert options["publicKey"]["excludeCredentials"] == [
        {"id": passkey.credential_id, "type": "public-key", "transports": ["internal"]}
    ]
    again = phone.create(options, credential_id=passkey.credential_id)
    assert refused(passkeys.enroll, http_request(), alice, again) == "This passkey is already enrolled."
    for_bob = phone.create(
        passkeys.registration_options(http_request(), bob), credential_id=passkey.credential_id
    )
    assert refused(passkeys.enroll, http_request(), bob, for_bob) == "This passkey is already enrolled."
    assert Passkey.objects.count() == 1


def test_passkeys_per_user_is_enforced_at_the_options_and_at_enrollment(alice, settings):
    settings.CIBA = {**settings.CIBA, "PASSKEYS_PER_USER": 2}
    enroll(alice)
    pending = passkeys.registration_options(http_request(), alice)
    enroll(alice)
    assert "the most allowed" in refused(passkeys.registration_options, http_request(), alice)
    created = SoftAuthenticator().create(pending)
    assert "the most allowed" in refused(passkeys.enroll, http_request(), alice, created)
    assert Passkey.objects.filter(user=alice).count() == 2


def test_enrollment_from_another_origin_or_for_another_rp_id_is_refused(alice, phone):
    options = passkeys.registration_options(http_request(), alice)
    other_origin = phone.create(options, origin="https://evil.example")
    assert "origin 'https://evil.example', which is not allowed" in refused(
        passkeys.enroll, http_request(), alice, other_origin
    )
    options = passkeys.registration_options(http_request(), alice)
    other_rp = phone.create(options, rp_id="evil.example")
    assert "RP ID hash" in refused(passkeys.enroll, http_request(), alice, other_rp)


def test_an_enrollment_challenge_is_used_once(alice, phone):
    created = phone.create(passkeys.registration_options(http_request(), alice))
    passkeys.enroll(http_request(), alice, created)
    assert "already used" in refused(passkeys.enroll, http_request(), alice, created)


def test_an_enrollment_for_another_account_or_after_expiry_is_refused(alice, bob, phone):
    for_bob = phone.create(passkeys.registration_options(http_request(), bob))
    assert "another account" in refused(passkeys.enroll, http_request(), alice, for_bob)
    late = phone.create(passkeys.registration_options(http_request(), alice))
    WebAuthnChallenge.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert "expired" in refused(passkeys.enroll, http_request(), alice, late)


def test_an_approval_challenge_does_not_enroll(alice, ar, phone):
    enroll(alice, phone)
    options = passkeys.approval_options(http_request(), ar, alice)
    created = phone.create(
        {"publicKey": {**options["publicKey"], "rp": {"id": "testserver"}, "user": {"id": "AA"}}}
    )
    assert "not made to enroll" in refused(passkeys.enroll, http_request(), alice, created)


def test_remove_removes_only_the_users_own_passkey(alice, bob, caught_signals):
    mine, theirs = enroll(alice), enroll(bob)
    caught_signals.clear()
    for unknown in (theirs.pk, str(theirs.pk), "not-a-uuid", None, 42):
        with pytest.raises(InvalidAuthentication) as caught:
            passkeys.remove(alice, unknown)
        assert caught.value.status_code == 404
    assert caught_signals == []
    passkeys.remove(alice, str(mine.pk))
    assert list(Passkey.objects.all()) == [theirs]
    assert [(name, kwargs["passkey"].pk, kwargs["user"]) for name, kwargs in caught_signals] == [
        ("passkey_removed", mine.pk, alice)
    ]


# --- dynamic linking ---------------------------------------------------------------------------


def test_the_transaction_digest_is_the_sha256_of_the_canonical_transaction(ar):
    expected = {
        "auth_req_id": ar.auth_req_id,
        "binding_message": "W4SCT",
        "scope": "email openid profile",
        "authorization_details": None,
        "displayed_details_hash": None,
    }
    digest = passkeys.transaction_digest(ar)
    assert digest == hashlib.sha256(rfc8785.dumps(expected)).digest()
    assert len(digest) == 32
    # The scopes as services.approve grants them: order and repeats do not matter, openid stays.
    assert (
        passkeys.transaction_digest(ar, scopes=["profile", "profile"])
        == hashlib.sha256(rfc8785.dumps({**expected, "scope": "openid profile"})).digest()
    )
    assert passkeys.transaction_digest(ar, scopes=["email", "openid", "profile"]) == digest


def test_the_transaction_digest_changes_with_everything_approved(ar):
    digests = {
        passkeys.transaction_digest(ar),
        passkeys.transaction_digest(ar, scopes=["openid"]),
        passkeys.transaction_digest(ar, authorization_details=[payment()]),
        passkeys.transaction_digest(ar, authorization_details=[payment("100.00")]),
        passkeys.transaction_digest(ar, displayed_details_hash="a" * 64),
    }
    assert len(digests) == 5
    ar.binding_message = ""
    assert passkeys.transaction(ar)["binding_message"] is None
    assert passkeys.transaction_digest(ar) not in digests


def test_a_transaction_of_the_wrong_shape_is_refused(ar):
    assert "scopes" in refused(passkeys.transaction_digest, ar, scopes="openid profile")
    assert "scopes" in refused(passkeys.transaction_digest, ar, scopes=[1])
    assert "displayed_details_hash" in refused(passkeys.transaction_digest, ar, displayed_details_hash=5)
    assert "canonicalized" in refused(passkeys.transaction_digest, ar, authorization_details=[{"n": 2**60}])


# --- approval options --------------------------------------------------------------------------


def test_approval_options_need_a_usable_passkey(alice, ar):
    assert "no passkey" in refused(passkeys.approval_options, http_request(), ar, alice)


def test_approval_options_list_the_users_usable_passkeys_and_bind_the_transaction(alice, bob, ar, settings):
    settings.CIBA = {**settings.CIBA, "WEBAUTHN_CHALLENGE_SECONDS": 120}
    first = enroll(alice, transports=["usb", "nfc", "carrier-pigeon"])
    second = enroll(alice)
    cloned = enroll(alice)
    Passkey.objects.filter(pk=cloned.pk).update(cloned_at=timezone.now())
    enroll(bob)
    options = passkeys.approval_options(http_request(), ar, alice, scopes=["openid"])
    public_key = options["publicKey"]
    assert public_key["allowCredentials"] == [
        {"id": first.credential_id, "type": "public-key", "transports": ["usb", "nfc"]},
        {"id": second.credential_id, "type": "public-key", "transports": ["internal"]},
    ]
    assert public_key["userVerification"] == "required"
    assert public_key["rpId"] == "testserver"
    assert public_key["timeout"] == 120_000
    digest = passkeys.transaction_digest(ar, scopes=["openid"])
    assert options["transaction_digest"] == digest.hex()
    challenge = from_b64url(public_key["challenge"])
    assert len(public_key["challenge"]) == 64 and challenge[16:] == digest
    row = WebAuthnChallenge.objects.get(challenge=public_key["challenge"])
    assert (row.purpose, row.user, row.auth_request, row.transaction_digest) == (
        "approve",
        alice,
        ar,
        digest.hex(),
    )
    again = passkeys.approval_options(http_request(), ar, alice, scopes=["openid"])
    assert again["publicKey"]["challenge"] != public_key["challenge"]
    assert again["transaction_digest"] == options["transaction_digest"]


def test_approval_options_of_a_user_whose_only_passkey_is_suspected_of_cloning_are_refused(alice, ar):
    Passkey.objects.filter(pk=enroll(alice).pk).update(cloned_at=timezone.now())
    assert "no passkey" in refused(passkeys.approval_options, http_request(), ar, alice)


# --- approval ----------------------------------------------------------------------------------


def test_an_approval_with_a_device_bound_passkey(alice, ar, phone):
    passkey = enroll(alice, phone)
    before = timezone.now()
    authentication = approve_with(phone, ar, alice)
    assert authentication.level == assurance.PASSKEY_DEVICE_BOUND
    assert authentication.amr == ("hwk", "user", "mfa")
    assert before <= authentication.auth_time <= timezone.now()
    evidence = authentication.evidence
    assert evidence["level"] == assurance.PASSKEY_DEVICE_BOUND
    assert evidence["method"] == "passkey"
    assert evidence["passkey"] == passkey
    assert evidence["credential_id"] == passkey.credential_id
    assert evidence["transaction_digest"] == passkeys.transaction_digest(ar).hex()
    assert evidence["user_handle"] == passkey.user_handle
    assert evidence["origin"] == "http://testserver" and evidence["rp_id"] == "testserver"
    assert evidence["sign_count"] == 1
    assert (evidence["user_present"], evidence["user_verified"]) == (True, True)
    assert (evidence["backup_eligible"], evidence["backed_up"]) == (False, False)
    assert evidence["verified_at"] == authentication.auth_time
    assert set(evidence) == {f.name for f in ApprovalEvidence._meta.concrete_fields} - {"auth_request"}
    passkey.refresh_from_db()
    assert passkey.sign_count == 1 and passkey.last_used_at == authentication.auth_time


def test_an_approval_with_a_synced_passkey(alice, ar):
    phone = SoftAuthenticator(backup_eligible=True, backed_up=False)
    passkey = enroll(alice, phone)
    phone.credentials[passkey.credential_id].increment = 0  # synced passkeys report 0
    authentication = approve_with(phone, ar, alice, {"backed_up": True})
    assert authentication.level == assurance.PASSKEY
    assert authentication.amr == ("swk", "user", "mfa")
    passkey.refresh_from_db()
    assert passkey.backed_up and passkey.sign_count == 0
    other = make_request(ar.client, alice)
    assert approve_with(phone, other, alice).level == assurance.PASSKEY  # 0 after 0 is no clone


def test_the_evidence_lets_anyone_with_the_public_key_reverify_the_transaction(alice, ar, phone):
    passkey = enroll(alice, phone)
    evidence = approve_with(phone, ar, alice, scopes=["openid", "email"]).evidence
    client_data = json.loads(evidence["client_data_json"])
    assert client_data["challenge"] == evidence["challenge"]
    assert from_b64url(evidence["challenge"])[16:].hex() == evidence["transaction_digest"]
    assert evidence["transaction_digest"] == passkeys.transaction_digest(ar, scopes=["email", "openid"]).hex()
    signed = (
        from_b64url(evidence["authenticator_data"])
        + hashlib.sha256(evidence["client_data_json"].encode()).digest()
    )
    key = decode_credential_public_key(bytes(passkey.public_key))
    verify_signature(
        public_key=decoded_public_key_to_cryptography(key),
        signature_alg=key.alg,
        signature=from_b64url(evidence["signature"]),
        data=signed,
    )


def test_the_evidence_is_stored_with_the_decision(alice, ar, phone):
    enroll(alice, phone)
    authentication = approve_with(phone, ar, alice)
    services.approve(
        ar,
        user=alice,
        amr=authentication.amr,
        auth_time=authentication.auth_time,
        evidence=authentication.evidence,
    )
    stored = ApprovalEvidence.objects.get(auth_request=ar)
    assert stored.level == assurance.PASSKEY_DEVICE_BOUND and stored.user_verified
    ar.refresh_from_db()
    assert ar.amr == "hwk user mfa" and ar.auth_time == authentication.auth_time


def test_an_assertion_for_another_request_is_refused(alice, app, ar, phone):
    enroll(alice, phone)
    other = make_request(app, alice)
    assertion = phone.get(passkeys.approval_options(http_request(), other, alice))
    description = refused(passkeys.verify_approval, http_request(), ar, alice, assertion)
    assert description.startswith("This passkey response is for another request")


def test_no_one_gets_options_for_or_approves_someone_elses_request(alice, bob, app, ar, phone):
    enroll(alice, phone)
    enroll(bob)
    bobs = make_request(app, bob)
    assert "another account" in refused(passkeys.approval_options, http_request(), bobs, alice)
    assertion = phone.get(passkeys.approval_options(http_request(), ar, alice))
    assert "another request" in refused(passkeys.verify_approval, http_request(), bobs, bob, assertion)


def test_a_replayed_assertion_is_refused(alice, ar, phone):
    enroll(alice, phone)
    assertion = phone.get(passkeys.approval_options(http_request(), ar, alice))
    passkeys.verify_approval(http_request(), ar, alice, assertion)
    assert "already used" in refused(passkeys.verify_approval, http_request(), ar, alice, assertion)


def test_an_assertion_over_a_challenge_never_issued_is_refused(alice, ar, phone):
    enroll(alice, phone)
    options = passkeys.approval_options(http_request(), ar, alice)
    forged = b64url(b"\0" * 16 + passkeys.transaction_digest(ar))
    assertion = phone.get(options, challenge=forged)
    assert "already used" in refused(passkeys.verify_approval, http_request(), ar, alice, assertion)


def test_an_expired_challenge_is_refused(alice, ar, phone):
    enroll(alice, phone)
    assertion = phone.get(passkeys.approval_options(http_request(), ar, alice))
    WebAuthnChallenge.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert "expired" in refused(passkeys.verify_approval, http_request(), ar, alice, assertion)


def test_an_assertion_for_other_scopes_signed_a_different_transaction(alice, ar, phone):
    enroll(alice, phone)
    assertion = phone.get(passkeys.approval_options(http_request(), ar, alice))
    description = refused(passkeys.verify_approval, http_request(), ar, alice, assertion, scopes=["openid"])
    assert "signed a different transaction" in description


def test_approving_a_lower_amount_with_an_assertion_for_the_full_amount_is_refused(alice, app, phone):
    enroll(alice, phone)
    ar = make_request(app, alice, authorization_details=[payment()])
    full = phone.get(
        passkeys.approval_options(
            http_request(), ar, alice, authorization_details=[payment()], displayed_details_hash="h1"
        )
    )
    assert "signed a different transaction" in refused(
        passkeys.verify_approval,
        http_request(),
        ar,
        alice,
        full,
        authorization_details=[payment("50.00")],
        displayed_details_hash="h1",
    )
    lower = {"authorization_details": [payment("50.00")], "displayed_details_hash": "h1"}
    assert approve_with(phone, ar, alice, **lower).evidence["transaction_digest"] == (
        passkeys.transaction_digest(ar, **lower).hex()
    )
    shown_other = phone.get(passkeys.approval_options(http_request(), ar, alice, **lower))
    assert "signed a different transaction" in refused(
        passkeys.verify_approval,
        http_request(),
        ar,
        alice,
        shown_other,
        **{**lower, "displayed_details_hash": "h2"},
    )


def test_approving_details_with_a_passkey_needs_the_hash_of_what_was_displayed(alice, app, phone):
    enroll(alice, phone)
    ar = make_request(app, alice, authorization_details=[payment()])
    for call in (passkeys.approval_options, passkeys.transaction_digest):
        args = (http_request(), ar, alice) if call is passkeys.approval_options else (ar,)
        assert "needs displayed_details_hash" in refused(call, *args, authorization_details=[payment()])


def test_an_assertion_from_an_origin_not_allowed_is_refused(alice, ar, phone, settings):
    enroll(alice, phone)
    options = passkeys.approval_options(http_request(), ar, alice)
    assertion = phone.get(options, origin="https://phish.example")
    assert "origin 'https://phish.example', which is not allowed" in refused(
        passkeys.verify_approval, http_request(), ar, alice, assertion
    )
    settings.CIBA = {**settings.CIBA, "WEBAUTHN_ORIGINS": ["http://testserver", "https://app.example"]}
    assertion = phone.get(passkeys.approval_options(http_request(), ar, alice), origin="https://app.example")
    assert passkeys.verify_approval(http_request(), ar, alice, assertion).level


def test_an_assertion_for_another_rp_id_is_refused(alice, ar, phone):
    enroll(alice, phone)
    assertion = phone.get(passkeys.approval_options(http_request(), ar, alice), rp_id="evil.example")
    assert "RP ID hash" in refused(passkeys.verify_approval, http_request(), ar, alice, assertion)


def test_an_assertion_without_user_verification_or_presence_is_refused(alice, ar, phone):
    passkey = enroll(alice, phone)
    no_uv = phone.get(passkeys.approval_options(http_request(), ar, alice), user_verified=False)
    assert "user verification is required" in refused(
        passkeys.verify_approval, http_request(), ar, alice, no_uv
    )
    no_up = phone.get(passkeys.approval_options(http_request(), ar, alice), user_present=False)
    assert "user presence is required" in refused(passkeys.verify_approval, http_request(), ar, alice, no_up)
    passkey.refresh_from_db()
    assert passkey.sign_count == 0 and passkey.last_used_at is None


def test_a_corrupt_signature_is_refused(alice, ar, phone):
    enroll(alice, phone)
    assertion = phone.get(passkeys.approval_options(http_request(), ar, alice), corrupt_signature=True)
    assert refused(passkeys.verify_approval, http_request(), ar, alice, assertion) == (
        "The passkey signature is not valid."
    )


def test_an_unknown_passkey_or_someone_elses_is_refused(alice, bob, ar, phone):
    enroll(alice, phone)
    stranger = SoftAuthenticator()
    stranger.create(passkeys.registration_options(http_request(), alice))  # never enrolled
    options = passkeys.approval_options(http_request(), ar, alice)
    unknown = stranger.get(options, credential_id=next(iter(stranger.credentials)))
    assert "unknown" in refused(passkeys.verify_approval, http_request(), ar, alice, unknown)
    bobs_phone = SoftAuthenticator()
    bobs = enroll(bob, bobs_phone)
    assertion = bobs_phone.get(
        passkeys.approval_options(http_request(), ar, alice), credential_id=bobs.credential_id
    )
    assert "unknown" in refused(passkeys.verify_approval, http_request(), ar, alice, assertion)


def test_a_user_handle_of_another_account_is_refused(alice, ar, phone):
    enroll(alice, phone)
    assertion = phone.get(passkeys.approval_options(http_request(), ar, alice), user_handle=b"someone else")
    assert "another account" in refused(passkeys.verify_approval, http_request(), ar, alice, assertion)


def test_a_sign_in_challenge_does_not_approve(alice, ar, phone):
    enroll(alice, phone)
    assertion = phone.get(passkeys.sign_in_options(http_request()))
    assert "not made to approve" in refused(passkeys.verify_approval, http_request(), ar, alice, assertion)


# --- sign counts and clones --------------------------------------------------------------------


def test_a_sign_count_going_backwards_disables_the_passkey_as_possibly_cloned(
    alice, app, ar, phone, caught_signals, caplog
):
    passkey = enroll(alice, phone)
    spare = enroll(alice)
    approve_with(phone, ar, alice)
    approve_with(phone, make_request(app, alice), alice, {"sign_count": 5})
    caught_signals.clear()
    assertion = phone.get(passkeys.approval_options(http_request(), ar, alice), sign_count=3)
    with caplog.at_level(logging.WARNING, logger="ciba.passkeys"):
        description = refused(passkeys.verify_approval, http_request(), ar, alice, assertion)
    assert "possibly cloned" in description
    passkey.refresh_from_db()
    assert passkey.cloned_at is not None and passkey.sign_count == 5
    assert [
        (name, kw["passkey"].pk, kw["user"], kw["sign_count"], kw["stored_sign_count"])
        for name, kw in caught_signals
    ] == [("passkey_clone_suspected", passkey.pk, alice, 3, 5)]
    [record] = [r for r in caplog.records if r.name == "ciba.passkeys"]
    assert "possibly cloned" in record.getMessage()
    for secret in (
        assertion["response"]["signature"],
        assertion["response"]["clientDataJSON"],
        passkey.credential_id,
    ):
        assert secret not in record.getMessage()
    # From then on: refused whatever its count, and no longer offered.
    options = passkeys.approval_options(http_request(), ar, alice)
    assert [entry["id"] for entry in options["publicKey"]["allowCredentials"]] == [spare.credential_id]
    later = phone.get(options, credential_id=passkey.credential_id, sign_count=100)
    assert "possibly cloned" in refused(passkeys.verify_approval, http_request(), ar, alice, later)
    assert len(caught_signals) == 1


def test_an_equal_non_zero_sign_count_is_a_clone_too(alice, ar, phone):
    passkey = enroll(alice, phone)
    approve_with(phone, ar, alice)
    twin = SoftAuthenticator()
    twin.credentials[passkey.credential_id] = phone.credentials[passkey.credential_id].clone()
    assertion = twin.get(passkeys.approval_options(http_request(), ar, alice), sign_count=1)
    assert "possibly cloned" in refused(passkeys.verify_approval, http_request(), ar, alice, assertion)


def test_a_forged_assertion_with_a_low_count_does_not_disable_the_passkey(alice, ar, phone):
    passkey = enroll(alice, phone)
    approve_with(phone, ar, alice, {"sign_count": 9})
    forged = phone.get(
        passkeys.approval_options(http_request(), ar, alice), sign_count=1, corrupt_signature=True
    )
    assert "signature is not valid" in refused(passkeys.verify_approval, http_request(), ar, alice, forged)
    passkey.refresh_from_db()
    assert passkey.cloned_at is None and passkey.sign_count == 9


def test_a_stale_count_never_overwrites_a_newer_one(alice, ar, phone):
    """Two assertions racing: the one read before the other stored its count (here, 10) loses
    at the conditional UPDATE, and is refused without being taken for a clone."""
    passkey = enroll(alice, phone)
    stale = Passkey.objects.get(pk=passkey.pk)  # read with count 0
    Passkey.objects.filter(pk=passkey.pk).update(sign_count=10)  # the other assertion won
    from ciba.passkeys import ceremony

    now = timezone.now()
    assert "at the same moment" in refused(ceremony._count, stale, 7, backed_up=False, now=now)
    passkey.refresh_from_db()
    assert passkey.sign_count == 10 and passkey.cloned_at is None


# --- sign-in -----------------------------------------------------------------------------------


def test_sign_in_options_are_for_discoverable_credentials(db, settings):
    settings.CIBA = {**settings.CIBA, "WEBAUTHN_CHALLENGE_SECONDS": 60}
    public_key = passkeys.sign_in_options(http_request())["publicKey"]
    assert public_key.get("allowCredentials", []) == []
    assert public_key["userVerification"] == "required"
    assert public_key["rpId"] == "testserver"
    assert public_key["timeout"] == 60_000
    row = WebAuthnChallenge.objects.get(challenge=public_key["challenge"])
    assert (row.purpose, row.user, row.auth_request) == ("sign_in", None, None)


def test_sign_in_with_a_passkey(alice, phone):
    passkey = enroll(alice, phone)
    user, authentication = passkeys.verify_sign_in(
        http_request(), phone.get(passkeys.sign_in_options(http_request()))
    )
    assert user == alice
    assert authentication.level == assurance.PASSKEY_DEVICE_BOUND
    assert authentication.amr == ("hwk", "user", "mfa")
    assert authentication.evidence["passkey"] == passkey
    passkey.refresh_from_db()
    assert passkey.sign_count == 1 and passkey.last_used_at == authentication.auth_time


def test_sign_in_refusals(alice, ar, phone):
    enroll(alice, phone)

    def attempt(**knobs: Any) -> str:
        assertion = phone.get(passkeys.sign_in_options(http_request()), **knobs)
        return refused(passkeys.verify_sign_in, http_request(), assertion)

    assert "another account" in attempt(user_handle=b"x" * 32)
    assert "no user handle" in attempt(user_handle=None)
    assert "user verification is required" in attempt(user_verified=False)
    assert "not allowed" in attempt(origin="https://phish.example")
    approval = phone.get(passkeys.approval_options(http_request(), ar, alice))
    assert "not made to sign in" in refused(passkeys.verify_sign_in, http_request(), approval)
    stranger = SoftAuthenticator()
    stranger.create(passkeys.registration_options(http_request(), alice))
    unknown = stranger.get(passkeys.sign_in_options(http_request()))
    assert "unknown" in refused(passkeys.verify_sign_in, http_request(), unknown)
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert "disabled" in attempt()


def test_a_sign_in_response_is_used_once(alice, phone):
    enroll(alice, phone)
    assertion = phone.get(passkeys.sign_in_options(http_request()))
    passkeys.verify_sign_in(http_request(), assertion)
    assert "already used" in refused(passkeys.verify_sign_in, http_request(), assertion)


# --- challenges --------------------------------------------------------------------------------


def test_one_user_cannot_fill_the_challenge_table(alice, ar, phone):
    enroll(alice, phone)
    first = passkeys.approval_options(http_request(), ar, alice)
    for _ in range(challenges.PER_USER + 5):
        passkeys.approval_options(http_request(), ar, alice)
    assert WebAuthnChallenge.objects.filter(user=alice).count() == challenges.PER_USER
    assert "already used" in refused(passkeys.verify_approval, http_request(), ar, alice, phone.get(first))


def test_anonymous_sign_in_challenges_are_capped(db, monkeypatch):
    monkeypatch.setattr(challenges, "ANONYMOUS", 3)
    for _ in range(10):
        passkeys.sign_in_options(http_request())
    assert WebAuthnChallenge.objects.count() == 3


def test_long_expired_challenges_are_deleted_by_the_next_issue(alice):
    passkeys.registration_options(http_request(), alice)
    recent = passkeys.registration_options(http_request(), alice)["publicKey"]["challenge"]
    WebAuthnChallenge.objects.exclude(challenge=recent).update(
        expires_at=timezone.now() - challenges.KEEP_EXPIRED - timedelta(seconds=1)
    )
    WebAuthnChallenge.objects.filter(challenge=recent).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    passkeys.sign_in_options(http_request())
    assert WebAuthnChallenge.objects.filter(user=alice).count() == 1  # the recently expired one stays


def test_one_address_starting_passkey_sign_ins_too_fast_is_slowed_others_are_not(db, settings, client):
    settings.CIBA = {**settings.CIBA, "PASSKEY_SIGN_IN_RATE": "3/minute"}
    url = "/ciba/device/sign-in/passkey-options/"
    answers = [client.post(url, REMOTE_ADDR="203.0.113.7") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["error"] == "access_denied" and int(answers[-1]["Retry-After"]) >= 1
    assert WebAuthnChallenge.objects.count() == 3  # the refused one stored nothing
    assert client.post(url, REMOTE_ADDR="198.51.100.2").status_code == 200  # another address


def test_passkey_sign_ins_are_not_counted_when_the_rate_is_off(db, settings, client):
    settings.CIBA = {**settings.CIBA, "PASSKEY_SIGN_IN_RATE": None}
    for _ in range(40):
        assert client.post("/ciba/device/sign-in/passkey-options/").status_code == 200
