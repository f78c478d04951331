"""Registering CIBA clients: what the model accepts, refuses, and lets them do."""

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from oauth2_provider.models import get_application_model

from ciba.constants import ASYMMETRIC_JWS_ALGORITHMS, CIBA_GRANT_TYPE, HMAC_JWS_ALGORITHMS

Application = get_application_model()

RSA_PUBLIC_JWK = {
    "kty": "RSA",
    "kid": "k1",
    "n": (
        "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRRO"
        "SBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJ"
        "Q4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrN"
        "hZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"
    ),
    "e": "AQAB",
}


def ciba_client(**fields):
    values = {
        "name": "Kiosk",
        "client_type": Application.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": CIBA_GRANT_TYPE,
        "backchannel_token_delivery_mode": "poll",
        "client_secret": "kiosk-TMEycFAFUFR7ErGCPuvGHv4WFF0lCtPZc3rg8AmSl-0",
        "algorithm": "RS256",
    }
    values.update(fields)
    return Application(**values)


def errors_of(app):
    with pytest.raises(ValidationError) as exc:
        app.full_clean()
    return exc.value.message_dict


@pytest.mark.django_db
def test_a_poll_client_with_defaults_is_valid():
    ciba_client().full_clean()


@pytest.mark.django_db
def test_the_ciba_grant_needs_a_delivery_mode():
    assert "backchannel_token_delivery_mode" in errors_of(ciba_client(backchannel_token_delivery_mode=""))


@pytest.mark.django_db
@override_settings(CIBA={"DELIVERY_MODES": ["poll", "ping"]})
def test_a_mode_the_server_does_not_support_is_refused():
    app = ciba_client(
        backchannel_token_delivery_mode="push",
        backchannel_client_notification_endpoint="https://c.example/cb",
    )
    assert "supports the delivery modes poll, ping only" in " ".join(
        errors_of(app)["backchannel_token_delivery_mode"]
    )


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["ping", "push"])
def test_ping_and_push_need_a_notification_endpoint(mode):
    assert "backchannel_client_notification_endpoint" in errors_of(
        ciba_client(backchannel_token_delivery_mode=mode)
    )


@pytest.mark.django_db
@override_settings(CIBA={})
@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://client.example.com/cb", "https"),
        ("https://127.0.0.1/cb", "public host"),
        ("https://localhost:8443/cb", "public host"),
        ("https://10.1.2.3/cb", "public host"),
        ("https://169.254.169.254/latest", "public host"),
        ("https://[::1]/cb", "public host"),
        ("https://user:pw@client.example.com/cb", "credentials"),
        ("https://client.example.com/cb#frag", "fragment"),
    ],
)
def test_notification_endpoints_must_be_public_https(url, reason):
    app = ciba_client(backchannel_token_delivery_mode="ping", backchannel_client_notification_endpoint=url)
    assert reason in " ".join(errors_of(app)["backchannel_client_notification_endpoint"])


@pytest.mark.django_db
@override_settings(CIBA={"CALLBACK_ALLOW_HTTP": True, "CALLBACK_ALLOW_PRIVATE_NETWORKS": True})
def test_development_settings_allow_plain_http_to_loopback():
    ciba_client(
        backchannel_token_delivery_mode="ping",
        backchannel_client_notification_endpoint="http://127.0.0.1:9000/cb",
    ).full_clean()


@pytest.mark.django_db
def test_a_valid_push_client_saves():
    app = ciba_client(
        backchannel_token_delivery_mode="push",
        backchannel_client_notification_endpoint="https://client.example.com/cb",
    )
    app.full_clean()
    app.save()
    assert Application.objects.get(pk=app.pk).backchannel_token_delivery_mode == "push"


@pytest.mark.django_db
def test_ciba_clients_must_be_confidential():
    assert "client_type" in errors_of(ciba_client(client_type=Application.CLIENT_PUBLIC))


@pytest.mark.django_db
@override_settings(CIBA={"REQUEST_SIGNING_ALGS": ["PS256"]})
def test_the_signing_alg_must_be_one_the_server_accepts():
    app = ciba_client(backchannel_authentication_request_signing_alg="RS256", jwks={"keys": [RSA_PUBLIC_JWK]})
    assert "PS256 only" in " ".join(errors_of(app)["backchannel_authentication_request_signing_alg"])


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_none_and_hmac_can_never_be_registered_as_signing_alg(alg):
    app = ciba_client(backchannel_authentication_request_signing_alg=alg, jwks={"keys": [RSA_PUBLIC_JWK]})
    assert "backchannel_authentication_request_signing_alg" in errors_of(app)


@pytest.mark.django_db
def test_signed_requests_need_the_clients_keys():
    assert "jwks" in errors_of(ciba_client(backchannel_authentication_request_signing_alg="RS256"))


