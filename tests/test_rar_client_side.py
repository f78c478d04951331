"""The client's and the operator's side of rich authorization requests (RFC 9396 §10): discovery
lists the supported types, a client registers the types it will send (dynamic registration,
the admin, ``manage.py ciba_client``) and only supported ones, and the admin shows, for each
request, what was asked, what the device displayed and what the user approved."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from oauth2_provider.models import get_application_model

from ciba import authorization_details as rar
from ciba import services
from ciba.client_registration import initial_access_tokens
from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest
from ciba.registration_rules import problems
from tests.conftest import start_request
from tests.protocol import oauth_error
from tests.test_admin import ADD_URL, form_data
from tests.test_client_registration import ciba_client
from tests.test_registration_endpoint import POLL_CLIENT, register

Application = get_application_model()
OIDC = "/o/.well-known/openid-configuration"
RFC8414 = "/o/.well-known/oauth-authorization-server"
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02100100109307118603"},
    "remittanceInformationUnstructured": "Ref Number Merchant",
}
LOWER = {**PAYMENT, "instructedAmount": {"currency": "EUR", "amount": "100.00"}}


@pytest.fixture
def staff(client: Any, db: Any) -> Any:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def no_types(settings: Any) -> None:
    settings.CIBA = {**settings.CIBA, "AUTHORIZATION_DETAILS_TYPES": {}}


# --- discovery ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", [OIDC, RFC8414])
def test_discovery_lists_the_authorization_details_types_a_client_may_send(client: Any, path: str) -> None:
    data = client.get(path).json()
    assert data["authorization_details_types_supported"] == ["payment_initiation"]
    assert data["authorization_details_types_supported"] == rar.supported_types()


@pytest.mark.django_db
def test_a_server_without_types_does_not_advertise_the_member(client: Any, no_types: None) -> None:
    assert "authorization_details_types_supported" not in client.get(OIDC).json()


# --- the registration rule ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_client_may_register_the_supported_types() -> None:
    client = ciba_client(authorization_details_types=["payment_initiation"])
    assert [p.code for p in problems(client)] == []
    client.full_clean()


@pytest.mark.django_db
def test_an_unsupported_type_is_refused_at_its_field_naming_what_is_supported() -> None:
    (problem,) = problems(ciba_client(authorization_details_types=["payment_initiation", "wire_transfer"]))
    assert (problem.field, problem.code, problem.blocking) == (
        "authorization_details_types",
        "authorization_details_type_unsupported",
        False,
    )
    assert "wire_transfer" in str(problem.message) and "payment_initiation" in str(problem.message)


@pytest.mark.django_db
@pytest.mark.parametrize("listed", ["payment_initiation", [1], [""], {"type": "payment_initiation"}])
def test_types_that_are_not_a_list_of_names_are_refused(listed: Any) -> None:
    codes = [p.code for p in problems(ciba_client(authorization_details_types=listed))]
    assert codes == ["authorization_details_types_invalid"]


@pytest.mark.django_db
def test_a_type_the_site_dropped_is_reported_but_does_not_block_the_client(no_types: None) -> None:
    client = ciba_client(authorization_details_types=["payment_initiation"])
    assert [p.code for p in problems(client)] == ["authorization_details_type_unsupported"]
    assert list(problems(client, blocking_only=True)) == []


# --- dynamic registration (RFC 7591 with RFC 9396 §10) ---------------------------------------


@pytest.fixture
def registration(settings: Any, db: Any) -> str:
    settings.CIBA = {**django_settings.CIBA, "REGISTRATION_ENABLED": True}
    token, _row = initial_access_tokens.issue("tests", uses=None)
    return token


def test_a_client_registers_the_types_it_will_send_and_is_told_them_back(
    client: Any, registration: str
) -> None:
    response = register(
        client, {**POLL_CLIENT, "authorization_details_types": ["payment_initiation"]}, registration
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["authorization_details_types"] == ["payment_initiation"]
    assert Application.objects.get(client_id=body["client_id"]).authorization_details_types == [
        "payment_initiation"
    ]
    shown = client.get(
        body["registration_client_uri"], HTTP_AUTHORIZATION=f"Bearer {body['registration_access_token']}"
    )
    assert shown.json()["authorization_details_types"] == ["payment_initiation"]


def test_registering_an_unsupported_type_is_invalid_client_metadata(client: Any, registration: str) -> None:
    response = register(
        client, {**POLL_CLIENT, "authorization_details_types": ["wire_transfer"]}, registration
    )
    body = oauth_error(response, 400, "invalid_client_metadata")
    assert "authorization_details_types" in body["error_description"]
    assert not Application.objects.exists()


def test_types_that_are_not_strings_are_invalid_client_metadata(client: Any, registration: str) -> None:
    response = register(
        client, {**POLL_CLIENT, "authorization_details_types": "payment_initiation"}, registration
    )
    oauth_error(response, 400, "invalid_client_metadata")


# --- the admin --------------------------------------------------------------------------------


def test_the_client_form_offers_the_supported_types_and_stores_the_ticked_ones(staff: Any) -> None:
    form = staff.get(ADD_URL).context["adminform"].form
    assert [value for value, _label in form.fields["authorization_details_types"].choices] == [
        "payment_initiation"
    ]

    response = staff.post(ADD_URL, form_data(authorization_details_types=["payment_initiation"]))

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Application.objects.get(client_id="kiosk-1").authorization_details_types == ["payment_initiation"]


def test_a_stored_type_the_server_dropped_is_shown_marked_and_saving_names_the_rule(
    staff: Any, make_client: Any, no_types: None
) -> None:
    app, _secret = make_client("poll")
    Application.objects.filter(pk=app.pk).update(authorization_details_types=["payment_initiation"])
    url = f"/admin/ciba/application/{app.pk}/change/"
    form = staff.get(url).context["adminform"].form
    ((value, label),) = form.fields["authorization_details_types"].choices
    assert value == "payment_initiation" and "not supported" in str(label)
    assert form.initial["authorization_details_types"] == ["payment_initiation"]


def test_the_request_admin_shows_what_was_asked_displayed_and_approved(
    staff: Any, client: Any, alice: Any, make_client: Any
) -> None:
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    ar = AuthenticationRequest.objects.select_related("user").get(auth_req_id=auth_req_id)
    services.approve(ar, user=alice)
    digest = "ab" * 32
    AuthenticationRequest.objects.filter(pk=ar.pk).update(
        authorization_details=[PAYMENT],
        approved_authorization_details=[LOWER],
        displayed_details_hash=digest,
        resource=["https://api.bank.example/payments"],
        request_context={"channel": "kiosk 7"},
    )

    page = staff.get(f"/admin/ciba/authenticationrequest/{ar.pk}/change/").content.decode()

    assert "123.50" in page and "100.00" in page  # requested, then approved
    assert "Merchant A" in page
    for item in rar.rendering([PAYMENT]):
        first_line = item["text"].splitlines()[0]
        assert first_line.replace("&", "&amp;") in page or first_line in page
    assert digest in page
    assert "https://api.bank.example/payments" in page
    assert "kiosk 7" in page


def test_a_request_without_details_shows_none(staff: Any, client: Any, alice: Any, make_client: Any) -> None:
    app, secret = make_client("poll")
    ar = AuthenticationRequest.objects.get(auth_req_id=start_request(client, app, secret))
    response = staff.get(f"/admin/ciba/authenticationrequest/{ar.pk}/change/")
    assert response.status_code == 200
    assert "requested authorization details" in response.content.decode().lower()


# --- manage.py ciba_client ---------------------------------------------------------------------


def ciba_client_command(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("ciba_client", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_the_command_registers_the_types_as_a_list_option() -> None:
    result = ciba_client_command("Kiosk", "--authorization-details-types", "payment_initiation")
    assert result["authorization_details_types"] == ["payment_initiation"]
    stored = Application.objects.get(client_id=result["client_id"])
    assert stored.authorization_details_types == ["payment_initiation"]
    assert stored.authorization_grant_type == CIBA_GRANT_TYPE


@pytest.mark.django_db
def test_the_command_refuses_an_unsupported_type_naming_the_option_and_writes_nothing() -> None:
    with pytest.raises(CommandError, match="--authorization-details-types: This server does not support"):
        ciba_client_command("Kiosk", "--authorization-details-types", "wire_transfer")
    assert not Application.objects.exists()
