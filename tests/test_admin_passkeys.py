"""The admin of authentication at approval: users' passkeys (rename, remove, spot a suspected
clone, never touch key material), the evidence of each approval on its request, the request's
auth_time, and each client's approval level."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import get_application_model

from ciba import services
from ciba.models import ApprovalEvidence, AuthenticationRequest, Passkey
from ciba.signals import passkey_removed
from tests.test_admin import ADD_URL, form_data

Application = get_application_model()
PASSKEYS = "/admin/ciba/passkey/"
PUBLIC_KEY = bytes(range(77))
DIGEST = "ab" * 32


@pytest.fixture
def staff(client: Any, db: Any) -> Any:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def passkey(user: Any, name: str = "Alice's phone", **fields: Any) -> Passkey:
    values: dict[str, Any] = {
        "user": user,
        "name": name,
        "credential_id": f"cred-{name.replace(' ', '-').replace(chr(39), '')}-0123456789",
        "public_key": PUBLIC_KEY,
        "user_handle": "opaque-handle",
        "sign_count": 7,
    }
    values.update(fields)
    return Passkey.objects.create(**values)


def approved_request(user: Any, client: Any, **evidence: Any) -> AuthenticationRequest:
    ar = services.create_request(
        expires_in=60, client=client, user=user, hint_kind="login_hint", scope="openid", interval=5
    )
    auth_time = timezone.now() - timedelta(seconds=3)
    AuthenticationRequest.objects.filter(pk=ar.pk).update(
        state="approved", decided_at=timezone.now(), auth_time=auth_time, acr="phr", amr="hwk user mfa"
    )
    if evidence:
        ApprovalEvidence.objects.create(auth_request=ar, **evidence)
    return AuthenticationRequest.objects.get(pk=ar.pk)


# --- passkeys ----------------------------------------------------------------------------------


def test_the_passkey_list_shows_each_users_passkeys_with_their_state(staff: Any, alice: Any) -> None:
    passkey(alice, "Alice's phone", last_used_at=timezone.now())
    passkey(alice, "Alice's laptop", backup_eligible=True, cloned_at=timezone.now())
    page = staff.get(PASSKEYS)
    assert page.status_code == 200
    text = page.content.decode()
    for expected in (
        "Alice&#x27;s phone",
        "Alice&#x27;s laptop",
        "device-bound",
        "suspected clone",
        "last used",
    ):
        assert expected.lower() in text.lower()
    assert page.context["cl"].result_count == 2


def test_passkeys_filter_by_suspected_clone_and_search_by_user(staff: Any, alice: Any) -> None:
    bob = get_user_model().objects.create_user("bob", "bob@example.com", "pw")
    passkey(alice, "phone")
    passkey(alice, "cloned", cloned_at=timezone.now())
    passkey(bob, "bob key")
    assert staff.get(PASSKEYS + "?cloned=yes").context["cl"].result_count == 1
    assert staff.get(PASSKEYS + "?cloned=no").context["cl"].result_count == 2
    assert staff.get(PASSKEYS + "?q=bob").context["cl"].result_count == 1
    assert staff.get(PASSKEYS + "?backup_eligible__exact=0").context["cl"].result_count == 3


def test_staff_can_rename_a_passkey_but_never_change_its_key_material(staff: Any, alice: Any) -> None:
    key = passkey(alice, "old name")
    url = f"{PASSKEYS}{key.pk}/change/"
    page = staff.get(url)
    form = page.context["adminform"].form
    assert list(form.fields) == ["name"]  # everything else is read-only
    text = page.content.decode()
    assert base64.urlsafe_b64encode(PUBLIC_KEY).rstrip(b"=").decode() in text  # shown, not editable
    response = staff.post(url, {"name": "new name", "sign_count": "0", "credential_id": "forged"})
    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.sign_count, key.credential_id) == ("new name", 7, "cred-old-name-0123456789")


def test_passkeys_are_never_added_in_the_admin(staff: Any) -> None:
    assert staff.get(PASSKEYS + "add/").status_code == 403


def test_removing_a_passkey_in_the_admin_tells_the_site_as_the_user_removing_it_does(
    staff: Any, alice: Any
) -> None:
    removed: list[tuple[Any, Any]] = []

    def receiver(sender: Any, passkey: Any, user: Any, **kwargs: Any) -> None:
        removed.append((passkey.name, user.pk))

    passkey_removed.connect(receiver)
    try:
        lost = passkey(alice, "lost phone")
        response = staff.post(f"{PASSKEYS}{lost.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302
        two = [passkey(alice, "a"), passkey(alice, "b")]
        staff.post(
            PASSKEYS,
            {"action": "delete_selected", "_selected_action": [str(k.pk) for k in two], "post": "yes"},
        )
    finally:
        passkey_removed.disconnect(receiver)
    assert not Passkey.objects.exists()
    assert sorted(removed) == [("a", alice.pk), ("b", alice.pk), ("lost phone", alice.pk)]


# --- the evidence of an approval on its request -----------------------------------------------


def test_a_passkey_approval_shows_its_evidence_read_only_on_the_request(
    staff: Any, alice: Any, make_client: Any
) -> None:
    app, _ = make_client()
    key = passkey(alice, "Alice's phone")
    client_data = json.dumps({"type": "webauthn.get", "challenge": "abc", "origin": "https://bank.example"})
    ar = approved_request(
        alice,
        app,
        level="passkey_device_bound",
        method="passkey",
        passkey=key,
        credential_id=key.credential_id,
        challenge="challenge-base64url",
        transaction_digest=DIGEST,
        authenticator_data="authdata",
        client_data_json=base64.urlsafe_b64encode(client_data.encode()).rstrip(b"=").decode(),
        signature="signature-base64url",
        origin="https://bank.example",
        rp_id="bank.example",
        sign_count=8,
        user_present=True,
        user_verified=True,
    )
    response = staff.get(f"/admin/ciba/authenticationrequest/{ar.pk}/change/")
    text = response.content.decode()
    for expected in (
        "passkey_device_bound",
        DIGEST,
        "user present, user verified, device-bound",
        f"/admin/ciba/passkey/{key.pk}/change/",
        "webauthn.get",  # clientDataJSON decoded
        "https://bank.example",
        "Authentication time",
    ):
        assert expected in text, expected
    (inline,) = response.context["inline_admin_formsets"]
    assert (
        not inline.has_add_permission
        and not inline.has_change_permission
        and not inline.has_delete_permission
    )


def test_evidence_outlives_the_passkey_and_names_its_credential(
    staff: Any, alice: Any, make_client: Any
) -> None:
    app, _ = make_client()
    key = passkey(alice, "gone")
    ar = approved_request(
        alice, app, level="passkey", method="passkey", passkey=key, credential_id=key.credential_id
    )
    key.delete()
    text = staff.get(f"/admin/ciba/authenticationrequest/{ar.pk}/change/").content.decode()
    assert "removed since (credential cred-gone-012345" in text


def test_a_password_approval_shows_its_method_without_flags(staff: Any, alice: Any, make_client: Any) -> None:
    app, _ = make_client()
    ar = approved_request(alice, app, level="password", method="password")
    response = staff.get(f"/admin/ciba/authenticationrequest/{ar.pk}/change/")
    assert response.status_code == 200
    assert "user NOT verified" not in response.content.decode()


def test_a_tap_has_no_evidence_but_its_auth_time_shows(staff: Any, alice: Any, make_client: Any) -> None:
    app, _ = make_client()
    ar = approved_request(alice, app)
    response = staff.get(f"/admin/ciba/authenticationrequest/{ar.pk}/change/")
    assert response.status_code == 200
    (inline,) = response.context["inline_admin_formsets"]
    assert len(list(inline)) == 0
    shown = [field for fieldset in response.context["adminform"] for line in fieldset for field in line]
    assert "auth_time" in [field.field["name"] for field in shown]


# --- the client's approval level -----------------------------------------------------------------


def test_a_client_can_require_a_passkey_to_approve_its_requests(staff: Any) -> None:
    page = staff.get(ADD_URL).content.decode()
    assert 'name="approval_level"' in page
    assert staff.post(ADD_URL, form_data(approval_level="passkey")).status_code == 302
    client = Application.objects.get(client_id="kiosk-1")
    assert client.approval_level == "passkey"
    listing = staff.get("/admin/ciba/application/?approval_level__exact=passkey")
    assert listing.context["cl"].result_count == 1
    assert "Passkey with user verification" in listing.content.decode()


def test_an_unknown_approval_level_is_refused_at_the_field(staff: Any) -> None:
    response = staff.post(ADD_URL, form_data(approval_level="retina"))
    assert response.status_code == 200
    assert "approval_level" in response.context["adminform"].form.errors
