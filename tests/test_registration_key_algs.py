"""A client's inline keys must be able to produce the algorithms it registered to sign with
(``ciba.registration_rules``): refused at registration — the admin, ``clean()``,
``manage.py ciba_client`` and dynamic registration alike — instead of every request failing."""

from functools import cache

import pytest
from django.core.exceptions import ValidationError
from jwcrypto.jwk import JWK

from ciba.registration_rules import can_produce, key_requirement, problems
from tests.test_client_registration import ciba_client

KEY_ALG_CODES = {"jwks_no_key_for_alg", "jwks_no_signing_key"}


@cache
def public_jwk(kty, crv=None):
    params = {"kty": kty, "size": 2048} if kty == "RSA" else {"kty": kty, "crv": crv}
    return JWK.generate(**params).export_public(as_dict=True)


RSA = ("RSA", None)
P256, P384, P521 = ("EC", "P-256"), ("EC", "P-384"), ("EC", "P-521")
ED25519, ED448 = ("OKP", "Ed25519"), ("OKP", "Ed448")
EVERY_KEY = (RSA, P256, P384, P521, ED25519, ED448)

#: Each algorithm with the keys that can produce it (RFC 7518 §3, RFC 8037, RFC 9864).
PRODUCERS = {
    "RS256": {RSA},
    "RS512": {RSA},
    "PS256": {RSA},
    "PS384": {RSA},
    "ES256": {P256},
    "ES384": {P384},
    "ES512": {P521},
    "EdDSA": {ED25519, ED448},
    "Ed25519": {ED25519},
    "Ed448": {ED448},
}


def jwks(*keys, **members):
    return {"keys": [{**public_jwk(*key), **members} for key in keys]}


def key_alg_problems(**fields):
    return [p for p in problems(ciba_client(**fields)) if p.code in KEY_ALG_CODES]


def assertion_client(alg, keys):
    return {
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": alg,
        "jwks": keys,
    }


@pytest.mark.parametrize("alg", PRODUCERS)
@pytest.mark.parametrize("key", EVERY_KEY, ids=lambda key: key[1] or key[0])
def test_only_a_key_of_the_right_type_and_curve_produces_an_algorithm(alg, key):
    assert can_produce(public_jwk(*key), alg) is (key in PRODUCERS[alg])


def test_the_requirement_is_read_from_the_algorithm_name():
    assert key_requirement("PS512") == ("RSA", ())
    assert key_requirement("ES384") == ("EC", ("P-384",))
    assert key_requirement("Ed448") == ("OKP", ("Ed448",))
    assert key_requirement("HS256") is None and key_requirement("none") is None
    assert not can_produce(public_jwk(*RSA), "HS256")


def test_an_es256_client_assertion_with_only_an_rsa_key_is_refused_at_the_key_set():
    [problem] = key_alg_problems(**assertion_client("ES256", jwks(RSA)))
    assert (problem.field, problem.code) == ("jwks", "jwks_no_key_for_alg")
    assert "ES256" in str(problem.message) and "an EC key on P-256" in str(problem.message)
    assert "token_endpoint_auth_signing_alg" in str(problem.message)
    assert not problem.blocking  # a stored row is not refused for it at request time
    assert key_alg_problems(**assertion_client("ES256", jwks(RSA, P256))) == []


def test_an_es256_client_with_a_p384_key_is_refused():
    assert [p.code for p in key_alg_problems(**assertion_client("ES256", jwks(P384)))] == [
        "jwks_no_key_for_alg"
    ]
    assert key_alg_problems(**assertion_client("ES384", jwks(P384))) == []


def test_an_encryption_key_or_a_key_declared_for_another_algorithm_does_not_count():
    assert key_alg_problems(**assertion_client("PS256", jwks(RSA, use="enc")))
    assert key_alg_problems(**assertion_client("PS256", jwks(RSA, alg="RS256")))
    assert key_alg_problems(**assertion_client("PS256", jwks(RSA, alg="PS256", use="sig"))) == []
    assert key_alg_problems(**assertion_client("Ed25519", jwks(ED25519, alg="EdDSA")))


def test_the_request_signing_algorithm_needs_a_key_too_whatever_the_authentication_method():
    [problem] = key_alg_problems(backchannel_authentication_request_signing_alg="ES256", jwks=jwks(RSA))
    assert problem.code == "jwks_no_key_for_alg"
    assert "backchannel_authentication_request_signing_alg" in str(problem.message)
    assert key_alg_problems(backchannel_authentication_request_signing_alg="PS256", jwks=jwks(RSA)) == []


def test_each_registered_algorithm_is_reported_on_its_own():
    found = key_alg_problems(
        **assertion_client("ES256", jwks(ED25519)), backchannel_authentication_request_signing_alg="PS256"
    )
    assert [p.code for p in found] == ["jwks_no_key_for_alg", "jwks_no_key_for_alg"]
    assert "ES256" in str(found[0].message) and "PS256" in str(found[1].message)


def test_an_empty_assertion_algorithm_accepts_any_usable_signing_key():
    """Not registered means any algorithm the server accepts (OpenID Connect Registration §2)."""
    assert key_alg_problems(**assertion_client("", jwks(P256))) == []
    assert key_alg_problems(**assertion_client("", jwks(ED25519))) == []
    [problem] = key_alg_problems(**assertion_client("", jwks(RSA, P256, use="enc")))
    assert (problem.field, problem.code) == ("jwks", "jwks_no_signing_key")


def test_the_assertion_algorithm_is_not_checked_for_methods_that_sign_nothing_with_these_keys():
    self_signed = {"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": jwks(RSA)}
    assert key_alg_problems(**self_signed, token_endpoint_auth_signing_alg="ES256") == []


def test_keys_behind_a_jwks_uri_are_judged_when_used_not_at_registration():
    assert key_alg_problems(**assertion_client("ES256", None), jwks_uri="https://rp.example.com/jwks") == []


@pytest.mark.django_db
def test_clean_refuses_the_key_set_as_the_admin_and_the_command_do():
    with pytest.raises(ValidationError) as exc:
        ciba_client(**assertion_client("ES256", jwks(RSA))).full_clean()
    assert any("ES256" in message for message in exc.value.message_dict["jwks"])
    ciba_client(**assertion_client("ES256", jwks(P256))).full_clean()
