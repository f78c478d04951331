"""Client authentication with the registered method, at both CIBA endpoints (CIBA §7.1, RFC 7523)."""

import pytest
from django.contrib.auth.hashers import check_password as real_check_password
from django.test import override_settings
from django.utils import timezone

from ciba.constants import CIBA_GRANT_TYPE, JWT_BEARER_ASSERTION_TYPE
from ciba.models import AuthenticationRequest
from tests.conftest import basic_auth
from tests.keys import assertion_claims, ec_key, public_jwk, rsa_key, sign

URL = "/o/backchannel-authentication/"
FORM = "application/x-www-form-urlencoded"
ISSUER = "http://testserver/o"
BODY = "scope=openid&login_hint=alice"

KEY, OTHER_KEY = rsa_key(), rsa_key()
JWKS = {"keys": [public_jwk(KEY, "k1")]}


def post(client, body, auth=None, url=URL):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.post(url, body, content_type=FORM, **headers)


def with_assertion(body, assertion, assertion_type=JWT_BEARER_ASSERTION_TYPE):
    return f"{body}&client_assertion_type={assertion_type}&client_assertion={assertion}"


def error(response):
    return response.status_code, response.json()["error"]


@pytest.fixture
def pkjwt_client(make_client):
    app, _ = make_client("poll", token_endpoint_auth_method="private_key_jwt", jwks=JWKS)
    return app


@pytest.mark.parametrize(
    "aud",
    [ISSUER, "http://testserver/o/token/", "http://testserver/o/backchannel-authentication/", [ISSUER, "x"]],
)
def test_private_key_jwt_accepts_every_audience_that_names_this_server(client, alice, pkjwt_client, aud):
    assertion = sign(assertion_claims(pkjwt_client.client_id, aud), KEY, "RS256", "k1")
    assert post(client, with_assertion(BODY, assertion)).status_code == 200


@pytest.mark.parametrize(
    "claims, key, alg, why",
    [
        ({"aud": "https://other.example.com/"}, KEY, "RS256", "aud"),
        ({"exp": 1}, KEY, "RS256", "expired"),
        ({"exp": None}, KEY, "RS256", "exp"),
        ({"jti": None}, KEY, "RS256", "jti"),
        ({"iss": "someone-else"}, KEY, "RS256", "iss and sub"),
        ({}, OTHER_KEY, "RS256", "signature"),
        ({}, ec_key(), "ES256", "No registered key fits"),
        ({}, "a-shared-secret-as-long-as-32-bytes!", "HS256", "registered private_key_jwt"),
        ({"exp": 10**10}, KEY, "RS256", "too long"),
        ({"exp": 10**400}, KEY, "RS256", "not a usable number"),
    ],
)
def test_bad_client_assertions_are_invalid_client(client, alice, pkjwt_client, claims, key, alg, why, caplog):
    """The client is told only that authentication failed (ids and methods cannot be probed);
    the reason is in the log, for the operator. A malformed assertion is said to be one."""
    overrides = {"aud": ISSUER, **claims}
    assertion = sign(assertion_claims(pkjwt_client.client_id, **overrides), key, alg, "k1")
    with caplog.at_level("INFO", logger="ciba.client_auth"):
        response = post(client, with_assertion(BODY, assertion))
    assert error(response) == (401, "invalid_client")
    description = response.json()["error_description"]
    assert why in description if why == "iss and sub" else description == "Client authentication failed."
    assert why in (description + caplog.text)


def test_failures_read_the_same_whether_or_not_the_client_exists(client, alice, pkjwt_client):
    forged = sign(assertion_claims(pkjwt_client.client_id, ISSUER), "x" * 32, "HS256", "k1")
    unknown = sign(assertion_claims("no-such-client", ISSUER), "x" * 32, "HS256", "k1")
    answers = [post(client, with_assertion(BODY, a)).json() for a in (forged, unknown)]
    assert (
        answers[0]
        == answers[1]
        == {"error": "invalid_client", "error_description": "Client authentication failed."}
    )