@pytest.mark.django_db
def test_private_key_jwt_needs_jwks_or_jwks_uri_but_not_both():
    assert "jwks" in errors_of(ciba_client(token_endpoint_auth_method="private_key_jwt"))
    both = ciba_client(
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [RSA_PUBLIC_JWK]},
        jwks_uri="https://client.example.com/jwks.json",
    )
    assert "not both" in " ".join(errors_of(both)["jwks_uri"])
    ciba_client(token_endpoint_auth_method="private_key_jwt", jwks={"keys": [RSA_PUBLIC_JWK]}).full_clean()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "jwks",
    [
        {"keys": []},
        ["not", "a", "set"],
        {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
        {"keys": [dict(RSA_PUBLIC_JWK, d="private-part")]},
        {"keys": [{"kty": "RSA", "n": "x"}]},
    ],
)
def test_jwks_must_be_a_set_of_usable_public_keys(jwks):
    assert "jwks" in errors_of(ciba_client(token_endpoint_auth_method="private_key_jwt", jwks=jwks))


@pytest.mark.django_db
def test_client_secret_jwt_needs_the_secret_stored_unhashed():
    assert "hash_client_secret" in errors_of(ciba_client(token_endpoint_auth_method="client_secret_jwt"))
    ciba_client(token_endpoint_auth_method="client_secret_jwt", hash_client_secret=False).full_clean()


@pytest.mark.django_db
def test_user_code_parameter_needs_server_support():
    assert "backchannel_user_code_parameter" in errors_of(ciba_client(backchannel_user_code_parameter=True))


@pytest.mark.django_db
def test_dot_validation_still_applies_and_is_reported_with_ours():
    app = ciba_client(authorization_grant_type="authorization-code", backchannel_token_delivery_mode="ping")
    errors = errors_of(app)
    assert "redirect_uris" in errors  # DOT's own rule
    assert "backchannel_client_notification_endpoint" in errors  # ours, in the same report


@pytest.mark.parametrize(
    "mode, ciba_grant, refresh",
    [("poll", True, True), ("ping", True, True), ("push", False, True), ("", False, False)],
)
def test_allowed_grants_follow_the_delivery_mode(mode, ciba_grant, refresh):
    app = ciba_client(backchannel_token_delivery_mode=mode)
    assert app.allows_grant_type(CIBA_GRANT_TYPE) is ciba_grant
    assert app.allows_grant_type("refresh_token") is refresh


def test_a_non_ciba_client_keeps_its_own_grant():
    app = ciba_client(authorization_grant_type="client-credentials", backchannel_token_delivery_mode="")
    assert app.allows_grant_type("client-credentials")
    assert not app.allows_grant_type(CIBA_GRANT_TYPE)


@pytest.mark.django_db
def test_the_assertion_algorithm_must_fit_the_method():
    hs_for_keys = ciba_client(
        token_endpoint_auth_method="private_key_jwt",
        token_endpoint_auth_signing_alg="HS256",
        jwks={"keys": [RSA_PUBLIC_JWK]},
    )
    assert "token_endpoint_auth_signing_alg" in errors_of(hs_for_keys)
    rs_for_secret = ciba_client(
        token_endpoint_auth_method="client_secret_jwt",
        token_endpoint_auth_signing_alg="RS256",
        hash_client_secret=False,
    )
    assert "token_endpoint_auth_signing_alg" in errors_of(rs_for_secret)


def test_an_empty_assertion_algorithm_registers_none_and_the_method_bounds_any():
    """OIDC Registration §2: without token_endpoint_auth_signing_alg any algorithm of the method
    will do; a registered one pins it; an HMAC never serves private_key_jwt, whatever a row says."""
    assert ciba_client(token_endpoint_auth_method="private_key_jwt").client_assertion_algs == (
        ASYMMETRIC_JWS_ALGORITHMS
    )
    assert (
        ciba_client(token_endpoint_auth_method="client_secret_jwt").client_assertion_algs
        == HMAC_JWS_ALGORITHMS
    )
    pinned = ciba_client(
        token_endpoint_auth_method="private_key_jwt", token_endpoint_auth_signing_alg="PS256"
    )
    assert pinned.client_assertion_algs == ("PS256",)
    hmac = ciba_client(token_endpoint_auth_method="private_key_jwt", token_endpoint_auth_signing_alg="HS256")
    assert hmac.client_assertion_algs == ()


def test_the_fapi_profile_governs_ciba_clients_only(db, settings):
    """A site's device app (authorization code, public) stays registrable under the profile."""
    settings.CIBA = {**settings.CIBA, "PROFILE": "fapi-ciba", "DELIVERY_MODES": ["poll", "ping"]}
    device_app = Application(
        name="Phone app",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://app.example.com/cb",
        algorithm="RS256",
    )
    device_app.full_clean()
    assert device_app.profile_problems() == []
    kiosk = ciba_client()
    assert {field for field, _ in kiosk.profile_problems()} >= {
        "token_endpoint_auth_method",
        "backchannel_authentication_request_signing_alg",
        "id_token_signed_response_alg",
    }
