"""The first ``ciba_keys rotate`` on a site whose ID tokens DOT's settings key signs publishes
the new key and keeps signing with the settings key until the operator rotates again, exactly
as any later rotation: relying parties' cached JWK Sets know only the settings key's kid. Only
when nothing of a key's type signs yet does a new key sign at once, and the command says so."""

import io

import jwt
import pytest
from django.core.management import call_command

from ciba import signing
from ciba.models import SigningKey

JWKS_URL = "/o/.well-known/jwks.json"
CLAIMS = {"iss": "http://testserver/o", "sub": "1", "aud": "rp", "exp": 4_000_000_000, "iat": 1_700_000_000}
State = SigningKey.State


def keys_command(*args):
    out = io.StringIO()
    call_command("ciba_keys", *args, stdout=out)
    return out.getvalue()


def published_kids(client):
    return {key["kid"] for key in client.get(JWKS_URL).json()["keys"]}


def signer_kid(alg):
    return jwt.get_unverified_header(signing.sign_id_token(CLAIMS, alg))["kid"]


@pytest.fixture
def without_settings_key(settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEY": ""}


def test_the_first_rotation_publishes_the_new_key_while_the_settings_key_keeps_signing(client, db):
    settings_kid = signer_kid("RS256")  # a new site: DOT's key signs, no database key exists
    assert not SigningKey.objects.exists()
    relying_party_cache = published_kids(client)

    out = keys_command("rotate", "--type", "rsa")
    new = SigningKey.objects.get()
    assert new.state == State.NEXT
    assert "as next" in out and "run rotate again after your relying parties' JWKS cache time" in out
    assert 'OIDC_RSA_PRIVATE_KEY"] keeps signing RS256' in out
    assert "ciba_keys activate --type rsa" in out  # the way out for a site nobody uses yet
    assert published_kids(client) == relying_party_cache | {new.kid}
    # What relying parties cached still verifies every ID token signed now.
    assert signer_kid("RS256") == settings_kid and settings_kid in relying_party_cache
    assert "PS256" not in signing.id_token_algs_available()
    with pytest.raises(signing.SigningKeyMissing):
        signing.sign_id_token(CLAIMS, "PS256")

    # After the overlap, the second rotation: the new key signs, the settings key stays published.
    out = keys_command("rotate", "--type", "rsa")
    new.refresh_from_db()
    assert new.state == State.ACTIVE and "it signs new ID tokens now" in out
    assert 'takes over from OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]' in out
    assert signer_kid("RS256") == signer_kid("PS256") == new.kid
    assert settings_kid in published_kids(client)


def test_adding_an_rsa_key_next_to_the_settings_key_waits_as_well(db):
    out = keys_command("add", "--type", "rsa")
    assert SigningKey.objects.get().state == State.NEXT and "as next" in out
    assert signer_kid("RS256") != SigningKey.objects.get().kid


def test_a_key_signs_at_once_only_when_nothing_of_its_type_signs(db, without_settings_key):
    out = keys_command("rotate", "--type", "rsa")
    key = SigningKey.objects.get()
    assert key.state == State.ACTIVE and signer_kid("RS256") == key.kid
    assert "active now, published and signing: no RSA key signed before" in out
    assert "no overlap to wait for" in out


def test_the_first_ec_key_signs_at_once_beside_the_settings_key(db):
    """The settings key signs RS256 only: nothing signed ES256 that a relying party cached."""
    out = keys_command("rotate", "--type", "ec")
    key = SigningKey.objects.get()
    assert key.state == State.ACTIVE and signer_kid("ES256") == key.kid
    assert "no EC key signed before" in out


def test_the_settings_key_counts_as_the_current_rsa_signer_only_while_it_is_set(db, settings):
    assert signing.settings_key_signs("RSA") and signing.settings_key_signs("rsa")
    assert not signing.settings_key_signs("EC")
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEY": ""}
    assert not signing.settings_key_signs("RSA")
