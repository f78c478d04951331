"""The three ways a client names the user (CIBA §7.1): login_hint, id_token_hint, login_hint_token."""

import time

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from ciba.models import AuthenticationRequest
from tests.conftest import basic_auth, start_request
from tests.keys import public_jwk, rsa_key, sign

URL = "/o/backchannel-authentication/"
ISSUER = "http://testserver/o"
KEY = rsa_key()


def ask(client, app, secret, body):
    return client.post(
        URL,
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


def user_of(response):
    assert response.status_code == 200, response.content
    return AuthenticationRequest.objects.get(auth_req_id=response.json()["auth_req_id"]).user


def error_of(response):
    assert response.status_code == 400, response.content
    return response.json()["error"]


def test_login_hint_is_a_username_or_an_email(client, alice, make_client):
    app, secret = make_client("poll")
    assert user_of(ask(client, app, secret, "scope=openid&login_hint=alice")) == alice
    assert user_of(ask(client, app, secret, "scope=openid&login_hint=ALICE%40example.com")) == alice


def test_an_email_shared_by_two_accounts_identifies_nobody(client, alice, make_client):
    get_user_model().objects.create_user("alice2", "alice@example.com")
    app, secret = make_client("poll")
    assert (
        error_of(ask(client, app, secret, "scope=openid&login_hint=alice%40example.com")) == "unknown_user_id"
    )


@pytest.fixture
def id_token(client, alice, make_client):
    """An ID token this server issued to a client, through the real poll flow."""
    return issue_id_token(client, *make_client("poll"))


def issue_id_token(client, app, secret):
    auth_req_id = start_request(client, app, secret, "scope=openid&login_hint=alice")
    AuthenticationRequest.objects.get(auth_req_id=auth_req_id).transition_to(
        AuthenticationRequest.State.APPROVED, decided_at=timezone.now()
    )
    response = client.post(
        "/o/token/",
        f"grant_type=urn:openid:params:grant-type:ciba&auth_req_id={auth_req_id}",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    return app, secret, response.json()["id_token"]


def test_id_token_hint_names_the_user_of_an_id_token_we_issued(client, alice, id_token):
    app, secret, token = id_token
    assert user_of(ask(client, app, secret, f"scope=openid&id_token_hint={token}")) == alice


def test_an_expired_id_token_is_still_a_valid_hint(client, alice, make_client, settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "ID_TOKEN_EXPIRE_SECONDS": -3600}
    app, secret, token = issue_id_token(client, *make_client("poll"))
    assert jwt.decode(token, options={"verify_signature": False})["exp"] < time.time() - 3000
    assert user_of(ask(client, app, secret, f"scope=openid&id_token_hint={token}")) == alice


def test_an_id_token_that_expired_too_long_ago_is_refused(client, alice, make_client, settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "ID_TOKEN_EXPIRE_SECONDS": -3600}
    settings.CIBA = {**settings.CIBA, "ID_TOKEN_HINT_MAX_AGE": 600}
    app, secret, token = issue_id_token(client, *make_client("poll"))
    response = ask(client, app, secret, f"scope=openid&id_token_hint={token}")
    assert error_of(response) == "invalid_request" and "too long ago" in response.json()["error_description"]


def test_an_hs256_clients_id_token_is_a_valid_hint(client, alice, make_client):
    app, secret = make_client("poll", algorithm="HS256", hash_client_secret=False)
    _, _, token = issue_id_token(client, app, secret)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert user_of(ask(client, app, secret, f"scope=openid&id_token_hint={token}")) == alice


def test_an_id_token_whose_aud_holds_a_non_string_is_refused(client, alice, make_client, settings):
    from ciba.jose import server_keys

    app, secret = make_client("poll")
    pem = settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]
    kid = server_keys()[0]["kid"]
    claims = {"iss": ISSUER, "aud": [app.client_id, 42], "sub": str(alice.pk), "exp": int(time.time()) + 60}
    token = jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})
    assert error_of(ask(client, app, secret, f"scope=openid&id_token_hint={token}")) == "invalid_request"


def test_an_id_token_issued_to_another_client_is_refused(client, alice, id_token, make_client):
    _, _, token = id_token
    other, other_secret = make_client("poll")
    assert (
        error_of(ask(client, other, other_secret, f"scope=openid&id_token_hint={token}")) == "invalid_request"
    )


