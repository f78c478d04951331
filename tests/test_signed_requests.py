"""Signed authentication requests (CIBA §7.1.1): every rule, each answered invalid_request."""

import time

import pytest
from django.test import override_settings

from ciba.models import AuthenticationRequest
from tests.conftest import basic_auth
from tests.keys import public_jwk, request_object_claims, rsa_key, sign

URL = "/o/backchannel-authentication/"
ISSUER = "http://testserver/o"
KEY, OTHER_KEY = rsa_key(), rsa_key()


@pytest.fixture
def signer(make_client):
    app, secret = make_client(
        "ping", backchannel_authentication_request_signing_alg="PS256", jwks={"keys": [public_jwk(KEY, "k1")]}
    )
    return app, secret


def send(client, app, secret, token, extra=""):
    return client.post(
        URL,
        f"request={token}{extra}",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


def refused(response, words, status=400, code="invalid_request"):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code
    assert words in body["error_description"]
    assert not AuthenticationRequest.objects.exists()


def test_a_signed_request_is_accepted_and_its_claims_are_the_parameters(client, alice, signer):
    app, secret = signer
    claims = request_object_claims(
        app.client_id,
        ISSUER,
        scope="openid profile",
        binding_message="W4SCT",
        client_notification_token="nt-1",
        acr_values="urn:acr:high",
        requested_expiry="120",
    )
    response = send(client, app, secret, sign(claims, KEY, "PS256", "k1"))
    assert response.status_code == 200, response.content
    assert response.json()["expires_in"] == 120
    ar = AuthenticationRequest.objects.get()
    assert (ar.scope, ar.binding_message, ar.client_notification_token, ar.acr_values) == (
        "openid profile",
        "W4SCT",
        "nt-1",
        "urn:acr:high",
    )


def test_requested_expiry_may_be_a_json_number(client, alice, signer):
    app, secret = signer
    claims = request_object_claims(app.client_id, ISSUER, requested_expiry=60, client_notification_token="nt")
    assert send(client, app, secret, sign(claims, KEY, "PS256", "k1")).json()["expires_in"] == 60


def from_now(seconds: int):
    """A time claim ``seconds`` from when the test runs (a slow suite runs a test long after
    its parameters were collected: a value computed then had turned valid by then)."""
    return lambda now: now + seconds


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"aud": "https://www.other1.example.com/"}, "aud"),
        ({"exp": from_now(-120)}, "expired"),
        ({"nbf": from_now(600)}, "not valid yet"),
        ({"iat": from_now(600)}, "not valid yet"),
        ({"exp": from_now(70 * 60)}, "exceeds 3600"),
        ({"aud": None}, "aud"),
        ({"iss": None}, "iss"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
        ({"nbf": None}, "nbf"),
        ({"jti": None}, "jti"),
        ({"login_hint": 42}, "must be a string"),
        ({"login_hint": "ali\x00ce"}, "NUL"),
        ({"requested_expiry": True}, "requested_expiry"),
    ],
)
def test_bad_request_objects_are_refused(client, alice, signer, overrides, words):
    app, secret = signer
    now = int(time.time())  # when the test runs, not when it was collected
    overrides = {name: value(now) if callable(value) else value for name, value in overrides.items()}
    claims = request_object_claims(
        app.client_id, **{"aud": ISSUER, "client_notification_token": "nt", **overrides}
    )
    refused(send(client, app, secret, sign(claims, KEY, "PS256", "k1")), words)


def test_a_bad_signature_is_refused(client, alice, signer):
    app, secret = signer
    claims = request_object_claims(app.client_id, ISSUER, client_notification_token="nt")
    refused(send(client, app, secret, sign(claims, OTHER_KEY, "PS256", "k1")), "signature")


def test_a_tampered_request_is_refused(client, alice, signer):
    app, secret = signer
    header, payload, signature = sign(request_object_claims(app.client_id, ISSUER), KEY, "PS256", "k1").split(
        "."
    )
    other_payload = sign(
        request_object_claims(app.client_id, ISSUER, login_hint="bob"), KEY, "PS256", "k1"
    ).split(".")[1]
    refused(send(client, app, secret, f"{header}.{other_payload}.{signature}"), "signature")


@pytest.mark.parametrize(
    "alg, key, words",
    [
        ("none", None, "must use one of"),
        ("HS256", "x" * 32, "must use one of"),
        ("RS256", KEY, "registered PS256"),
    ],
)
def test_algorithms_other_than_the_registered_one_are_refused(client, alice, signer, alg, key, words):
    app, secret = signer
    claims = request_object_claims(app.client_id, ISSUER, client_notification_token="nt")
    refused(send(client, app, secret, sign(claims, key, alg, "k1")), words)


def test_a_replayed_jti_is_refused(client, alice, signer):
    app, secret = signer
    token = sign(
        request_object_claims(app.client_id, ISSUER, client_notification_token="nt"), KEY, "PS256", "k1"
    )
    assert send(client, app, secret, token).status_code == 200
    response = send(client, app, secret, token)
    assert response.status_code == 400 and "jti" in response.json()["error_description"]


def test_parameters_outside_the_jwt_are_refused(client, alice, signer):
    app, secret = signer
    token = sign(
        request_object_claims(app.client_id, ISSUER, client_notification_token="nt"), KEY, "PS256", "k1"
    )
    refused(send(client, app, secret, token, "&binding_message=outside"), "inside the JWT only")


def test_another_clients_signed_request_is_refused(client, alice, signer, make_client):
    app, secret = signer
    token = sign(request_object_claims("someone-else", ISSUER), KEY, "PS256", "k1")
    # The conformance suite (...-ensure-request-object-bad-iss-fails) expects invalid_request.
    refused(send(client, app, secret, token), "iss")


def test_a_client_id_that_differs_from_iss_is_invalid_client(client, alice, signer):
    app, secret = signer
    token = sign(
        request_object_claims(app.client_id, ISSUER, client_notification_token="nt"), KEY, "PS256", "k1"
    )
    refused(
        send(client, app, secret, token, "&client_id=other"), "client_id", status=401, code="invalid_client"
    )


def test_encrypted_request_objects_are_refused(client, alice, signer):
    app, secret = signer
    refused(send(client, app, secret, "a.b.c.d.e"), "Encrypted")


def test_a_client_without_a_registered_alg_may_not_sign(client, alice, make_client):
    app, secret = make_client("poll", jwks={"keys": [public_jwk(KEY, "k1")]})
    token = sign(request_object_claims(app.client_id, ISSUER), KEY, "PS256", "k1")
    refused(send(client, app, secret, token), "has not registered")


@override_settings(
    CIBA={
        "REQUEST_SIGNING_ALGS": ["ES256"],
        "CALLBACK_ALLOW_HTTP": True,
        "CALLBACK_ALLOW_PRIVATE_NETWORKS": True,
    }
)
def test_an_algorithm_the_server_no_longer_accepts_is_refused(client, alice, signer):
    app, secret = signer
    token = sign(request_object_claims(app.client_id, ISSUER), KEY, "PS256", "k1")
    refused(send(client, app, secret, token), "ES256")
