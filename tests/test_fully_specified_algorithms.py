"""RFC 9864's fully-specified ``Ed25519`` and ``Ed448``, accepted and advertised beside the
polymorphic ``EdDSA`` wherever a client signs a JWT: DPoP proofs, client assertions, signed
authentication requests and login hint tokens. Each name verifies only with a key on its own
curve. The honest tokens are signed with jwcrypto, another JOSE library than the server's."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
from django.core.exceptions import ValidationError
from jwcrypto import jwk
from jwcrypto import jwt as jwcrypto_jwt
from jwt.algorithms import OKPAlgorithm

from ciba.jose import JoseError, decode, validate_public_jwks, verify
from ciba.models import AuthenticationRequest
from ciba.services import approve
from tests.conftest import basic_auth
from tests.dpop import DPoPKey
from tests.keys import assertion_claims, request_object_claims
from tests.protocol import backchannel, form, oauth_error, poll

ISSUER = "http://testserver/o"
TOKEN_URL = "http://testserver/o/token/"
USERINFO_URL = "http://testserver/o/userinfo/"
OIDC = "/o/.well-known/openid-configuration"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CURVES = {"Ed25519": ed25519.Ed25519PrivateKey, "Ed448": ed448.Ed448PrivateKey}


def new_key(crv: str) -> Any:
    return CURVES[crv].generate()


def public(key: Any, kid: str = "k1", **members: Any) -> dict[str, Any]:
    return {**json.loads(OKPAlgorithm.to_jwk(key.public_key())), "kid": kid, "use": "sig", **members}


def signed(claims: dict[str, Any], key: Any, alg: str, kid: str = "k1") -> str:
    """A JWT as a client's JOSE library signs it (jwcrypto knows RFC 9864's names)."""
    token = jwcrypto_jwt.JWT(header={"alg": alg, "kid": kid}, claims=claims)
    token.make_signed_token(jwk.JWK.from_pyca(key))
    return token.serialize()


def forged(claims: dict[str, Any], key: Any, alg: str, kid: str = "k1") -> str:
    """A JWT whose header names ``alg`` but whose signature is by ``key`` on another curve, as
    a library that treats every EdDSA name alike would make it."""
    signer = jwt.PyJWS()
    if alg not in signer.get_algorithms():
        signer.register_algorithm(alg, OKPAlgorithm())
    return signer.encode(json.dumps(claims).encode(), key, algorithm=alg, headers={"kid": kid})


def with_assertion(app: Any, assertion: str) -> Any:
    params = {"scope": "openid", "login_hint": "alice", "client_assertion_type": ASSERTION_TYPE}
    return form({**params, "client_assertion": assertion})


# --- DPoP proofs (RFC 9449) -------------------------------------------------------------------


def dpop_key(crv: str) -> DPoPKey:
    key = DPoPKey("OKP", alg=crv)
    key.key = jwk.JWK.generate(kty="OKP", crv=crv)
    return key


@pytest.mark.parametrize("crv", ["Ed25519", "Ed448"])
def test_a_dpop_proof_signed_with_a_fully_specified_name_binds_the_tokens(client, alice, make_client, crv):
    """openid-client signs its proofs with ``alg: Ed25519``: tokens, then userinfo."""
    app, secret = make_client("poll", dpop_bound_access_tokens=True)
    key = dpop_key(crv)
    response = backchannel(client, app, secret, {"scope": "openid", "login_hint": "alice"})
    ar = AuthenticationRequest.objects.get(auth_req_id=response.json()["auth_req_id"])
    approve(ar, user=alice)
    granted = poll(client, app, secret, ar.auth_req_id, HTTP_DPOP=key.proof("POST", TOKEN_URL))
    assert granted.status_code == 200, granted.content
    tokens = granted.json()
    assert tokens["token_type"] == "DPoP"
    proof = key.proof("GET", USERINFO_URL, access_token=tokens["access_token"])
    userinfo = client.get(
        "/o/userinfo/", HTTP_AUTHORIZATION=f"DPoP {tokens['access_token']}", HTTP_DPOP=proof
    )
    assert userinfo.status_code == 200, userinfo.content


def test_a_dpop_proof_naming_ed25519_with_an_ed448_key_is_refused(client, alice, make_client):
    app, secret = make_client("poll", dpop_bound_access_tokens=True)
    key = dpop_key("Ed448")
    response = backchannel(client, app, secret, {"scope": "openid", "login_hint": "alice"})
    ar = AuthenticationRequest.objects.get(auth_req_id=response.json()["auth_req_id"])
    approve(ar, user=alice)
    # jwcrypto will not sign Ed25519 with an Ed448 key: the header is what a forger controls.
    proof = forged(
        {"jti": uuid.uuid4().hex, "htm": "POST", "htu": TOKEN_URL, "iat": int(time.time())},
        key.key.get_op_key("sign"),
        "Ed25519",
    )
    header = {"typ": "dpop+jwt", "alg": "Ed25519", "jwk": key.public_jwk}
    proof = _with_header(proof, header)
    body = oauth_error(poll(client, app, secret, ar.auth_req_id, HTTP_DPOP=proof), 400, "invalid_dpop_proof")
    assert "Ed25519" in body["error_description"]


def _with_header(token: str, header: dict[str, Any]) -> str:
    """The token with another protected header (the signature no longer covers it: the key's
    curve is refused before any signature is checked)."""
    encoded = jwt.utils.base64url_encode(json.dumps(header).encode()).decode()
    return ".".join([encoded, *token.split(".")[1:]])


# --- client assertions (RFC 7523) ------------------------------------------------------------


@pytest.mark.parametrize("crv", ["Ed25519", "Ed448"])
def test_a_client_assertion_signed_with_a_fully_specified_name_authenticates(client, alice, make_client, crv):
    key = new_key(crv)
    app, _ = make_client("poll", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public(key)]})
    assertion = signed(assertion_claims(app.client_id, ISSUER), key, crv)
    response = backchannel(client, app, None, with_assertion(app, assertion))
    assert response.status_code == 200, response.content


def test_an_ed25519_assertion_from_a_client_whose_key_is_on_ed448_is_refused(
    client, alice, make_client, caplog
):
    key = new_key("Ed448")
    app, _ = make_client("poll", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public(key)]})
    assertion = forged(assertion_claims(app.client_id, ISSUER), key, "Ed25519")
    with caplog.at_level("INFO", logger="ciba.client_auth"):
        oauth_error(backchannel(client, app, None, with_assertion(app, assertion)), 401, "invalid_client")
    assert "No registered key fits" in caplog.text
    # The same signature under the name that allows either curve is genuine.
    genuine = forged(assertion_claims(app.client_id, ISSUER), key, "EdDSA")
    assert backchannel(client, app, None, with_assertion(app, genuine)).status_code == 200


def test_a_client_that_registered_ed25519_is_held_to_it(client, alice, make_client):
    key = new_key("Ed25519")
    app, _ = make_client(
        "poll",
        token_endpoint_auth_method="private_key_jwt",
        token_endpoint_auth_signing_alg="Ed25519",
        jwks={"keys": [public(key)]},
    )
    polymorphic = signed(assertion_claims(app.client_id, ISSUER), key, "EdDSA")
    oauth_error(backchannel(client, app, None, with_assertion(app, polymorphic)), 401, "invalid_client")
    exact = signed(assertion_claims(app.client_id, ISSUER), key, "Ed25519")
    assert backchannel(client, app, None, with_assertion(app, exact)).status_code == 200


# --- signed authentication requests (CIBA §7.1.1) and login hint tokens ------------------------


@pytest.fixture
def ed25519_signer(make_client: Any, settings: Any) -> tuple[Any, str, Any]:
    settings.CIBA = {**settings.CIBA, "REQUEST_SIGNING_ALGS": ["PS256", "ES256", "Ed25519"]}
    key = new_key("Ed25519")
    app, secret = make_client(
        "poll", backchannel_authentication_request_signing_alg="Ed25519", jwks={"keys": [public(key)]}
    )
    return app, secret, key


def send_request_object(client: Any, app: Any, secret: str, token: str) -> Any:
    return client.post(
        "/o/backchannel-authentication/",
        f"request={token}",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


def test_a_request_object_signed_with_ed25519_is_accepted(client, alice, ed25519_signer):
    app, secret, key = ed25519_signer
    token = signed(request_object_claims(app.client_id, ISSUER, binding_message="EDDSA"), key, "Ed25519")
    response = send_request_object(client, app, secret, token)
    assert response.status_code == 200, response.content
    assert AuthenticationRequest.objects.get().binding_message == "EDDSA"
    published = client.get(OIDC).json()["backchannel_authentication_request_signing_alg_values_supported"]
    assert "Ed25519" in published


def test_a_request_object_naming_ed25519_signed_on_ed448_is_refused(client, alice, ed25519_signer):
    app, secret, _ = ed25519_signer
    token = forged(request_object_claims(app.client_id, ISSUER), new_key("Ed448"), "Ed25519")
    oauth_error(send_request_object(client, app, secret, token), 400, "invalid_request")
    assert not AuthenticationRequest.objects.exists()


def test_a_login_hint_token_signed_with_ed25519_names_the_user(client, alice, make_client):
    key = new_key("Ed25519")
    app, secret = make_client("poll", jwks={"keys": [public(key)]})
    claims = {"iss": app.client_id, "aud": ISSUER, "sub": "alice", "exp": int(time.time()) + 60}
    body = {"scope": "openid", "login_hint_token": signed(claims, key, "Ed25519")}
    response = backchannel(client, app, secret, body)
    assert response.status_code == 200, response.content
    assert AuthenticationRequest.objects.get().user == alice


# --- discovery and registration ----------------------------------------------------------------


def test_discovery_advertises_the_fully_specified_names_beside_eddsa(client, db, settings):
    data = client.get(OIDC).json()
    for member in ("dpop_signing_alg_values_supported", "token_endpoint_auth_signing_alg_values_supported"):
        assert {"EdDSA", "Ed25519", "Ed448"} <= set(data[member]), member
    settings.CIBA = {**settings.CIBA, "PROFILE": "fapi-ciba", "DELIVERY_MODES": ["poll", "ping"]}
    fapi = client.get(OIDC).json()
    assert not {"EdDSA", "Ed25519", "Ed448"} & set(fapi["token_endpoint_auth_signing_alg_values_supported"])
    assert not {"EdDSA", "Ed25519", "Ed448"} & set(fapi["dpop_signing_alg_values_supported"])


@pytest.mark.parametrize(
    "key",
    [
        public(new_key("Ed448")),
        public(new_key("Ed25519"), alg="Ed25519"),
        public(new_key("Ed448"), alg="Ed448"),
    ],
    ids=["Ed448 key", "alg Ed25519", "alg Ed448"],
)
def test_a_client_may_register_keys_for_the_fully_specified_names(key):
    validate_public_jwks({"keys": [key]})


def test_a_key_declared_for_ed25519_on_the_ed448_curve_is_refused_at_registration():
    with pytest.raises(ValidationError):
        validate_public_jwks({"keys": [public(new_key("Ed448"), alg="Ed25519")]})


# --- the one verifier all carriers share -------------------------------------------------------


def test_a_fully_specified_name_verifies_only_with_a_key_on_its_curve():
    ed448_key = new_key("Ed448")
    token = forged({"sub": "x"}, ed448_key, "Ed25519")
    with pytest.raises(JoseError, match="No registered key fits"):
        verify(token, [public(ed448_key)], algorithms=["Ed25519"])
    # Handed the key directly, the algorithm itself refuses the other curve.
    with pytest.raises(jwt.InvalidKeyError):
        decode(token, ed448_key.public_key(), alg="Ed25519")
    assert verify(forged({"sub": "x"}, ed448_key, "Ed448"), [public(ed448_key)], algorithms=["Ed448"]) == {
        "sub": "x"
    }


@pytest.mark.parametrize("x", [5, None, "!!"])
def test_a_malformed_ed448_key_is_refused_at_registration_not_a_crash(x):
    with pytest.raises(ValidationError):
        validate_public_jwks({"keys": [{"kty": "OKP", "crv": "Ed448", "x": x, "kid": "k1"}]})
