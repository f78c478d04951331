"""The admin for dynamic registration: initial access tokens issued and shown once, revoked,
never shown as a hash; a client's registration metadata, with what only registration writes
read-only."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import get_application_model

from ciba.client_registration import initial_access_tokens
from ciba.models import InitialAccessToken

Application = get_application_model()
IAT_URL = "/admin/ciba/initialaccesstoken/"


@pytest.fixture
def staff(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    client.user = user
    return client


def shown_token(client, response):
    """The token in the page the admin shows after saving (where its messages appear)."""
    page = client.get(response["Location"]).content.decode()
    match = re.search(r"is (\S+) - copy it now", page)
    assert match, page
    return match.group(1)


def test_issuing_a_token_shows_it_once_and_stores_only_its_hash(staff):
    response = staff.post(
        f"{IAT_URL}add/",
        {
            "name": "Acme Bank onboarding",
            "uses": "3",
            "expires_in": "3600",
            "allowed_metadata": '{"backchannel_token_delivery_mode": ["poll", "ping"]}',
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    token = shown_token(staff, response)
    row = InitialAccessToken.objects.get()
    assert row.token_hash == initial_access_tokens.token_hash(token) and token not in row.token_hash
    assert initial_access_tokens.find(token) == row
    assert row.uses_left == 3 and row.created_by == staff.user
    assert row.allowed_metadata == {"backchannel_token_delivery_mode": ["poll", "ping"]}
    assert timedelta(minutes=59) < row.expires - timezone.now() <= timedelta(hours=1)

    page = staff.get(f"{IAT_URL}{row.pk}/change/").content.decode()
    assert token not in page and row.token_hash not in page
    listing = staff.get(IAT_URL).content.decode()
    assert token not in listing and row.token_hash not in listing
    assert "usable" in listing


def test_empty_uses_and_expiry_issue_an_unlimited_token(staff):
    response = staff.post(
        f"{IAT_URL}add/", {"name": "Sandbox", "uses": "", "expires_in": "", "allowed_metadata": "{}"}
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    row = InitialAccessToken.objects.get()
    assert row.uses_left is None and row.expires is None


@pytest.mark.parametrize(
    "field, value",
    [("uses", "0"), ("expires_in", "-5"), ("allowed_metadata", '["poll"]'), ("name", "")],
)
def test_a_token_nobody_could_use_is_refused_at_its_field(staff, field, value):
    data = {"name": "Acme", "uses": "1", "expires_in": "60", "allowed_metadata": "{}", field: value}
    response = staff.post(f"{IAT_URL}add/", data)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not InitialAccessToken.objects.exists()


def test_revoking_tokens_from_the_list(staff):
    token, row = initial_access_tokens.issue("Acme")
    _, other = initial_access_tokens.issue("Other")
    response = staff.post(IAT_URL, {"action": "revoke", "_selected_action": [row.pk]})
    assert response.status_code == 302
    row.refresh_from_db()
    other.refresh_from_db()
    assert row.revoked is not None and other.revoked is None
    assert initial_access_tokens.state(row) == "revoked"
    assert "revoked" in staff.get(IAT_URL).content.decode()


def test_a_view_only_account_cannot_issue_or_revoke(client, db):
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_initialaccesstoken"))
    client.force_login(user)
    _, row = initial_access_tokens.issue("Acme")
    assert client.get(IAT_URL).status_code == 200
    assert client.get(f"{IAT_URL}add/").status_code == 403
    client.post(IAT_URL, {"action": "revoke", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.revoked is None


# --- a client's registration metadata -----------------------------------------------------------


def test_the_client_form_has_the_metadata_fieldsets(staff):
    page = staff.get("/admin/ciba/application/add/").content.decode()
    for name in ("contacts", "client_uri", "logo_uri", "policy_uri", "tos_uri", "request_object_signing_alg"):
        assert f'name="{name}"' in page, name
    assert "Client metadata" in page
    assert 'name="software_statement"' not in page  # only registration writes it
    assert 'name="registration_access_token_hash"' not in page


def test_a_dynamically_registered_client_shows_its_statement_and_never_its_token_hash(staff, make_client):
    app, _ = make_client("poll")
    digest = "ab" * 32
    Application.objects.filter(pk=app.pk).update(
        software_statement="eyJhbGciOiJQUzI1NiJ9.eyJzb2Z0d2FyZV9pZCI6ImFjbWUifQ.c2ln",
        registration_access_token_hash=digest,
        registration_source=Application.RegistrationSource.DCR,
    )
    page = staff.get(f"/admin/ciba/application/{app.pk}/change/").content.decode()
    assert "eyJhbGciOiJQUzI1NiJ9.eyJzb2Z0d2FyZV9pZCI6ImFjbWUifQ.c2ln" in page
    assert 'name="software_statement"' not in page  # read-only
    assert digest not in page
    assert "only a hash is stored" in page


def test_staff_can_delete_a_client_with_requests_and_its_pending_requests_end(staff, make_client, alice):
    """The requests' read-only admin must not make their client undeletable; deleting it ends
    what it started (``ciba.services.end_client``), so no phone can still approve it."""
    from ciba.models import AuthenticationRequest

    from .conftest import start_request

    app, secret = make_client()
    auth_req_id = start_request(staff, app, secret)
    assert AuthenticationRequest.objects.get(auth_req_id=auth_req_id).state == "pending"

    confirm = staff.get(f"/admin/ciba/application/{app.pk}/delete/")
    assert confirm.status_code == 200 and "cannot delete" not in confirm.content.decode().lower()
    response = staff.post(f"/admin/ciba/application/{app.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Application.objects.filter(pk=app.pk).exists()
    assert not AuthenticationRequest.objects.filter(auth_req_id=auth_req_id).exists()