def test_an_unsigned_assertion_is_refused(client, alice, pkjwt_client):
    assertion = sign(assertion_claims(pkjwt_client.client_id, ISSUER), None, "none")
    assert error(post(client, with_assertion(BODY, assertion))) == (401, "invalid_client")


def test_a_replayed_assertion_is_refused(client, alice, pkjwt_client):
    assertion = sign(assertion_claims(pkjwt_client.client_id, ISSUER), KEY, "RS256", "k1")
    assert post(client, with_assertion(BODY, assertion)).status_code == 200
    response = post(client, with_assertion(BODY, assertion))
    assert error(response) == (401, "invalid_client")


def test_the_assertion_type_must_be_jwt_bearer(client, alice, pkjwt_client):
    assertion = sign(assertion_claims(pkjwt_client.client_id, ISSUER), KEY, "RS256", "k1")
    assert error(post(client, with_assertion(BODY, assertion, "saml"))) == (401, "invalid_client")


def test_a_private_key_jwt_client_cannot_fall_back_to_its_secret(client, alice, make_client):
    app, secret = make_client("poll", token_endpoint_auth_method="private_key_jwt", jwks=JWKS)
    assert error(post(client, BODY, basic_auth(app.client_id, secret))) == (401, "invalid_client")


def test_two_methods_at_once_are_refused(client, alice, make_client):
    app, secret = make_client("poll")
    body = f"{BODY}&client_secret={secret}"
    assert error(post(client, body, basic_auth(app.client_id, secret))) == (401, "invalid_client")


def test_keys_are_fetched_from_jwks_uri_and_cached(client, alice, make_client, json_server):
    json_server.documents["/jwks.json"] = {"keys": [public_jwk(OTHER_KEY, "old"), public_jwk(KEY, "k1")]}
    app, _ = make_client(
        "poll", token_endpoint_auth_method="private_key_jwt", jwks_uri=json_server.url("/jwks.json")
    )
    for _ in range(2):
        assertion = sign(assertion_claims(app.client_id, ISSUER), KEY, "RS256", "k1")
        assert post(client, with_assertion(BODY, assertion)).status_code == 200
    assert json_server.hits["/jwks.json"] == 1


def test_an_unreachable_jwks_uri_is_invalid_client(client, alice, make_client, json_server):
    app, _ = make_client(
        "poll", token_endpoint_auth_method="private_key_jwt", jwks_uri=json_server.url("/gone")
    )
    assertion = sign(assertion_claims(app.client_id, ISSUER), KEY, "RS256", "k1")
    response = post(client, with_assertion(BODY, assertion))
    assert error(response) == (401, "invalid_client")


@override_settings(
    CIBA={
        "CALLBACK_ALLOW_HTTP": True,
        "CALLBACK_ALLOW_PRIVATE_NETWORKS": False,
        "ALLOW_LOW_ENTROPY_CLIENT_SECRETS": True,
    }
)
def test_a_jwks_uri_on_a_private_address_is_never_fetched(client, alice, make_client, json_server):
    from oauth2_provider.models import get_application_model

    json_server.documents["/jwks.json"] = JWKS
    app, _ = make_client("poll", token_endpoint_auth_method="private_key_jwt", jwks={"keys": JWKS["keys"]})
    get_application_model().objects.filter(pk=app.pk).update(
        jwks=None, jwks_uri=json_server.url("/jwks.json")
    )
    assertion = sign(assertion_claims(app.client_id, ISSUER), KEY, "RS256", "k1")
    assert error(post(client, with_assertion(BODY, assertion))) == (401, "invalid_client")
    assert json_server.hits == {}


def test_ec_keys_with_a_pinned_es256_algorithm(client, alice, make_client):
    key = ec_key()
    app, _ = make_client(
        "poll",
        token_endpoint_auth_method="private_key_jwt",
        token_endpoint_auth_signing_alg="ES256",
        jwks={"keys": [public_jwk(key, "ec")]},
    )
    assertion = sign(assertion_claims(app.client_id, ISSUER), key, "ES256", "ec")
    assert post(client, with_assertion(BODY, assertion)).status_code == 200


