"""Malformed and hostile input gets a clear OAuth error, never a 500 (on SQLite and PostgreSQL)."""

import base64

import pytest

from ciba.constants import CIBA_GRANT_TYPE
from tests.conftest import basic_auth

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    "body",
    [
        "scope=openid&login_hint=ali%00ce",
        "scope=openid&login_hint=%ff%fe",
        "scope=openid%00&login_hint=alice",
        "scope=openid&login_hint=alice&requested_expiry=%EF%BC%91",  # full-width digit one
        "scope=openid&login_hint=alice&requested_expiry=99999999999999999999999999",
        "scope=openid&id_token_hint=a.b.c",
        "scope=openid&id_token_hint=%00.%00.%00",
        "scope=openid&login_hint_token=not-a-jwt",
        "scope=openid&login_hint=alice&request=e30.e30.",
        "scope=openid&login_hint=" + "a" * 100_000,
        "%%%&&&===",
        "scope",
    ],
)
def test_hostile_backchannel_parameters(client, alice, make_client, body):
    app, secret = make_client("poll")
    response = client.post(
        "/o/backchannel-authentication/",
        body,
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert response.json()["error"]


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"cli\x00ent:secret").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:secret").decode(),
        "Basic " + base64.b64encode(b"only-an-id").decode(),
        "Basic !!!!",
        "Bearer something",
    ],
)
def test_hostile_client_credentials(client, alice, authorization):
    response = client.post(
        "/o/backchannel-authentication/",
        "scope=openid&login_hint=alice",
        content_type=FORM,
        HTTP_AUTHORIZATION=authorization,
    )
    assert response.status_code == 401, response.content
    assert response.json()["error"] == "invalid_client"


def test_a_nul_in_any_backchannel_parameter_is_invalid_request(client, alice):
    response = client.post(
        "/o/backchannel-authentication/",
        "scope=openid&login_hint=alice&client_id=a%00b&client_secret=x",
        content_type=FORM,
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_a_nul_in_a_client_id_at_the_token_endpoint_is_invalid_client(client, alice):
    response = client.post(
        "/o/token/",
        f"grant_type={CIBA_GRANT_TYPE}&auth_req_id=x&client_id=a%00b&client_secret=x",
        content_type=FORM,
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("auth_req_id", ["a%00b", "%ff", "x" * 5000, ""])
def test_hostile_auth_req_ids_at_the_token_endpoint(client, alice, make_client, auth_req_id):
    app, secret = make_client("poll")
    response = client.post(
        "/o/token/",
        f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={auth_req_id}",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"] in ("invalid_grant", "invalid_request")


@pytest.mark.parametrize("content_type", [None, "", "text/plain"])
def test_a_bare_post_to_the_backchannel_endpoint_is_an_oauth_error(client, content_type):
    """``curl -X POST`` with no body (or an unparsed one) asks for nothing and proves nothing."""
    extra = {} if content_type is None else {"CONTENT_TYPE": content_type}
    response = client.generic("POST", "/o/backchannel-authentication/", b"", **extra)
    assert response.status_code in (400, 401), response.content
    assert response.json()["error"] in ("invalid_request", "invalid_client")
