"""DPoP proofs (RFC 9449 §4.3): what ``ciba.sender.dpop`` accepts, and everything it refuses.

Proofs are made with jwcrypto (``tests/dpop.py``) and checked with PyJWT, so these tests also
show two JOSE implementations agreeing on what a valid proof is.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from jwcrypto import jwk
from oauthlib.common import CaseInsensitiveDict

from ciba.errors import BindingRefused as DPoPError
from ciba.sender.dpop import (
    Proof,
    access_token_hash,
    htu_matches,
    jwk_thumbprint,
    new_nonce,
    nonce_is_fresh,
    proof_header,
    verify_proof,
)
from tests.dpop import OMIT, DPoPKey, signed_payload, unsigned_proof

TOKEN_URL = "https://server.example/o/token/"
RESOURCE_URL = "https://server.example/api/userinfo"


@pytest.fixture(scope="module")
def ec_key() -> DPoPKey:
    return DPoPKey("EC")


@pytest.fixture(scope="module")
def rsa_key() -> DPoPKey:
    return DPoPKey("RSA")


def refusal(proof: str, error: str = "invalid_dpop_proof", **kwargs: Any) -> str:
    """Check ``proof`` (a POST to the token endpoint unless told otherwise) expecting ``error``."""
    kwargs.setdefault("method", "POST")
    kwargs.setdefault("url", TOKEN_URL)
    with pytest.raises(DPoPError) as caught:
        verify_proof(proof, **kwargs)
    assert caught.value.error == error, caught.value.description
    assert isinstance(caught.value.description, str) and caught.value.description
    return caught.value.description


# --- accepted proofs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kty", "alg"), [("EC", "ES256"), ("RSA", "PS256"), ("RSA", "RS256"), ("OKP", "EdDSA")]
)
def test_a_proof_signed_with_its_own_key_is_accepted_and_yields_its_thumbprint(db, kty, alg):
    key = DPoPKey(kty, alg=alg)
    proof = verify_proof(key.proof("POST", TOKEN_URL), method="POST", url=TOKEN_URL)
    assert isinstance(proof, Proof)
    assert proof.jkt == key.jkt  # jwcrypto's RFC 7638 thumbprint
    assert proof.jwk == key.public_jwk
    assert proof.claims["htm"] == "POST" and proof.claims["htu"] == TOKEN_URL


def test_a_proof_at_a_resource_carries_the_access_tokens_hash(db, ec_key):
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    dpop = ec_key.proof("GET", RESOURCE_URL, access_token=token)
    proof = verify_proof(dpop, method="GET", url=RESOURCE_URL, access_token=token)
    assert proof.claims["ath"] == access_token_hash(token)


# --- the key and the signature ----------------------------------------------------------------


def test_the_thumbprint_is_rfc_7638s():
    rfc_7638_example = {  # RFC 7638 §3.1
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPeb"
        "WKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQ"
        "MicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcR"
        "wr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(rfc_7638_example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    rfc_8037_example = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert jwk_thumbprint(rfc_8037_example) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"  # §A.3
    ec = DPoPKey("EC")
    assert jwk_thumbprint({**ec.public_jwk, "kid": "k1", "use": "sig"}) == ec.jkt
    for unusable in ({"kty": "oct", "k": "c2VjcmV0"}, {"kty": "EC", "crv": "P-256", "x": "AA"}, {}):
        with pytest.raises(ValueError):
            jwk_thumbprint(unusable)


def test_an_hmac_or_none_proof_is_refused(ec_key):
    secret = jwk.JWK.generate(kty="oct", size=256)
    hmac_with_ec_header = ec_key.proof("POST", TOKEN_URL, alg="HS256", sign_with=secret)
    hmac_with_its_key_in_the_header = ec_key.proof(
        "POST", TOKEN_URL, alg="HS256", sign_with=secret, extra_header={"jwk": secret.export(as_dict=True)}
    )
    for proof in (
        hmac_with_ec_header,
        hmac_with_its_key_in_the_header,
        unsigned_proof(ec_key, "POST", TOKEN_URL),
    ):
        assert "signed with" in refusal(proof)


def test_a_proof_carrying_a_private_key_is_refused(ec_key, rsa_key):
    for key in (ec_key, rsa_key):
        private = key.key.export(as_dict=True, private_key=True)
        assert "public key" in refusal(key.proof("POST", TOKEN_URL, extra_header={"jwk": private}))
    symmetric = {"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}
    refusal(ec_key.proof("POST", TOKEN_URL, extra_header={"jwk": symmetric}))


def test_a_proof_signed_by_another_key_than_its_header_names_is_refused(ec_key):
    other = DPoPKey("EC")
    proof = ec_key.proof("POST", TOKEN_URL, sign_with=other.key)
    assert "signature" in refusal(proof)


def test_a_proof_whose_key_cannot_make_its_alg_is_refused(db, settings, ec_key, rsa_key):
    rsa_signed_with_ec_header = ec_key.proof("POST", TOKEN_URL, alg="PS256", sign_with=rsa_key.key)
    assert "RSA key" in refusal(rsa_signed_with_ec_header)
    settings.CIBA = {**settings.CIBA, "DPOP_SIGNING_ALGS": ["ES256", "ES384"]}
    p384 = jwk.JWK.generate(kty="EC", crv="P-384")
    es384_with_a_p256_key_in_the_header = ec_key.proof("POST", TOKEN_URL, alg="ES384", sign_with=p384)
    assert "P-384" in refusal(es384_with_a_p256_key_in_the_header)
    es384 = ec_key.proof(
        "POST", TOKEN_URL, alg="ES384", sign_with=p384, extra_header={"jwk": p384.export_public(as_dict=True)}
    )
    assert verify_proof(es384, method="POST", url=TOKEN_URL).jkt == p384.thumbprint()
    declared_for_rs256 = ec_key.proof(
        "POST", TOKEN_URL, extra_header={"jwk": {**ec_key.public_jwk, "alg": "RS256"}}
    )
    refusal(declared_for_rs256)
    encryption_key = ec_key.proof(
        "POST", TOKEN_URL, extra_header={"jwk": {**ec_key.public_jwk, "use": "enc"}}
    )
    refusal(encryption_key)


def test_a_weak_rsa_key_is_refused():
    weak = DPoPKey("RSA")
    weak.key = jwk.JWK.generate(kty="RSA", size=1024)
    assert "2048" in refusal(weak.proof("POST", TOKEN_URL))


def test_a_proof_without_the_dpop_typ_is_refused(ec_key):
    for typ in ("JWT", "DPOP+JWT", "at+jwt"):
        assert "typ" in refusal(ec_key.proof("POST", TOKEN_URL, typ=typ))
    assert "typ" in refusal(ec_key.proof("POST", TOKEN_URL, extra_header={"typ": OMIT}))


def test_the_algorithm_allow_list_is_read_from_the_settings(db, settings, ec_key, rsa_key):
    settings.CIBA = {**settings.CIBA, "DPOP_SIGNING_ALGS": ["ES256"]}
    assert "ES256" in refusal(rsa_key.proof("POST", TOKEN_URL))
    verify_proof(ec_key.proof("POST", TOKEN_URL), method="POST", url=TOKEN_URL)


def test_rs256_and_eddsa_are_refused_under_fapi_ciba(db, settings, ec_key, rsa_key):
    settings.CIBA = {**settings.CIBA, "PROFILE": "fapi-ciba"}
    assert "PS256 or ES256" in refusal(rsa_key.proof("POST", TOKEN_URL, alg="RS256"))
    refusal(DPoPKey("OKP").proof("POST", TOKEN_URL))
    verify_proof(rsa_key.proof("POST", TOKEN_URL, alg="PS256"), method="POST", url=TOKEN_URL)
    verify_proof(ec_key.proof("POST", TOKEN_URL), method="POST", url=TOKEN_URL)


# --- what the proof is for: method, URL, time, access token ----------------------------------


@pytest.mark.parametrize(
    "htu",
    [
        "https://server.example/o/revoke/",
        "https://server.example/o/token",
        "https://other.example/o/token/",
        "http://server.example/o/token/",
        "https://server.example:8443/o/token/",
        "urn:example:token",
    ],
)
def test_a_proof_for_another_url_is_refused(ec_key, htu):
    assert "htu" in refusal(ec_key.proof("POST", htu))


def test_a_proof_for_another_method_is_refused(ec_key):
    assert "htm" in refusal(ec_key.proof("GET", TOKEN_URL))
    assert "htm" in refusal(ec_key.proof("post", TOKEN_URL))  # methods are case-sensitive


@pytest.mark.parametrize(
    "htu",
    [
        "https://server.example/o/token/",
        "HTTPS://Server.Example/o/token/",
        "https://server.example:443/o/token/",
        "https://server.example/o/token/?client_id=kiosk#frag",
        "https://server.example/o/./x/../token/",
        "https://server.example/o/%74oken/",
    ],
)
def test_htu_is_compared_without_query_fragment_and_spelling_differences(htu):
    assert htu_matches(htu, TOKEN_URL)


def test_htu_does_not_match_what_is_no_http_url():
    assert htu_matches("http://server.example/", "http://server.example:80")
    for htu in (
        "",
        "/o/token/",
        "ftp://server.example/o/token/",
        "https://[::1/o/token/",
        "https://h:99999/",
    ):
        assert not htu_matches(htu, TOKEN_URL)
    assert not htu_matches("https://server.example/%ff/", "https://server.example/%ff/")


def test_a_stale_or_future_proof_is_refused(db, ec_key):
    now = float(int(time.time()))
    oldest, newest = now - 60 - 30, now + 30  # DPOP_PROOF_MAX_AGE, CLOCK_LEEWAY
    for iat in (oldest - 1, newest + 1, 0, now + 3600):
        assert "iat" in refusal(ec_key.proof("POST", TOKEN_URL, iat=iat), now=now)
    for iat in (oldest, newest, now):
        verify_proof(ec_key.proof("POST", TOKEN_URL, iat=iat), method="POST", url=TOKEN_URL, now=now)


def test_the_proof_max_age_setting_is_honoured(db, settings, ec_key):
    settings.CIBA = {**settings.CIBA, "DPOP_PROOF_MAX_AGE": 5}
    now = float(int(time.time()))
    refusal(ec_key.proof("POST", TOKEN_URL, iat=now - 36), now=now)
    verify_proof(ec_key.proof("POST", TOKEN_URL, iat=now - 35), method="POST", url=TOKEN_URL, now=now)


def test_an_access_token_proof_needs_the_matching_ath(db, ec_key):
    token, other = "access-token-1", "access-token-2"
    at_resource = {"method": "GET", "url": RESOURCE_URL}
    assert "ath" in refusal(ec_key.proof("GET", RESOURCE_URL), access_token=token, **at_resource)
    assert "ath" in refusal(
        ec_key.proof("GET", RESOURCE_URL, access_token=other), access_token=token, **at_resource
    )
    not_a_string = ec_key.proof("GET", RESOURCE_URL, claims_override={"ath": 7})
    refusal(not_a_string, access_token=token, **at_resource)
    refusal(ec_key.proof("GET", RESOURCE_URL, access_token=token), access_token="tökén", **at_resource)
    verify_proof(ec_key.proof("GET", RESOURCE_URL, access_token=token), access_token=token, **at_resource)
    # At the token endpoint there is no access token yet: an ath is ignored.
    verify_proof(ec_key.proof("POST", TOKEN_URL, access_token=other), method="POST", url=TOKEN_URL)


def test_the_ath_is_rfc_9449s():
    # RFC 9449 §7.1's example access token and its ath.
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    assert access_token_hash(token) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


# --- replay --------------------------------------------------------------------------------


def test_a_replayed_proof_is_refused(db, ec_key):
    jti = uuid.uuid4().hex
    proof = ec_key.proof("POST", TOKEN_URL, jti=jti)
    verify_proof(proof, method="POST", url=TOKEN_URL)
    assert "jti has been used" in refusal(proof)
    assert "jti has been used" in refusal(ec_key.proof("POST", TOKEN_URL, jti=jti))  # a new proof, same jti


def test_a_jti_is_single_use_per_key_not_across_keys(db, ec_key):
    jti = uuid.uuid4().hex
    verify_proof(ec_key.proof("POST", TOKEN_URL, jti=jti), method="POST", url=TOKEN_URL)
    verify_proof(DPoPKey("EC").proof("POST", TOKEN_URL, jti=jti), method="POST", url=TOKEN_URL)


def test_a_refused_proof_does_not_spend_its_jti(db, settings, ec_key):
    jti = uuid.uuid4().hex
    refusal(ec_key.proof("POST", "https://server.example/elsewhere", jti=jti))
    settings.CIBA = {**settings.CIBA, "DPOP_NONCE_REQUIRED": True}
    refusal(ec_key.proof("POST", TOKEN_URL, jti=jti), error="use_dpop_nonce")
    verify_proof(ec_key.proof("POST", TOKEN_URL, jti=jti, nonce=new_nonce()), method="POST", url=TOKEN_URL)


# --- nonces -------------------------------------------------------------------------------


def test_when_nonces_are_required_a_proof_without_a_fresh_nonce_gets_use_dpop_nonce(db, settings, ec_key):
    settings.CIBA = {**settings.CIBA, "DPOP_NONCE_REQUIRED": True}
    now = time.time()
    refusal(ec_key.proof("POST", TOKEN_URL), error="use_dpop_nonce")
    refusal(ec_key.proof("POST", TOKEN_URL, nonce="made-up"), error="use_dpop_nonce")
    refusal(ec_key.proof("POST", TOKEN_URL, nonce=new_nonce(now - 301)), error="use_dpop_nonce")
    refusal(ec_key.proof("POST", TOKEN_URL, claims_override={"nonce": 42}))
    # A proof that is wrong in another way is told so first: a nonce would not help it.
    refusal(ec_key.proof("GET", TOKEN_URL))
    verify_proof(ec_key.proof("POST", TOKEN_URL, nonce=new_nonce()), method="POST", url=TOKEN_URL)


def test_a_stale_nonce_is_refused_even_when_nonces_are_not_required(db, ec_key):
    stale = new_nonce(time.time() - 3600)
    refusal(ec_key.proof("POST", TOKEN_URL, nonce=stale), error="use_dpop_nonce")
    verify_proof(ec_key.proof("POST", TOKEN_URL), method="POST", url=TOKEN_URL)
    verify_proof(ec_key.proof("POST", TOKEN_URL, nonce=new_nonce()), method="POST", url=TOKEN_URL)


def test_an_issued_nonce_is_accepted_until_it_ages_out(db, settings, ec_key):
    issued = float(int(time.time()))
    nonce = new_nonce(issued)
    assert nonce_is_fresh(nonce, issued) and nonce_is_fresh(nonce, issued + 300)
    assert not nonce_is_fresh(nonce, issued + 301)  # DPOP_NONCE_LIFETIME
    assert nonce_is_fresh(nonce, issued - 30) and not nonce_is_fresh(nonce, issued - 31)  # CLOCK_LEEWAY
    at = issued + 299
    proof = ec_key.proof("POST", TOKEN_URL, nonce=nonce, iat=at)
    verify_proof(proof, method="POST", url=TOKEN_URL, now=at)
    late = issued + 302
    refusal(ec_key.proof("POST", TOKEN_URL, nonce=nonce, iat=late), error="use_dpop_nonce", now=late)
    settings.CIBA = {**settings.CIBA, "DPOP_NONCE_LIFETIME": 10}
    assert not nonce_is_fresh(nonce, issued + 11)


def test_a_nonce_is_only_fresh_if_this_server_issued_it(settings):
    nonce = new_nonce()
    assert nonce_is_fresh(nonce)
    tampered = nonce[:-1] + ("A" if nonce[-1] != "A" else "B")
    assert not nonce_is_fresh(tampered)
    for garbage in ("", "x" * 32, nonce + "A", nonce[:-1] + "!", None, 7):
        assert not nonce_is_fresh(garbage)  # type: ignore[arg-type]
    settings.SECRET_KEY = "another-server"
    assert not nonce_is_fresh(nonce)


# --- the DPoP header -----------------------------------------------------------------------


def test_the_proof_is_read_from_the_one_dpop_header(ec_key):
    proof = ec_key.proof("POST", TOKEN_URL)
    assert proof_header({"HTTP_DPOP": proof}) == proof  # request.META, or DOT's headers dict
    assert proof_header(CaseInsensitiveDict({"DPoP": proof})) == proof
    assert proof_header({"dpop": proof}) == proof
    assert proof_header({"HTTP_AUTHORIZATION": "DPoP x"}) is None


def test_a_repeated_dpop_header_is_refused(ec_key):
    first, second = ec_key.proof("POST", TOKEN_URL), ec_key.proof("POST", TOKEN_URL)
    for meta in (
        {"HTTP_DPOP": f"{first}, {second}"},
        {"HTTP_DPOP": f"{first},{second}"},
        {"DPoP": [first, second]},
    ):
        with pytest.raises(DPoPError) as caught:
            proof_header(meta)
        assert caught.value.error == "invalid_dpop_proof"
    for meta in ({"HTTP_DPOP": ""}, {"HTTP_DPOP": " "}, {"HTTP_DPOP": b"bytes"}):
        with pytest.raises(DPoPError):
            proof_header(meta)


# --- garbage -------------------------------------------------------------------------------


def garbage_proofs() -> list[tuple[str, Any]]:
    key = DPoPKey("EC")
    rsa = DPoPKey("RSA")

    def claims(**override: Any) -> str:
        return key.proof("POST", TOKEN_URL, claims_override=override)

    def header(**override: Any) -> str:
        return key.proof("POST", TOKEN_URL, extra_header=override)

    header_of_rsa = rsa.public_jwk
    return [
        ("empty", ""),
        ("not a string", None),
        ("bytes", key.proof("POST", TOKEN_URL).encode()),
        ("one part", "abc"),
        ("not base64", "a!.b!.c!"),
        ("encrypted (JWE)", "a.b.c.d.e"),
        ("header not JSON", "bm90IGpzb24." + key.proof("POST", TOKEN_URL).split(".", 1)[1]),
        ("header a JSON array", "WzFd." + key.proof("POST", TOKEN_URL).split(".", 1)[1]),
        ("too long", key.proof("POST", TOKEN_URL, claims_override={"pad": "x" * 10_000})),
        ("claims not JSON", signed_payload(key, b"not json")),
        ("claims a JSON array", signed_payload(key, b"[1, 2]")),
        ("claims a JSON number", signed_payload(key, b"1e400")),
        ("bool iat", claims(iat=True)),
        ("huge iat", claims(iat=10**400)),
        (
            "infinite iat",
            signed_payload(key, b'{"jti":"j","htm":"POST","htu":"%s","iat":1e400}' % TOKEN_URL.encode()),
        ),
        ("NaN iat", claims(iat=float("nan"))),
        ("string iat", claims(iat=str(int(time.time())))),
        ("no iat", claims(iat=OMIT)),
        ("no jti", claims(jti=OMIT)),
        ("empty jti", claims(jti="")),
        ("numeric jti", claims(jti=12345)),
        ("long jti", claims(jti="j" * 257)),
        ("no htm", claims(htm=OMIT)),
        ("htu not a string", claims(htu=["https://server.example/o/token/"])),
        ("no htu", claims(htu=OMIT)),
        ("jwk not an object", header(jwk="eyJrdHkiOiJFQyJ9")),
        ("jwk a list", header(jwk=[key.public_jwk])),
        ("no jwk", header(jwk=OMIT)),
        ("jwk members not strings", header(jwk={**key.public_jwk, "x": 12345})),
        ("jwk members not base64url", header(jwk={**key.public_jwk, "x": "not base64!"})),
        ("jwk with a bad point", header(jwk={**key.public_jwk, "x": "AAAA"})),
        ("jwk of an unknown kty", header(jwk={**key.public_jwk, "kty": "XYZ"})),
        (
            "rsa jwk with a huge exponent",
            rsa.proof("POST", TOKEN_URL, extra_header={"jwk": {**header_of_rsa, "e": "A" * 400}}),
        ),
        ("kid not a string", header(kid=7)),
        ("a critical extension", header(crit=["b64"], b64=True)),
        ("no typ", header(typ=OMIT)),
    ]


@pytest.mark.parametrize("proof", [pytest.param(proof, id=case) for case, proof in garbage_proofs()])
def test_garbage_is_a_dpop_error_never_another_exception(db, proof):
    refusal(proof)