def test_client_secret_jwt(client, alice, make_client):
    secret = "s" * 48
    app, _ = make_client(
        "poll", secret=secret, token_endpoint_auth_method="client_secret_jwt", hash_client_secret=False
    )
    assertion = sign(assertion_claims(app.client_id, ISSUER), secret, "HS256")
    assert post(client, with_assertion(BODY, assertion)).status_code == 200
    forged = sign(assertion_claims(app.client_id, ISSUER), "x" * 48, "HS256")
    assert error(post(client, with_assertion(BODY, forged))) == (401, "invalid_client")


def test_the_token_endpoint_uses_the_same_client_authentication(client, alice, pkjwt_client):
    assertion = sign(assertion_claims(pkjwt_client.client_id, ISSUER), KEY, "RS256", "k1")
    auth_req_id = post(client, with_assertion(BODY, assertion)).json()["auth_req_id"]
    AuthenticationRequest.objects.get(auth_req_id=auth_req_id).transition_to(
        AuthenticationRequest.State.APPROVED, decided_at=timezone.now()
    )
    token_body = f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={auth_req_id}"
    replayed = post(client, with_assertion(token_body, assertion), url="/o/token/")
    assert replayed.status_code == 401 and replayed.json()["error"] == "invalid_client"
    fresh = sign(assertion_claims(pkjwt_client.client_id, "http://testserver/o/token/"), KEY, "RS256", "k1")
    response = post(client, with_assertion(token_body, fresh), url="/o/token/")
    assert response.status_code == 200, response.content
    assert "id_token" in response.json()


def test_a_ciba_client_must_use_its_registered_method_at_the_token_endpoint(client, alice, make_client):
    app, secret = make_client("poll")  # registered client_secret_basic
    body = f"grant_type={CIBA_GRANT_TYPE}&auth_req_id=x&client_id={app.client_id}&client_secret={secret}"
    response = post(client, body, url="/o/token/")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


class CountingCheckPassword:
    def __init__(self):
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return real_check_password(*args, **kwargs)


def test_repeat_authentications_with_a_slow_hashed_secret_pay_the_password_hash_once(
    client, alice, make_client, monkeypatch, no_user_limits
):
    counter = CountingCheckPassword()
    monkeypatch.setattr("ciba.client_auth.secret.check_password", counter)
    app, secret = make_client("poll", secret="kiosk-secret")  # weak: kept under the slow hash
    for _ in range(3):
        assert post(client, BODY, basic_auth(app.client_id, secret)).status_code == 200
    assert counter.calls == 1
    for _ in range(2):
        assert post(client, BODY, basic_auth(app.client_id, "wrong")).status_code == 401
    assert counter.calls == 3  # wrong secrets are never remembered


def test_rotating_the_secret_invalidates_the_remembered_one(client, alice, make_client):
    app, secret = make_client("poll")
    assert post(client, BODY, basic_auth(app.client_id, secret)).status_code == 200
    app.client_secret = "a-brand-new-secret-0123456789"
    app.save()
    assert post(client, BODY, basic_auth(app.client_id, secret)).status_code == 401
    assert post(client, BODY, basic_auth(app.client_id, "a-brand-new-secret-0123456789")).status_code == 200


@override_settings(CIBA={"CLIENT_SECRET_CACHE_SECONDS": 0, "ALLOW_LOW_ENTROPY_CLIENT_SECRETS": True})
def test_the_secret_cache_can_be_turned_off(client, alice, make_client, monkeypatch):
    counter = CountingCheckPassword()
    monkeypatch.setattr("ciba.client_auth.secret.check_password", counter)
    app, secret = make_client("poll", secret="kiosk-secret")  # weak: kept under the slow hash
    for _ in range(2):
        assert post(client, BODY, basic_auth(app.client_id, secret)).status_code == 200
    assert counter.calls == 2
