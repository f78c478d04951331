"""Clients discover CIBA support from the OpenID and RFC 8414 metadata documents."""

import pytest
from django.test import override_settings

from ciba.constants import CIBA_GRANT_TYPE

OIDC = "/o/.well-known/openid-configuration"
RFC8414 = "/o/.well-known/oauth-authorization-server"

# The ID-token algorithms come from this server's key set, which lives in the database.
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", [OIDC, RFC8414])
def test_metadata_carries_the_ciba_members(client, path):
    data = client.get(path).json()
    assert data["backchannel_authentication_endpoint"] == "http://testserver/o/backchannel-authentication/"
    assert data["backchannel_token_delivery_modes_supported"] == ["poll", "ping", "push"]
    assert data["backchannel_authentication_request_signing_alg_values_supported"] == [
        "RS256",
        "PS256",
        "ES256",
    ]
    assert data["backchannel_user_code_parameter_supported"] is False
    assert CIBA_GRANT_TYPE in data["grant_types_supported"]
    assert "refresh_token" in data["grant_types_supported"]
    assert data["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    ]
    assert "none" not in data["token_endpoint_auth_signing_alg_values_supported"]
    assert {"PS256", "ES256", "HS256"} <= set(data["token_endpoint_auth_signing_alg_values_supported"])


def test_dots_own_members_are_kept(client):
    response = client.get(OIDC)
    data = response.json()
    assert data["token_endpoint"] == "http://testserver/o/token/"
    assert data["jwks_uri"] == "http://testserver/o/.well-known/jwks.json"
    assert response["Access-Control-Allow-Origin"] == "*"


def test_the_endpoint_url_is_the_one_that_answers(client):
    url = client.get(OIDC).json()["backchannel_authentication_endpoint"]
    response = client.post(
        url.removeprefix("http://testserver"),
        "scope=openid",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.json()["error"] == "invalid_client"


@override_settings(CIBA={"DELIVERY_MODES": ["push"], "REQUEST_SIGNING_ALGS": [], "USER_CODE_SUPPORTED": True})
@pytest.mark.parametrize("path", [OIDC, RFC8414])
def test_metadata_follows_the_settings(client, path):
    data = client.get(path).json()
    assert data["backchannel_token_delivery_modes_supported"] == ["push"]
    assert data["backchannel_user_code_parameter_supported"] is True
    # Omitting the member is how CIBA §4 says signed requests are not supported.
    assert "backchannel_authentication_request_signing_alg_values_supported" not in data
    # Push clients never use the CIBA grant at the token endpoint.
    assert CIBA_GRANT_TYPE not in data["grant_types_supported"]


@override_settings(CIBA={"BACKCHANNEL_AUTHENTICATION_ENDPOINT": "https://login.bank.example/ciba"})
def test_an_explicit_endpoint_url_is_published_as_given(client):
    assert client.get(OIDC).json()["backchannel_authentication_endpoint"] == "https://login.bank.example/ciba"


def test_introspection_publishes_the_methods_it_accepts(client):
    data = client.get(RFC8414).json()  # DOT's OpenID document names no introspection endpoint
    assert (
        data["introspection_endpoint_auth_methods_supported"] == data["token_endpoint_auth_methods_supported"]
    )
    assert (
        data["introspection_endpoint_auth_signing_alg_values_supported"]
        == data["token_endpoint_auth_signing_alg_values_supported"]
    )


@override_settings(CIBA={"PROFILE": "fapi-ciba", "DELIVERY_MODES": ["poll", "ping"]})
def test_under_fapi_introspection_publishes_no_client_secret_method(client):
    data = client.get(RFC8414).json()
    assert data["introspection_endpoint_auth_methods_supported"]
    assert not [
        m for m in data["introspection_endpoint_auth_methods_supported"] if m.startswith("client_secret")
    ]


@pytest.mark.parametrize("path", [OIDC, RFC8414])
def test_metadata_names_the_login_hint_token_formats_accepted(client, path):
    # An extension (CIBA Core defines no such member): a client-signed JWT is always accepted.
    assert client.get(path).json()["backchannel_login_hint_token_types_supported"] == ["client-signed-jwt"]


@override_settings(CIBA={"LOGIN_HINT_TOKEN_ISSUANCE": True})
@pytest.mark.parametrize("path", [OIDC, RFC8414])
def test_with_show_my_code_on_the_servers_own_tokens_are_named_too(client, path):
    assert client.get(path).json()["backchannel_login_hint_token_types_supported"] == [
        "client-signed-jwt",
        "server-issued-jwt",
    ]
