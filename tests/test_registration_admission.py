"""Who may register a client (RFC 7591 §3): initial access tokens, software statements, open
registration, what a token allows, and the per-address limit on open registration."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from ciba.client_registration import initial_access_tokens
from ciba.client_registration.admission import Admission, OpenRegistrationThrottle, admit, check_allowed
from ciba.errors import (
    InvalidClientMetadata,
    InvalidSoftwareStatement,
    InvalidToken,
    UnapprovedSoftwareStatement,
)
from ciba.models import InitialAccessToken
from tests.keys import public_jwk, rsa_key, sign

pytestmark = pytest.mark.django_db

DIRECTORY = "https://directory.example.org"
DIRECTORY_KEY = rsa_key()
CIBA = "urn:openid:params:grant-type:ciba"
DOCUMENT = {"client_name": "Kiosk", "grant_types": [CIBA], "backchannel_token_delivery_mode": "poll"}


def registration(token: str | None = None, body: Any = None, address: str = "203.0.113.7") -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return RequestFactory().post(
        "/o/register/",
        json.dumps(DOCUMENT if body is None else body),
        content_type="application/json",
        REMOTE_ADDR=address,
        **headers,
    )


def statement(**overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": DIRECTORY,
        "iat": now,
        "exp": now + 300,
        "software_id": "kiosk-app",
        "software_client_name": "Kiosk from the directory",
        **overrides,
    }
    return sign(claims, DIRECTORY_KEY, "PS256", kid="d1")


@pytest.fixture(autouse=True)
def registration_enabled(settings: Any) -> None:
    settings.CIBA = {
        **settings.CIBA,
        "REGISTRATION_ENABLED": True,
        "SOFTWARE_STATEMENT_ISSUERS": {DIRECTORY: {"jwks": {"keys": [public_jwk(DIRECTORY_KEY, "d1")]}}},
    }


def open_registration(settings: Any, **more: Any) -> None:
    settings.CIBA = {**settings.CIBA, "REGISTRATION_OPEN": True, **more}


# --- admit -------------------------------------------------------------------------------------


def test_without_a_credential_closed_registration_answers_invalid_token_with_a_bearer_challenge() -> None:
    with pytest.raises(InvalidToken) as refused:
        admit(registration(), dict(DOCUMENT))

    assert refused.value.status_code == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_open_registration_admits_a_request_without_a_credential(settings: Any) -> None:
    open_registration(settings)

    admission = admit(registration(), dict(DOCUMENT))

    assert admission.source == "open"
    assert admission.document == DOCUMENT
    assert admission.initial_access_token is None
    assert admission.allowed_metadata == {}
    admission.consume()  # nothing to spend


def test_a_valid_initial_access_token_admits_and_carries_what_it_allows() -> None:
    token, row = initial_access_tokens.issue("Acme", uses=2, allowed_metadata={"grant_types": [CIBA]})

    admission = admit(registration(token), dict(DOCUMENT))

    assert admission.source == "initial_access_token"
    assert admission.initial_access_token == row
    assert admission.allowed_metadata == {"grant_types": [CIBA]}
    assert admission.software_statement == ""


def test_consuming_an_admission_spends_one_use_of_its_token() -> None:
    token, row = initial_access_tokens.issue("Acme", uses=2)

    admit(registration(token), dict(DOCUMENT)).consume()

    row.refresh_from_db()
    assert row.uses_left == 1


def test_a_single_use_token_admits_one_of_two_racing_registrations() -> None:
    token, row = initial_access_tokens.issue("Acme", uses=1)
    first = admit(registration(token), dict(DOCUMENT))
    second = admit(registration(token), dict(DOCUMENT))  # both looked before either registered

    first.consume()
    with pytest.raises(InvalidToken, match="used up"):
        second.consume()
    with pytest.raises(InvalidToken, match="used as many times"):
        admit(registration(token), dict(DOCUMENT))


def test_a_token_revoked_while_a_registration_runs_is_not_spent() -> None:
    token, row = initial_access_tokens.issue("Acme", uses=None)
    admission = admit(registration(token), dict(DOCUMENT))
    initial_access_tokens.revoke(row.pk)

    with pytest.raises(InvalidToken):
        admission.consume()


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda row: initial_access_tokens.revoke(row.pk), "revoked"),
        (
            lambda row: InitialAccessToken.objects.filter(pk=row.pk).update(
                expires=timezone.now() - timedelta(seconds=1)
            ),
            "expired",
        ),
        (lambda row: InitialAccessToken.objects.filter(pk=row.pk).update(uses_left=0), "used as many times"),
    ],
    ids=["revoked", "expired", "used-up"],
)
def test_an_unusable_token_is_refused_even_where_registration_is_open(
    settings: Any, spoil: Any, reason: str
) -> None:
    open_registration(settings)
    token, row = initial_access_tokens.issue("Acme")
    spoil(row)

    with pytest.raises(InvalidToken, match=reason):
        admit(registration(token), dict(DOCUMENT))


def test_an_unknown_token_is_refused_even_where_registration_is_open(settings: Any) -> None:
    open_registration(settings)

    with pytest.raises(InvalidToken, match="not valid"):
        admit(registration("made-up"), dict(DOCUMENT))


@pytest.mark.parametrize("header", ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer a b", "DPoP abc"])
def test_a_credential_that_is_not_one_bearer_token_is_refused(header: str) -> None:
    request = registration()
    request.META["HTTP_AUTHORIZATION"] = header

    with pytest.raises(InvalidToken):
        admit(request, dict(DOCUMENT))


def test_a_software_statement_from_a_trusted_directory_admits_and_overrides_the_request() -> None:
    presented = statement()

    admission = admit(registration(), {**DOCUMENT, "software_statement": presented})

    assert admission.source == "software_statement"
    assert admission.software_statement == presented
    assert admission.document["client_name"] == "Kiosk from the directory"
    assert admission.document["software_id"] == "kiosk-app"
    assert admission.document["backchannel_token_delivery_mode"] == "poll"
    assert "software_statement" not in admission.document


def test_a_token_and_a_statement_together_admit_by_the_token_with_the_statement_claims() -> None:
    token, row = initial_access_tokens.issue("Acme")

    admission = admit(registration(token), {**DOCUMENT, "software_statement": statement()})

    assert admission.source == "initial_access_token"
    assert admission.initial_access_token == row
    assert admission.document["client_name"] == "Kiosk from the directory"


def test_a_statement_from_an_untrusted_directory_is_unapproved_even_with_a_token() -> None:
    token, _ = initial_access_tokens.issue("Acme")

    with pytest.raises(UnapprovedSoftwareStatement):
        admit(registration(token), {**DOCUMENT, "software_statement": statement(iss="https://rogue.example")})


def test_an_invalid_statement_is_refused_even_where_registration_is_open(settings: Any) -> None:
    open_registration(settings)

    with pytest.raises(InvalidSoftwareStatement):
        admit(registration(), {**DOCUMENT, "software_statement": "not-a-jwt"})


def test_when_statements_are_required_a_token_alone_is_not_enough(settings: Any) -> None:
    settings.CIBA = {**settings.CIBA, "SOFTWARE_STATEMENT_REQUIRED": True}
    token, row = initial_access_tokens.issue("Acme")

    with pytest.raises(InvalidSoftwareStatement, match="required"):
        admit(registration(token), dict(DOCUMENT))
    assert (
        admit(registration(), {**DOCUMENT, "software_statement": statement()}).source == "software_statement"
    )
    row.refresh_from_db()
    assert row.uses_left == 1


def test_an_explicit_null_statement_is_no_statement(settings: Any) -> None:
    open_registration(settings)

    admission = admit(registration(), {**DOCUMENT, "software_statement": None})

    assert admission.source == "open"
    assert "software_statement" not in admission.document


def test_a_document_that_is_not_an_object_is_invalid_metadata(settings: Any) -> None:
    open_registration(settings)

    with pytest.raises(InvalidClientMetadata):
        admit(registration(body=[]), [])  # type: ignore[arg-type]


def test_a_token_whose_allowed_metadata_cannot_be_read_is_refused() -> None:
    token, row = initial_access_tokens.issue("Acme")
    InitialAccessToken.objects.filter(pk=row.pk).update(allowed_metadata=["grant_types"])

    with pytest.raises(InvalidToken):
        admit(registration(token), dict(DOCUMENT))


# --- check_allowed -----------------------------------------------------------------------------


def admitted(allowed: dict[str, Any]) -> Admission:
    return Admission(document={}, source="initial_access_token", allowed_metadata=allowed)


def test_metadata_within_what_the_token_allows_passes() -> None:
    allowed = {
        "grant_types": [CIBA, "refresh_token"],
        "backchannel_token_delivery_mode": ["poll", "ping"],
        "dpop_bound_access_tokens": [True],
    }

    check_allowed(
        admitted(allowed),
        {
            "grant_types": [CIBA],
            "backchannel_token_delivery_mode": "ping",
            "dpop_bound_access_tokens": True,
            "client_name": "anything the token does not constrain",
        },
    )
    check_allowed(admitted(allowed), {})  # constrained names left out register nothing


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"grant_types": [CIBA, "authorization_code"]}, "grant_types"),
        ({"backchannel_token_delivery_mode": "push"}, "backchannel_token_delivery_mode"),
        ({"dpop_bound_access_tokens": 1}, "dpop_bound_access_tokens"),
        ({"redirect_uris": ["https://other.example/cb"]}, "redirect_uris"),
    ],
)
def test_metadata_the_token_does_not_allow_is_invalid_and_names_the_field(
    document: dict[str, Any], field: str
) -> None:
    allowed = {
        "grant_types": [CIBA],
        "backchannel_token_delivery_mode": ["poll", "ping"],
        "dpop_bound_access_tokens": [True],
        "redirect_uris": ["https://kiosk.example.com/cb"],
    }

    with pytest.raises(InvalidClientMetadata) as refused:
        check_allowed(admitted(allowed), document)

    assert refused.value.error == "invalid_client_metadata"
    assert refused.value.description.startswith(f"{field}:")


def test_an_admission_without_a_token_allows_anything() -> None:
    check_allowed(admitted({}), {"grant_types": ["client_credentials"]})


# --- OpenRegistrationThrottle --------------------------------------------------------------


class Register(APIView):
    """Stands in for the registration view: lists the throttle, echoes the parsed body."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes = [OpenRegistrationThrottle]

    def post(self, request: Any) -> Response:
        return Response({"parsed": request.data}, status=201)


