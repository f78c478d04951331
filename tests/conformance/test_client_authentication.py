"""``private_key_jwt`` client authentication at both endpoints, and the token endpoint's
``auth_req_id`` ownership (the ``client_auth_type=private_key_jwt`` variant of the plan).

The ``mtls``-only modules (``...-ensure-different-client-id-and-issuer-...``,
``...-ensure-wrong-client-id-in-token-endpoint-request``,
``...-ensure-wrong-client-id-in-backchannel-authorization-request``) do not apply until mTLS
client authentication exists (issue 16)."""

from __future__ import annotations

from ciba.models import AuthenticationRequest
from tests.protocol import oauth_error

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


def test_fapi_ciba_id1_ensure_wrong_auth_req_id_in_token_endpoint_request(suite_clients, ciba_mode, alice):
    first, second = suite_clients(ciba_mode)
    auth_req_id = first.start()
    response = second.token(auth_req_id)
    oauth_error(response, 400, "invalid_grant")
    assert response["Content-Type"].startswith("application/json")
