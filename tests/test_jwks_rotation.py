"""A client that rotates the keys behind its jwks_uri is not locked out until the cache expires:
a JWT naming a kid the cached set lacks fetches the set again, at most once per
JWKS_REFETCH_MIN_INTERVAL per client, from a real HTTP server whose key set changes."""

import time

import pytest

from ciba.jose import JoseError, client_keys, verify
from tests.keys import assertion_claims, public_jwk, rsa_key, sign
from tests.test_client_authentication import BODY, ISSUER, post, with_assertion

OLD, NEW, OTHER = rsa_key(), rsa_key(), rsa_key()


@pytest.fixture
def rotating(make_client, json_server):
    """A private_key_jwt client whose jwks_uri publishes the key ``old`` (for now)."""
    json_server.documents["/jwks.json"] = {"keys": [public_jwk(OLD, "old")]}
    app, _ = make_client(
        "poll", token_endpoint_auth_method="private_key_jwt", jwks_uri=json_server.url("/jwks.json")
    )
    return app


def kids(keys):
    return [key["kid"] for key in keys]


def test_a_kid_the_cached_set_lacks_fetches_the_set_again(rotating, json_server, settings):
    settings.CIBA = {**settings.CIBA, "JWKS_REFETCH_MIN_INTERVAL": 1}
    assert kids(client_keys(rotating, kid="old")) == ["old"]
    time.sleep(1.1)
    json_server.documents["/jwks.json"] = {"keys": [public_jwk(OLD, "old"), public_jwk(NEW, "new")]}
    assert kids(client_keys(rotating, kid="old")) == ["old"]  # known: the cache answers
    assert json_server.hits["/jwks.json"] == 1
    assert kids(client_keys(rotating, kid="new")) == ["old", "new"]
    assert json_server.hits["/jwks.json"] == 2
    assert kids(client_keys(rotating, kid="new")) == ["old", "new"]  # cached again
    assert json_server.hits["/jwks.json"] == 2


def test_unknown_kids_fetch_at_most_once_per_interval(rotating, json_server, settings):
    settings.CIBA = {**settings.CIBA, "JWKS_REFETCH_MIN_INTERVAL": 1}
    client_keys(rotating, kid="old")
    time.sleep(1.1)  # the first fetch counts: a kid unknown right after it waits as well
    for n in range(5):
        assert kids(client_keys(rotating, kid=f"made-up-{n}")) == ["old"]
    assert json_server.hits["/jwks.json"] == 2
    time.sleep(1.1)
    json_server.documents["/jwks.json"] = {"keys": [public_jwk(NEW, "new")]}
    assert kids(client_keys(rotating, kid="new")) == ["new"]
    assert json_server.hits["/jwks.json"] == 3


def test_a_kid_unknown_right_after_a_fetch_waits_for_the_interval(rotating, json_server):
    client_keys(rotating, kid="old")
    json_server.documents["/jwks.json"] = {"keys": [public_jwk(NEW, "new")]}
    assert kids(client_keys(rotating, kid="new")) == ["old"]
    assert json_server.hits["/jwks.json"] == 1


def test_a_failed_refetch_keeps_the_cached_keys(rotating, json_server, settings):
    settings.CIBA = {**settings.CIBA, "JWKS_REFETCH_MIN_INTERVAL": 1}
    client_keys(rotating, kid="old")
    time.sleep(1.1)
    del json_server.documents["/jwks.json"]  # answers 404 now
    assert kids(client_keys(rotating, kid="new")) == ["old"]
    token = sign(assertion_claims(rotating.client_id, ISSUER), OLD, "RS256", "old")
    keys = client_keys(rotating, kid="old")
    assert verify(token, keys, algorithms=["RS256"], audience=[ISSUER])["iss"] == rotating.client_id


def test_inline_jwks_are_never_fetched(make_client):
    app, _ = make_client(
        "poll", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public_jwk(OLD, "old")]}
    )
    assert kids(client_keys(app, kid="new")) == ["old"]


def test_a_made_up_kid_does_not_verify_after_the_refetch(rotating, json_server):
    client_keys(rotating, kid="old")
    token = sign(assertion_claims(rotating.client_id, ISSUER), OTHER, "RS256", "other")
    with pytest.raises(JoseError):
        verify(token, client_keys(rotating, kid="other"), algorithms=["RS256"], audience=[ISSUER])


# --- through the endpoints: client assertions signed with the rotated key -------------------------


def test_a_client_assertion_signed_with_a_newly_published_key_is_accepted(
    client, alice, rotating, json_server, settings
):
    settings.CIBA = {**settings.CIBA, "JWKS_REFETCH_MIN_INTERVAL": 1}
    first = sign(assertion_claims(rotating.client_id, ISSUER), OLD, "RS256", "old")
    assert post(client, with_assertion(BODY, first)).status_code == 200
    json_server.documents["/jwks.json"] = {"keys": [public_jwk(NEW, "new")]}
    time.sleep(1.1)  # the client rotated a while after its set was fetched
    rotated = sign(assertion_claims(rotating.client_id, ISSUER), NEW, "RS256", "new")
    response = post(client, with_assertion(BODY, rotated))
    assert response.status_code == 200, response.content
    assert json_server.hits["/jwks.json"] == 2


def test_assertions_naming_made_up_kids_cost_one_fetch_per_interval(
    client, alice, rotating, json_server, settings
):
    settings.CIBA = {**settings.CIBA, "JWKS_REFETCH_MIN_INTERVAL": 1}
    first = sign(assertion_claims(rotating.client_id, ISSUER), OLD, "RS256", "old")
    assert post(client, with_assertion(BODY, first)).status_code == 200
    time.sleep(1.1)
    for n in range(5):
        forged = sign(assertion_claims(rotating.client_id, ISSUER), OTHER, "RS256", f"made-up-{n}")
        assert post(client, with_assertion(BODY, forged)).status_code == 401
    assert json_server.hits["/jwks.json"] == 2
