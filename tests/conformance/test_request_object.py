"""Signed authentication requests the suite expects refused: HTTP 400, ``invalid_request``, a body
of only error/error_description/error_uri (``ValidateErrorResponseFromBackchannelAuthenticationEndpoint``,
``CheckBackchannelAuthenticationEndpointHttpStatus400``,
``CheckErrorFromBackchannelAuthenticationEndpointErrorInvalidRequest``). Nothing is stored."""

from __future__ import annotations

import time

import jwt

from ciba.models import AuthenticationRequest
from tests.conformance.conftest import KEYS
from tests.protocol import oauth_error

MINUTE = 60


def refused(suite, request_object=None, **form):
    oauth_error(suite.backchannel(request_object, **form), 400, "invalid_request")
    assert not AuthenticationRequest.objects.exists()


def now():
    return int(time.time())


def test_fapi_ciba_id1_ensure_request_object_missing_aud_fails(suite):
    refused(suite, suite.request_object(aud=None))


def test_fapi_ciba_id1_ensure_request_object_bad_aud_fails(suite):
    refused(suite, suite.request_object(aud="https://www.other1.example.com/"))


def test_fapi_ciba_id1_ensure_request_object_missing_iss_fails(suite):
    refused(suite, suite.request_object(iss=None))


def test_fapi_ciba_id1_ensure_request_object_bad_iss_fails(suite_clients, ciba_mode, alice):
    first, second = suite_clients(ciba_mode)
    refused(first, first.request_object(iss=second.app.client_id))


def test_fapi_ciba_id1_ensure_request_object_missing_exp_fails(suite):
    refused(suite, suite.request_object(exp=None))


def test_fapi_ciba_id1_ensure_request_object_expired_exp_fails(suite):
    refused(
        suite, suite.request_object(iat=now() - 10 * MINUTE, nbf=now() - 10 * MINUTE, exp=now() - 5 * MINUTE)
    )


def test_fapi_ciba_id1_ensure_request_object_exp_is_70_minutes_in_future_fails(suite):
    refused(suite, suite.request_object(exp=now() + 70 * MINUTE))


def test_fapi_ciba_id1_ensure_request_object_missing_iat_fails(suite):
    refused(suite, suite.request_object(iat=None))


def test_fapi_ciba_id1_ensure_request_object_missing_nbf_fails(suite):
    refused(suite, suite.request_object(nbf=None))


def test_fapi_ciba_id1_ensure_request_object_nbf_is_10_minutes_in_future_fails(suite):
    refused(suite, suite.request_object(nbf=now() + 10 * MINUTE, exp=now() + 15 * MINUTE))


def test_fapi_ciba_id1_ensure_request_object_nbf_is_70_minutes_in_past_fails(suite):
    refused(suite, suite.request_object(nbf=now() - 70 * MINUTE))


def test_fapi_ciba_id1_ensure_request_object_missing_jti_fails(suite):
    refused(suite, suite.request_object(jti=None))


def test_fapi_ciba_id1_ensure_request_object_signature_algorithm_is_none_fails(suite):
    refused(suite, jwt.encode(suite.request_claims(), None, algorithm="none"))


def test_fapi_ciba_id1_ensure_request_object_signature_algorithm_is_bad_fails(suite):
    header, payload, signature = suite.request_object().split(".")
    corrupted = signature[:-6] + ("AAAAAA" if not signature.endswith("AAAAAA") else "BBBBBB")
    refused(suite, f"{header}.{payload}.{corrupted}")


def test_fapi_ciba_id1_ensure_request_object_signature_algorithm_is_rs256_fails(suite):
    """``...-signature-algorithm-is-RS256-fails``: the client registered PS256."""
    refused(suite, suite.request_object(alg="RS256"))


def test_fapi_ciba_id1_ensure_request_object_signed_by_other_client_fails(suite):
    other = KEYS["client2"] if suite.key is KEYS["client1"] else KEYS["client1"]
    refused(suite, suite.request_object(key=other))


def test_fapi_ciba_id1_ensure_unsigned_backchannel_authorization_request_fails(suite):
    """Plain form parameters from a client that registered a signing algorithm."""
    params = {
        k: str(v)
        for k, v in suite.request_claims().items()
        if k in ("scope", "login_hint", "binding_message")
    }
    response = suite.post("/o/backchannel-authentication/", params)
    oauth_error(response, 400, "invalid_request")
    assert not AuthenticationRequest.objects.exists()


def test_fapi_ciba_id1_ensure_authorization_request_with_multiple_hints_fails(suite):
    refused(suite, suite.request_object(login_hint="alice", login_hint_token="eyJhbGciOiJub25lIn0.e30."))