def post(body: Any = None, *, raw: bytes | None = None, address: str = "203.0.113.7", **headers: Any) -> Any:
    data = raw if raw is not None else json.dumps(DOCUMENT if body is None else body)
    request = APIRequestFactory().post(
        "/o/register/", data, content_type="application/json", REMOTE_ADDR=address, **headers
    )
    return Register.as_view()(request)


def test_open_registrations_are_limited_per_address(settings: Any) -> None:
    open_registration(settings, REGISTRATION_OPEN_RATE="2/hour")

    answers = [post().status_code for _ in range(3)]

    assert answers == [201, 201, 429]
    assert post(address="198.51.100.9").status_code == 201  # another address has its own count


def test_registrations_with_a_token_or_a_statement_are_not_counted_as_open(settings: Any) -> None:
    open_registration(settings, REGISTRATION_OPEN_RATE="1/hour")

    assert post().status_code == 201
    assert post().status_code == 429
    assert post(HTTP_AUTHORIZATION="Bearer some-token").status_code == 201
    assert post({**DOCUMENT, "software_statement": "eyJ.x.y"}).status_code == 201


def test_nothing_is_counted_while_registration_is_not_open(settings: Any) -> None:
    settings.CIBA = {**settings.CIBA, "REGISTRATION_OPEN_RATE": "1/hour"}

    assert [post().status_code for _ in range(3)] == [201, 201, 201]


def test_the_view_still_sees_a_malformed_body_after_the_throttle_looked(settings: Any) -> None:
    open_registration(settings)

    response = post(raw=b"{not json")

    assert response.status_code == 400  # DRF's parse error, not an empty document


def test_the_address_behind_a_trusted_proxy_is_counted(settings: Any) -> None:
    open_registration(settings, REGISTRATION_OPEN_RATE="1/hour", TRUSTED_PROXIES=["10.0.0.0/8"])

    assert post(address="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 201
    assert post(address="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 201
    assert post(address="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
