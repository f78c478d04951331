"""Client authentication at both endpoints: the ``private_key_jwt`` modules of the plan, its
``mtls`` modules (``tls_client_auth``, RFC 8705 §2), and the token endpoint's ``auth_req_id``
ownership (in both variants)."""

from __future__ import annotations

import pytest

from ciba.models import AuthenticationRequest
from tests.protocol import oauth_error


@pytest.fixture
def client_auth_type() -> str:
    """The assertion modules belong to the ``private_key_jwt`` variant; mTLS ones say so."""
    return "private_key_jwt"


#: What the suite accepts from the backchannel endpoint for a client that did not authenticate
#: properly: access_denied 403, invalid_request 400, invalid_client 401 or 400.
REFUSALS = {
    ("access_denied", 403),
    ("invalid_request", 400),
    ("invalid_client", 401),
    ("invalid_client", 400),
}


def refused_at_backchannel(response):
    body = response.json()
    assert (body.get("error"), response.status_code) in REFUSALS, (response.status_code, body)
    oauth_error(response, response.status_code, body["error"])
    assert not AuthenticationRequest.objects.exists()


def test_fapi_ciba_id1_ensure_without_client_assertion_in_backchannel_authorization_request(suite):
    response = suite.post(
        "/o/backchannel-authentication/",
        {"request": suite.request_object(), "client_id": suite.app.client_id},
        assertion=None,
    )
    refused_at_backchannel(response)


def test_fapi_ciba_id1_ensure_client_assertion_signature_algorithm_in_backchannel_authorization_request_is_rs256_fails(  # noqa: E501 - the suite's name
    suite,
):
    response = suite.post(
        "/o/backchannel-authentication/",
        {"request": suite.request_object()},
        assertion=suite.assertion(alg="RS256"),
    )
    refused_at_backchannel(response)


def test_fapi_ciba_id1_ensure_without_client_assertion_in_token_endpoint_request(suite):
    auth_req_id = suite.start()
    response = suite.post(
        "/o/token/",
        {
            "grant_type": "urn:openid:params:grant-type:ciba",
            "auth_req_id": auth_req_id,
            "client_id": suite.app.client_id,
        },
        assertion=None,
    )
    body = response.json()
    assert response.status_code in (400, 401) and body["error"] in ("invalid_client", "invalid_request"), body


def test_fapi_ciba_id1_ensure_client_assertion_signature_algorithm_in_token_endpoint_request_is_rs256_fails(
    suite,
):
    auth_req_id = suite.start()
    response = suite.token(auth_req_id, assertion=suite.assertion(alg="RS256"))
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client", (
        response.content
    )


def test_fapi_ciba_id1_ensure_client_assertion_with_iss_aud_to_token_endpoint_succeeds(suite):
    """An assertion whose ``aud`` is the issuer (not the token endpoint URL) is accepted."""
    auth_req_id = suite.start()
    suite.automated_approval(auth_req_id)
    if suite.app.backchannel_token_delivery_mode == "ping":
        suite.ping_received(auth_req_id)
    response = suite.token(auth_req_id, assertion=suite.assertion(aud="http://testserver/o"))
    suite.token_response(response, auth_req_id)


@pytest.mark.parametrize("auth", ["private_key_jwt", "mtls"])
def test_fapi_ciba_id1_ensure_wrong_auth_req_id_in_token_endpoint_request(
    suite_clients, ciba_mode, alice, auth
):
    first, second = suite_clients(ciba_mode, auth)
    auth_req_id = first.start()
    response = second.token(auth_req_id)
    oauth_error(response, 400, "invalid_grant")
    assert response["Content-Type"].startswith("application/json")


# --- the mtls variant's own modules ----------------------------------------------------------


def test_fapi_ciba_id1_ensure_wrong_client_id_in_backchannel_authorization_request(suite_clients, alice):
    """client1's certificate with client2's ``client_id``: refused (``invalid_client`` and co)."""
    first, second = suite_clients("poll", "mtls")
    response = first.post(
        "/o/backchannel-authentication/",
        {"request": first.request_object(), "client_id": second.app.client_id},
        assertion=None,
    )
    refused_at_backchannel(response)


def test_fapi_ciba_id1_ensure_different_client_id_and_issuer_in_backchannel_authorization_request(
    suite_clients, alice
):
    """Authenticated by client1's certificate, naming client2: 401 ``invalid_client`` exactly."""
    first, second = suite_clients("poll", "mtls")
    response = second.post(
        "/o/backchannel-authentication/",
        {"request": first.request_object(), "client_id": second.app.client_id},
        assertion=None,
        HTTP_X_SSL_CLIENT_CERT=first.cert.escaped_pem,
    )
    oauth_error(response, 401, "invalid_client")
    assert not AuthenticationRequest.objects.exists()


def test_fapi_ciba_id1_ensure_wrong_client_id_in_token_endpoint_request(suite_clients, alice):
    first, second = suite_clients("poll", "mtls")
    auth_req_id = first.start()
    first.automated_approval(auth_req_id)
    response = first.post(
        "/o/token/",
        {
            "grant_type": "urn:openid:params:grant-type:ciba",
            "auth_req_id": auth_req_id,
            "client_id": second.app.client_id,
        },
        assertion=None,
    )
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client", (
        response.content
    )
    # client1 still collects its tokens.
    first.token_response(first.token(auth_req_id), auth_req_id)