def test_an_id_token_we_did_not_sign_is_refused(client, alice, make_client):
    app, secret = make_client("poll")
    forged = sign(
        {"iss": ISSUER, "aud": app.client_id, "sub": str(alice.pk), "exp": int(time.time()) + 60},
        KEY,
        "RS256",
    )
    assert error_of(ask(client, app, secret, f"scope=openid&id_token_hint={forged}")) == "invalid_request"


@pytest.fixture
def hint_client(make_client):
    return make_client("poll", jwks={"keys": [public_jwk(KEY, "k1")]})


def lht(app, **overrides):
    claims = {"iss": app.client_id, "aud": ISSUER, "sub": "alice", "exp": int(time.time()) + 60}
    claims.update(overrides)
    return sign({k: v for k, v in claims.items() if v is not None}, KEY, "RS256", "k1")


def test_login_hint_token_signed_by_the_client_names_the_user(client, alice, hint_client):
    app, secret = hint_client
    assert user_of(ask(client, app, secret, f"scope=openid&login_hint_token={lht(app)}")) == alice


def test_an_expired_login_hint_token_gets_its_own_error(client, alice, hint_client):
    app, secret = hint_client
    token = lht(app, exp=int(time.time()) - 3600)
    assert (
        error_of(ask(client, app, secret, f"scope=openid&login_hint_token={token}"))
        == "expired_login_hint_token"
    )


@pytest.mark.parametrize("overrides", [{"aud": "https://elsewhere.example"}, {"iss": "other"}, {"sub": None}])
def test_a_login_hint_token_with_bad_claims_is_invalid_request(client, alice, hint_client, overrides):
    app, secret = hint_client
    assert (
        error_of(ask(client, app, secret, f"scope=openid&login_hint_token={lht(app, **overrides)}"))
        == "invalid_request"
    )


def test_a_login_hint_token_for_an_unknown_user_is_unknown_user_id(client, alice, hint_client):
    app, secret = hint_client
    assert (
        error_of(ask(client, app, secret, f"scope=openid&login_hint_token={lht(app, sub='nobody')}"))
        == "unknown_user_id"
    )


def test_a_login_hint_token_from_a_client_without_keys_is_invalid_request(
    client, alice, hint_client, make_client
):
    app, _ = hint_client
    keyless, secret = make_client("poll")
    assert (
        error_of(ask(client, keyless, secret, f"scope=openid&login_hint_token={lht(app)}"))
        == "invalid_request"
    )


# --- under the FAPI-CIBA profile (FAPI 1 Advanced §8.6: PS256 and ES256 only) -------------------


def resolve_under_fapi(settings, rf, **hint):
    """The default resolver, asked directly: under FAPI-CIBA a backchannel request must also be
    a signed request object over mTLS or private_key_jwt, which is not what is tested here."""
    from ciba.backends.users import UsernameOrEmailUserResolver

    settings.CIBA = {**settings.CIBA, "PROFILE": "fapi-ciba"}
    return UsernameOrEmailUserResolver().resolve(http_request=rf.post(URL), **hint)


@pytest.mark.parametrize("alg", ["PS256", "ES256"])
def test_under_fapi_a_login_hint_token_signed_with_ps256_or_es256_names_the_user(
    settings, rf, alice, make_client, alg
):
    from tests.keys import ec_key

    key = ec_key() if alg == "ES256" else KEY
    app, _ = make_client("poll", jwks={"keys": [public_jwk(key, "k1")]})
    claims = {"iss": app.client_id, "aud": ISSUER, "sub": "alice", "exp": int(time.time()) + 60}
    token = sign(claims, key, alg, "k1")
    assert resolve_under_fapi(settings, rf, client=app, login_hint_token=token) == alice


def test_under_fapi_a_login_hint_token_signed_with_rs256_is_invalid_request(settings, rf, alice, hint_client):
    from ciba.errors import InvalidRequest

    app, _ = hint_client
    with pytest.raises(InvalidRequest, match="PS256 or ES256"):
        resolve_under_fapi(settings, rf, client=app, login_hint_token=lht(app))


def test_under_fapi_an_rs256_id_token_is_not_a_hint(settings, rf, alice, id_token):
    from ciba.errors import InvalidRequest

    app, _, token = id_token
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    with pytest.raises(InvalidRequest, match="id_token_hint"):
        resolve_under_fapi(settings, rf, client=app, id_token_hint=token)
