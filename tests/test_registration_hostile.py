"""Bad registration requests: every malformed body, wrong type or refused value is a 400 (413
for a body too large) with the RFC 7591 §3.2.2 code and a description naming the member, never
a 500, and nothing is created."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings as django_settings
from oauth2_provider.models import get_application_model

from ciba.client_registration import initial_access_tokens, metadata
from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import InitialAccessToken
from tests import keys
from tests.protocol import oauth_error

Application = get_application_model()
JSON = "application/json"
pytestmark = pytest.mark.django_db

POLL_CLIENT = {
    "client_name": "Kiosk",
    "grant_types": [CIBA_GRANT_TYPE],
    "backchannel_token_delivery_mode": "poll",
}


@pytest.fixture(autouse=True)
def registration_on(settings: Any) -> None:
    settings.CIBA = {**django_settings.CIBA, "REGISTRATION_ENABLED": True}


@pytest.fixture
def post(client: Any) -> Any:
    token, _row = initial_access_tokens.issue("tests", uses=None)

    def send(body: Any, content_type: str = JSON) -> Any:
        raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return client.post(
            "/o/register/", raw, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {token}"
        )

    return send


def refused(
    response: Any, code: str = "invalid_client_metadata", *, names: str = "", status: int = 400
) -> None:
    body = oauth_error(response, status, code)
    assert names in body.get("error_description", ""), body
    assert not Application.objects.exists()


@pytest.mark.parametrize(
    "body",
    [b"not json", b"", b"[1, 2]", b'"a string"', b"null", b"\xff\xfe{}", b'{"client_name": NaN}', b"{" * 10],
)
def test_a_body_that_is_not_a_json_object_is_refused(post: Any, body: bytes) -> None:
    refused(post(body))


def test_a_deeply_nested_body_is_refused(post: Any) -> None:
    refused(post(b'{"jwks": ' + b"[" * 5000 + b"]" * 5000 + b"}"))


def test_a_form_body_is_refused(post: Any) -> None:
    refused(post("client_name=Kiosk", content_type="application/x-www-form-urlencoded"))


def test_a_huge_body_is_refused_before_it_is_read(post: Any) -> None:
    body = json.dumps({**POLL_CLIENT, "padding": "x" * (metadata.MAX_DOCUMENT_BYTES + 1)})
    refused(post(body), status=413)


def test_a_huge_jwks_is_refused(post: Any) -> None:
    jwk = keys.public_jwk(keys.rsa_key(), "k")
    many = {"keys": [{**jwk, "kid": f"k{i}"} for i in range(metadata.MAX_JWKS_KEYS + 1)]}
    refused(
        post({**POLL_CLIENT, "token_endpoint_auth_method": "private_key_jwt", "jwks": many}), names="jwks"
    )
    padded = {"keys": [{**jwk, "x-padding": "x" * metadata.MAX_JWKS_BYTES}]}
    refused(
        post({**POLL_CLIENT, "token_endpoint_auth_method": "private_key_jwt", "jwks": padded}), names="jwks"
    )


WRONG_TYPES = [
    ("client_name", 5),
    ("client_name", ["Kiosk"]),
    ("backchannel_token_delivery_mode", {"mode": "poll"}),
    ("backchannel_user_code_parameter", "true"),
    ("backchannel_user_code_parameter", 1),
    ("dpop_bound_access_tokens", "false"),
    ("tls_client_certificate_bound_access_tokens", 0),
    ("grant_types", CIBA_GRANT_TYPE),
    ("grant_types", [CIBA_GRANT_TYPE, 7]),
    ("redirect_uris", "https://a.example/cb"),
    ("contacts", "ops@kiosk.example"),
    ("response_types", "code"),
    ("jwks", []),
    ("jwks", "{}"),
    ("jwks_uri", ["https://a.example/jwks"]),
    ("token_endpoint_auth_method", True),
    ("software_id", 12),
    ("logo_uri", {"href": "https://a.example/logo.png"}),
]


@pytest.mark.parametrize(("member", "value"), WRONG_TYPES)
def test_a_member_of_the_wrong_type_is_named(post: Any, member: str, value: Any) -> None:
    refused(post({**POLL_CLIENT, member: value}), names=member)


@pytest.mark.parametrize(
    "method", ["none", "client_secret", "tls_client_auth", "self_signed_tls_client_auth"]
)
def test_an_auth_method_this_server_does_not_offer_is_refused(post: Any, method: str) -> None:
    refused(post({**POLL_CLIENT, "token_endpoint_auth_method": method}), names="token_endpoint_auth_method")


def test_a_ping_client_without_an_endpoint_is_refused(post: Any) -> None:
    document = {**POLL_CLIENT, "backchannel_token_delivery_mode": "ping"}
    refused(post(document), names="backchannel_client_notification_endpoint")


def test_an_unknown_delivery_mode_is_refused(post: Any) -> None:
    refused(
        post({**POLL_CLIENT, "backchannel_token_delivery_mode": "carrier-pigeon"}), names="backchannel_token"
    )


@pytest.mark.parametrize(
    ("endpoint", "allow"),
    [
        ("http://kiosk.example/cb", {"CALLBACK_ALLOW_HTTP": False}),
        ("https://10.1.2.3/cb", {"CALLBACK_ALLOW_PRIVATE_NETWORKS": False}),
        ("https://127.0.0.1/cb", {"CALLBACK_ALLOW_PRIVATE_NETWORKS": False}),
        ("https://[::1]/cb", {"CALLBACK_ALLOW_PRIVATE_NETWORKS": False}),
        ("not a url", {}),
    ],
)
def test_a_notification_endpoint_the_server_will_not_call_is_refused(
    post: Any, settings: Any, endpoint: str, allow: dict[str, Any]
) -> None:
    settings.CIBA = {**settings.CIBA, **allow}
    document = {
        **POLL_CLIENT,
        "backchannel_token_delivery_mode": "ping",
        "backchannel_client_notification_endpoint": endpoint,
    }
    refused(post(document), names="backchannel_client_notification_endpoint")


def test_a_private_key_in_jwks_is_refused(post: Any) -> None:
    private = keys.public_jwk(keys.rsa_key(), "k1")
    private["d"] = "AQAB"
    refused(
        post({**POLL_CLIENT, "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}}),
        names="jwks",
    )


def test_private_key_jwt_without_keys_is_refused(post: Any) -> None:
    refused(post({**POLL_CLIENT, "token_endpoint_auth_method": "private_key_jwt"}), names="jwks")


def test_both_jwks_and_jwks_uri_are_refused(post: Any) -> None:
    document = {
        **POLL_CLIENT,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [keys.public_jwk(keys.rsa_key(), "k1")]},
        "jwks_uri": "https://kiosk.example/jwks",
    }
    refused(post(document), names="jwks_uri")


@pytest.mark.parametrize(
    "uris", [["not a uri"], ["https://a.example/cb#fragment"], ["https://a.example/c b"], [""]]
)
def test_a_bad_redirect_uri_is_invalid_redirect_uri(post: Any, uris: list[str]) -> None:
    document = {"client_name": "Web", "grant_types": ["authorization_code"], "redirect_uris": uris}
    refused(post(document), "invalid_redirect_uri", names="redirect_uris")


def test_authorization_code_without_redirect_uris_is_refused(post: Any) -> None:
    refused(post({"client_name": "Web", "grant_types": ["authorization_code"]}), "invalid_redirect_uri")


@pytest.mark.parametrize(
    ("grant_types", "response_types"),
    [([CIBA_GRANT_TYPE], ["code"]), ([CIBA_GRANT_TYPE], ["token"]), (["authorization_code"], [])],
)
def test_response_types_that_contradict_the_grants_are_refused(
    post: Any, grant_types: list[str], response_types: list[str]
) -> None:
    document = {
        **POLL_CLIENT,
        "grant_types": grant_types,
        "response_types": response_types,
        "redirect_uris": ["https://a.example/cb"],
    }
    if CIBA_GRANT_TYPE not in grant_types:
        document.pop("backchannel_token_delivery_mode")
    refused(post(document), names="response_types")


def test_an_unknown_grant_type_is_refused(post: Any) -> None:
    refused(post({**POLL_CLIENT, "grant_types": [CIBA_GRANT_TYPE, "password"]}), names="grant_types")


def test_a_delivery_mode_without_the_ciba_grant_is_refused(post: Any) -> None:
    refused(post({**POLL_CLIENT, "grant_types": ["client_credentials"]}), names="grant_types")


def test_contacts_must_be_email_addresses(post: Any) -> None:
    refused(post({**POLL_CLIENT, "contacts": ["call me maybe"]}), names="contacts")


@pytest.mark.parametrize("value", ["Kiosk\x00", "Kiosk\ud800"])
def test_strings_a_database_cannot_store_are_refused(post: Any, value: str) -> None:
    raw = json.dumps({**POLL_CLIENT, "client_name": value})  # \u escapes: valid JSON
    refused(post(raw), names="client_name")


def test_an_overlong_value_is_refused(post: Any) -> None:
    refused(post({**POLL_CLIENT, "client_name": "K" * 300}), names="client_name")
    refused(post({**POLL_CLIENT, "contacts": [f"a{i}@kiosk.example" for i in range(100)]}), names="contacts")


def test_an_id_token_algorithm_the_server_cannot_sign_with_is_refused(post: Any) -> None:
    refused(
        post({**POLL_CLIENT, "id_token_signed_response_alg": "none"}), names="id_token_signed_response_alg"
    )


def test_a_refusal_spends_no_use_of_the_token(post: Any) -> None:
    post({**POLL_CLIENT, "backchannel_token_delivery_mode": 1})
    assert InitialAccessToken.objects.get().uses_left is None


def test_a_non_bearer_credential_is_refused(client: Any) -> None:
    response = client.post(
        "/o/register/", json.dumps(POLL_CLIENT), content_type=JSON, HTTP_AUTHORIZATION="Basic a2lvc2s6cw=="
    )
    oauth_error(response, 401, "invalid_token")
    assert not Application.objects.exists()
