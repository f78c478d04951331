"""Which algorithms a client's JWT assertions may use (RFC 7523, OIDC Core §9).

A client that registers ``token_endpoint_auth_signing_alg`` is held to it; one that registers
none may use any algorithm the server accepts for its method (OIDC Registration §2: "the
default, if omitted, is that any algorithm supported by the OP and the RP MAY be used"), with a
registered key that fits it. The security profile still narrows them (FAPI-CIBA: PS256, ES256),
``none`` is never accepted and an HMAC never authenticates a ``private_key_jwt`` client.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.test import override_settings
from jwt.algorithms import OKPAlgorithm

from tests.keys import assertion_claims, ec_key, public_jwk, rsa_key, sign
from tests.protocol import backchannel, form, oauth_error

ISSUER = "http://testserver/o"
BACKCHANNEL = "/o/backchannel-authentication/"
BODY = {"scope": "openid", "login_hint": "alice"}
RSA, EC, OKP = rsa_key(), ec_key(), ed25519.Ed25519PrivateKey.generate()


def okp_jwk(key: Any, kid: str) -> dict[str, Any]:
    data = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    data.update(kid=kid, use="sig")
    return data


def jwk_of(key: Any, kid: str) -> dict[str, Any]:
    return okp_jwk(key, kid) if isinstance(key, ed25519.Ed25519PrivateKey) else public_jwk(key, kid)


def authenticate(client: Any, app: Any, key: Any, alg: str, kid: str = "k1", body: Any = None) -> Any:
    """A backchannel request authenticated with an assertion signed by ``key`` with ``alg``."""
    assertion = sign(assertion_claims(app.client_id, ISSUER), key, alg, kid)
    params = {
        **(body or BODY),
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    return backchannel(client, app, None, form(params))


@pytest.mark.parametrize(
    "key, alg",
    [(EC, "ES256"), (RSA, "PS256"), (RSA, "RS256"), (RSA, "PS512"), (OKP, "EdDSA")],
    ids=["ES256", "PS256", "RS256", "PS512", "EdDSA"],
)
def test_a_client_that_registered_no_algorithm_may_use_any_its_key_fits(client, alice, make_client, key, alg):
    """The fault openid-client met: an EC-only client could never authenticate ("must be signed
    with RS256")."""
    app, _ = make_client(
        "poll", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [jwk_of(key, "k1")]}
    )
    assert app.token_endpoint_auth_signing_alg == ""
    response = authenticate(client, app, key, alg)
    assert response.status_code == 200, response.content


def test_an_assertion_whose_algorithm_no_registered_key_fits_is_refused(client, alice, make_client, caplog):
    """The client's only key is an EC key: an RS256 assertion (signed by an RSA key the client
    never registered, under the same kid) cannot verify."""
    app, _ = make_client(
        "poll", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [jwk_of(EC, "k1")]}
    )
    with caplog.at_level("INFO", logger="ciba.client_auth"):
        response = authenticate(client, app, RSA, "RS256")
    oauth_error(response, 401, "invalid_client")
    assert "No registered key fits" in caplog.text


def test_a_registered_algorithm_still_pins_the_clients_assertions(client, alice, make_client, caplog):
    keys = {"keys": [jwk_of(EC, "ec"), jwk_of(RSA, "rsa")]}
    app, _ = make_client(
        "poll",
        token_endpoint_auth_method="private_key_jwt",
        token_endpoint_auth_signing_alg="ES256",
        jwks=keys,
    )
    with caplog.at_level("INFO", logger="ciba.client_auth"):
        oauth_error(authenticate(client, app, RSA, "PS256", kid="rsa"), 401, "invalid_client")
    assert "must be signed with ES256" in caplog.text
    assert authenticate(client, app, EC, "ES256", kid="ec").status_code == 200


def test_an_hmac_keyed_with_the_clients_public_key_is_refused(client, alice, make_client):
    """The algorithm-confusion attack (RFC 8725 §2.1): a private_key_jwt client is never
    authenticated by an HMAC, whatever key an attacker chose for it."""
    app, _ = make_client(
        "poll", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [jwk_of(RSA, "k1")]}
    )
    public_pem = RSA.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = jwt.PyJWS()
    forged.unregister_algorithm("HS256")
    forged.register_algorithm("HS256", _UncheckedHmac(jwt.algorithms.HMACAlgorithm.SHA256))
    payload = json.dumps(assertion_claims(app.client_id, ISSUER)).encode()
    assertion = forged.encode(payload, public_pem, algorithm="HS256", headers={"kid": "k1"})
    params = {
        **BODY,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    oauth_error(backchannel(client, app, None, form(params)), 401, "invalid_client")


class _UncheckedHmac(jwt.algorithms.HMACAlgorithm):
    """PyJWT refuses to key an HMAC with a PEM: an attacker's library would not."""

    def prepare_key(self, key: Any) -> bytes:
        return key


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_a_client_secret_jwt_client_that_registered_no_algorithm_may_use_any_hmac(
    client, alice, make_client, alg
):
    secret = "a-client-secret-of-more-than-64-bytes-for-hs512-" + "x" * 32
    app, _ = make_client(
        "poll", token_endpoint_auth_method="client_secret_jwt", secret=secret, hash_client_secret=False
    )
    assert authenticate(client, app, secret.encode(), alg).status_code == 200


def test_under_fapi_ciba_a_client_without_a_registered_algorithm_may_use_ps256_or_es256_only(
    client, alice, make_client, settings
):
    app, _ = make_client(
        "poll",
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [jwk_of(RSA, "rsa"), jwk_of(EC, "ec")]},
        backchannel_authentication_request_signing_alg="PS256",
        id_token_signed_response_alg="PS256",
    )
    settings.CIBA = {**settings.CIBA, "PROFILE": "fapi-ciba", "DELIVERY_MODES": ["poll", "ping"]}
    assert app.ciba_problems() == []
    oauth_error(authenticate(client, app, RSA, "RS256", kid="rsa"), 401, "invalid_client")
    # Authenticated: the unsigned request is then refused, as FAPI-CIBA refuses every one.
    for key, alg, kid in ((RSA, "PS256", "rsa"), (EC, "ES256", "ec")):
        oauth_error(authenticate(client, app, key, alg, kid=kid), 400, "invalid_request")


def test_discovery_publishes_the_algorithms_a_client_without_a_registered_one_may_use(client, db):
    supported = client.get("/o/.well-known/openid-configuration").json()
    algs = supported["token_endpoint_auth_signing_alg_values_supported"]
    assert {"HS256", "HS512", "RS256", "PS256", "ES256", "EdDSA", "Ed25519", "Ed448"} <= set(algs)
    assert "none" not in algs
    with override_settings(CIBA={"PROFILE": "fapi-ciba", "DELIVERY_MODES": ["poll", "ping"]}):
        fapi = client.get("/o/.well-known/openid-configuration").json()
    assert fapi["token_endpoint_auth_signing_alg_values_supported"] == ["PS256", "ES256"]
