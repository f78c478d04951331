"""Software statements (RFC 7591 §2.3) signed by a test directory: who is trusted, what is refused,
and how a statement's claims override the request's metadata."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from ciba.client_registration import software_statements
from ciba.errors import InvalidSoftwareStatement, TemporarilyUnavailable, UnapprovedSoftwareStatement
from tests.keys import ec_key, public_jwk, rsa_key, sign

DIRECTORY = "https://directory.example.org"
DIRECTORY_KEY = rsa_key()
OTHER_KEY = rsa_key()
EC_DIRECTORY_KEY = ec_key()


def statement_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": DIRECTORY,
        "iat": now,
        "exp": now + 300,
        "jti": "statement-1",
        "software_id": "kiosk-app",
        "software_client_name": "Kiosk",
        "software_redirect_uris": ["https://kiosk.example.com/cb"],
        "software_jwks_uri": "https://kiosk.example.com/jwks.json",
        "org_id": "bank-42",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def signed(claims: dict[str, Any] | None = None, key: Any = DIRECTORY_KEY, alg: str = "PS256") -> str:
    return sign(claims or statement_claims(), key, alg, kid="directory-1")


@pytest.fixture(autouse=True)
def trusted_directory(settings: Any) -> None:
    settings.CIBA = {
        **settings.CIBA,
        "SOFTWARE_STATEMENT_ISSUERS": {
            DIRECTORY: {"jwks": {"keys": [public_jwk(DIRECTORY_KEY, "directory-1")]}}
        },
    }


def test_a_statement_signed_by_a_trusted_directory_is_verified() -> None:
    claims = software_statements.verify(signed())

    assert claims["software_id"] == "kiosk-app"
    assert claims["iss"] == DIRECTORY


def test_a_statement_from_an_issuer_not_trusted_is_unapproved() -> None:
    with pytest.raises(UnapprovedSoftwareStatement) as refused:
        software_statements.verify(signed(statement_claims(iss="https://rogue.example")))

    assert refused.value.error == "unapproved_software_statement"
    assert refused.value.status_code == 400


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (statement_claims(exp=int(time.time()) - 120), "expired"),
        (statement_claims(iat=int(time.time()) - 3600, exp=int(time.time()) + 3600), "issued more than 300"),
        (statement_claims(iat=None), "iat"),
        (statement_claims(iss=None), "iss"),
        (statement_claims(iat=int(time.time()) + 3600), "not valid yet"),
    ],
    ids=["expired", "iat-too-old", "no-iat", "no-iss", "iat-in-the-future"],
)
def test_a_statement_out_of_its_time_or_without_its_claims_is_invalid(
    claims: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidSoftwareStatement, match=reason) as refused:
        software_statements.verify(signed(claims))

    assert refused.value.error == "invalid_software_statement"


def test_the_oldest_statement_accepted_follows_the_setting(settings: Any) -> None:
    old = signed(statement_claims(iat=int(time.time()) - 3600, exp=None))
    settings.CIBA = {**settings.CIBA, "SOFTWARE_STATEMENT_MAX_AGE": 7200}

    assert software_statements.verify(old)["software_id"] == "kiosk-app"


def test_a_statement_with_a_bad_signature_is_invalid() -> None:
    forged = signed(key=OTHER_KEY)  # same kid, another key

    with pytest.raises(InvalidSoftwareStatement, match="signature"):
        software_statements.verify(forged)


def test_a_tampered_statement_is_invalid() -> None:
    header, payload, signature = signed().split(".")
    other_payload = signed(statement_claims(software_redirect_uris=["https://evil.example/cb"])).split(".")[1]

    with pytest.raises(InvalidSoftwareStatement):
        software_statements.verify(f"{header}.{other_payload}.{signature}")


def test_an_unsigned_statement_is_invalid() -> None:
    unsigned = jwt.encode(statement_claims(), None, algorithm="none")

    with pytest.raises(InvalidSoftwareStatement, match="must be signed with"):
        software_statements.verify(unsigned)


def test_a_statement_signed_with_hmac_is_invalid_even_keyed_with_the_directory_public_key() -> None:
    # The classic confusion: HS256 keyed with bytes anyone can read from the directory's JWKS.
    key_bytes = public_jwk(DIRECTORY_KEY, "directory-1")["n"].encode()
    forged = jwt.encode(statement_claims(), key_bytes, algorithm="HS256", headers={"kid": "directory-1"})

    with pytest.raises(InvalidSoftwareStatement, match="must be signed with"):
        software_statements.verify(forged)


def test_a_statement_whose_algorithm_does_not_fit_the_directory_key_type_is_invalid() -> None:
    with pytest.raises(InvalidSoftwareStatement, match="No registered key fits"):
        software_statements.verify(signed(key=EC_DIRECTORY_KEY, alg="ES256"))


def test_a_directory_with_an_ec_key_signs_es256_statements(settings: Any) -> None:
    settings.CIBA = {
        **settings.CIBA,
        "SOFTWARE_STATEMENT_ISSUERS": {
            DIRECTORY: {"jwks": {"keys": [public_jwk(EC_DIRECTORY_KEY, "directory-1")]}}
        },
    }

    assert software_statements.verify(signed(key=EC_DIRECTORY_KEY, alg="ES256"))["iss"] == DIRECTORY


def test_under_fapi_only_ps256_and_es256_statements_are_accepted(settings: Any) -> None:
    settings.CIBA = {**settings.CIBA, "PROFILE": "fapi-ciba"}

    assert software_statements.verify(signed(alg="PS256"))["iss"] == DIRECTORY
    with pytest.raises(InvalidSoftwareStatement, match="PS256 or ES256"):
        software_statements.verify(signed(alg="RS256"))


@pytest.mark.parametrize("statement", ["not-a-jwt", "a.b.c", "", 42, None, ["x"]])
def test_a_statement_that_is_not_a_signed_jwt_is_invalid(statement: Any) -> None:
    with pytest.raises(InvalidSoftwareStatement):
        software_statements.verify(statement)


def test_an_encrypted_statement_is_invalid() -> None:
    with pytest.raises(InvalidSoftwareStatement, match="Encrypted"):
        software_statements.verify("a.b.c.d.e")


def test_a_directory_jwks_uri_is_fetched_once_and_cached(settings: Any, json_server: Any) -> None:
    json_server.documents["/directory/jwks"] = {"keys": [public_jwk(DIRECTORY_KEY, "directory-1")]}
    settings.CIBA = {
        **settings.CIBA,
        "SOFTWARE_STATEMENT_ISSUERS": {DIRECTORY: {"jwks_uri": json_server.url("/directory/jwks")}},
    }

    for _ in range(3):
        assert software_statements.verify(signed())["iss"] == DIRECTORY
    assert json_server.hits["/directory/jwks"] == 1


def test_a_directory_that_rotates_its_key_is_followed_at_its_next_statement(
    settings: Any, json_server: Any
) -> None:
    json_server.documents["/directory/jwks"] = {"keys": [public_jwk(DIRECTORY_KEY, "directory-1")]}
    settings.CIBA = {
        **settings.CIBA,
        "JWKS_REFETCH_MIN_INTERVAL": 1,
        "SOFTWARE_STATEMENT_ISSUERS": {DIRECTORY: {"jwks_uri": json_server.url("/directory/jwks")}},
    }
    assert software_statements.verify(signed())["iss"] == DIRECTORY
    json_server.documents["/directory/jwks"] = {
        "keys": [public_jwk(DIRECTORY_KEY, "directory-1"), public_jwk(OTHER_KEY, "directory-2")]
    }
    time.sleep(1.1)

    rotated = sign(statement_claims(), OTHER_KEY, "PS256", kid="directory-2")

    assert software_statements.verify(rotated)["iss"] == DIRECTORY
    assert json_server.hits["/directory/jwks"] == 2


def test_a_directory_whose_keys_cannot_be_fetched_makes_registration_retry_later(
    settings: Any, json_server: Any
) -> None:
    settings.CIBA = {
        **settings.CIBA,
        "SOFTWARE_STATEMENT_ISSUERS": {DIRECTORY: {"jwks_uri": json_server.url("/missing")}},
    }

    with pytest.raises(TemporarilyUnavailable) as refused:
        software_statements.verify(signed())

    assert refused.value.status_code == 503
    assert refused.value.headers["Retry-After"] == "30"


def test_statement_claims_override_the_request_metadata_under_their_rfc_7591_names() -> None:
    request = {
        "client_name": "Something else",
        "redirect_uris": ["https://attacker.example/cb"],
        "jwks": {"keys": []},
        "backchannel_token_delivery_mode": "poll",
        "software_statement": "the statement",
    }

    document = software_statements.overridden(request, software_statements.verify(signed()))

    assert document["client_name"] == "Kiosk"
    assert document["redirect_uris"] == ["https://kiosk.example.com/cb"]
    assert document["jwks_uri"] == "https://kiosk.example.com/jwks.json"
    assert "jwks" not in document  # the statement says where the keys are
    assert document["software_id"] == "kiosk-app"
    assert document["backchannel_token_delivery_mode"] == "poll"  # the request's, not contradicted
    assert "software_statement" not in document
    assert not {"iss", "iat", "exp", "jti"} & set(document)


def test_open_banking_uk_names_and_plain_rfc_7591_names_are_understood() -> None:
    claims = statement_claims(
        software_jwks_uri=None,
        software_jwks_endpoint="https://keystore.example.org/kiosk.jwks",
        software_client_name="Kiosk (UK)",
        client_name="Kiosk, plain",
        software_logo_uri="https://kiosk.example.com/logo.png",
        token_endpoint_auth_method="private_key_jwt",
    )

    document = software_statements.overridden({}, software_statements.verify(signed(claims)))

    assert document["jwks_uri"] == "https://keystore.example.org/kiosk.jwks"
    assert document["client_name"] == "Kiosk, plain"  # the RFC 7591 name wins over its alias
    assert document["logo_uri"] == "https://kiosk.example.com/logo.png"
    assert document["token_endpoint_auth_method"] == "private_key_jwt"
