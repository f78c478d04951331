"""Client secrets are generated with 256 bits and stored under a keyed hash that costs one HMAC to
check; keys rotate like Django's; older hashes are upgraded on first use; site-chosen weak
secrets are refused unless a setting allows them, and then keep the slow hash."""

from __future__ import annotations

import json
import secrets
from io import StringIO

import pytest
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import override_settings
from oauth2_provider.models import get_application_model

from ciba import checks as ciba_checks
from ciba.client_auth import hashers, secret, upgrade_secret
from ciba.constants import CIBA_GRANT_TYPE
from tests.protocol import backchannel, oauth_error, poll

Application = get_application_model()
BODY = "scope=openid&login_hint=alice"
STRONG = secrets.token_urlsafe(32)
HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", hashers.DOTTED_PATH]


def ids(messages):
    return [m.id for m in messages]


def stored(app):
    return Application.objects.values_list("client_secret", flat=True).get(pk=app.pk)


# --- the hasher ---------------------------------------------------------------------------------


def test_a_keyed_hash_verifies_its_secret_only_and_reveals_neither_secret_nor_key(settings):
    encoded = make_password(STRONG, hasher=hashers.ALGORITHM)
    algorithm, key_id, salt, digest = encoded.split("$")
    assert algorithm == "ciba_hmac_sha256" and len(key_id) == 8 and salt and digest
    assert STRONG not in encoded and settings.SECRET_KEY not in encoded
    hasher = hashers.ClientSecretHasher()
    assert hasher.verify(STRONG, encoded)
    assert not hasher.verify(STRONG + "x", encoded)
    assert not hasher.verify(STRONG, encoded[:-2] + "AA")
    assert hasher.safe_summary(encoded)["key id"] == key_id


def test_the_keys_default_to_secret_key_and_its_fallbacks(settings):
    settings.SECRET_KEY = "old-key"
    old = make_password(STRONG, hasher=hashers.ALGORITHM)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "new-key", ["old-key"]
    hasher = hashers.ClientSecretHasher()
    assert hasher.verify(STRONG, old) and hasher.must_update(old)
    new = make_password(STRONG, hasher=hashers.ALGORITHM)
    assert not hasher.must_update(new) and new.split("$")[1] != old.split("$")[1]
    settings.SECRET_KEY_FALLBACKS = []  # the old key retired: its hashes no longer verify
    assert not hasher.verify(STRONG, old)


def test_client_secret_hash_keys_rotate_independently_of_secret_key(settings):
    settings.CIBA = {**settings.CIBA, "CLIENT_SECRET_HASH_KEYS": ["k1"]}
    old = make_password(STRONG, hasher=hashers.ALGORITHM)
    settings.CIBA = {**settings.CIBA, "CLIENT_SECRET_HASH_KEYS": ["k2", "k1"]}
    assert hashers.ClientSecretHasher().verify(STRONG, old)
    assert hashers.ClientSecretHasher().must_update(old)


@pytest.mark.parametrize(
    "value, strong",
    [
        (secrets.token_urlsafe(32), True),
        (secrets.token_hex(32), True),
        ("kiosk-secret", False),
        ("password123" * 5, False),  # long, but repetitive
        ("a" * 200, False),
        (secrets.token_urlsafe(24), False),  # 192 bits
    ],
)
def test_secrets_under_256_bits_are_told_apart(value, strong):
    assert hashers.enough_entropy(value) is strong


def test_a_weak_secret_keeps_the_slow_hash_even_when_the_keyed_one_is_asked_for():
    encoded = make_password("kiosk-secret", hasher=hashers.ALGORITHM)
    assert not hashers.is_keyed(encoded) and encoded.startswith("md5$")


# --- registration -------------------------------------------------------------------------------


def new_client(secret_value, **fields):
    app = Application(
        name="Kiosk",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=CIBA_GRANT_TYPE,
        backchannel_token_delivery_mode="poll",
        algorithm="RS256",
        **({"client_secret": secret_value} if secret_value is not None else {}),
        **fields,
    )
    return app


@pytest.mark.django_db
@override_settings(CIBA={})
def test_a_site_chosen_weak_secret_is_refused_at_registration():
    app = new_client("kiosk-secret")
    with pytest.raises(ValidationError) as refused:
        app.full_clean()
    assert "client_secret" in refused.value.message_dict
    assert "256" in refused.value.message_dict["client_secret"][0]


@pytest.mark.django_db
@override_settings(CIBA={})
def test_generated_secrets_pass_and_are_stored_under_the_keyed_hash():
    app = new_client(None)  # DOT's generator: 128 characters
    app.full_clean()
    app.save()
    assert hashers.is_keyed(stored(app))
    app = new_client(STRONG)
    app.full_clean()
    app.save()
    assert hashers.is_keyed(stored(app))
    app.full_clean()  # editing the client later: the stored hash is not a "weak secret"


@pytest.mark.django_db
@override_settings(CIBA={"ALLOW_LOW_ENTROPY_CLIENT_SECRETS": True})
def test_allowed_weak_secrets_keep_the_slow_hash_and_deploy_checks_warn():
    app = new_client("kiosk-secret")
    app.full_clean()
    app.save()
    assert not hashers.is_keyed(stored(app)) and secret.is_slow(stored(app))
    assert "ciba.W013" in ids(ciba_checks.check_client_secret_hashing_deploy())


@pytest.mark.django_db
@override_settings(CIBA={})
def test_ciba_client_registers_a_strong_secret_under_the_keyed_hash():
    out = StringIO()
    call_command("ciba_client", "Kiosk", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert hashers.enough_entropy(result["client_secret"])
    assert hashers.is_keyed(Application.objects.get(client_id=result["client_id"]).client_secret)


# --- checking and upgrading ---------------------------------------------------------------------


@pytest.fixture
def slow_hashes(monkeypatch):
    calls = []
    real = secret.check_password
    monkeypatch.setattr(secret, "check_password", lambda *a: calls.append(1) or real(*a))
    return calls


def test_keyed_secrets_are_checked_without_a_password_hash_or_the_cache(
    client, alice, make_client, slow_hashes, monkeypatch, no_user_limits
):
    app, _ = make_client("poll", secret=STRONG)
    cache_reads = []
    monkeypatch.setattr(secret, "_safely", lambda *a: cache_reads.append(a))
    for _ in range(3):
        assert backchannel(client, app, STRONG, BODY).status_code == 200
    assert slow_hashes == [] and cache_reads == []


def test_a_strong_secret_under_a_slow_hash_is_upgraded_on_first_use(client, alice, make_client, slow_hashes):
    app, _ = make_client("poll", secret=STRONG)
    Application.objects.filter(pk=app.pk).update(client_secret=make_password(STRONG, hasher="md5"))
    assert backchannel(client, app, STRONG, BODY).status_code == 200
    assert len(slow_hashes) == 1 and hashers.is_keyed(stored(app))
    assert backchannel(client, app, STRONG, BODY).status_code == 200
    assert len(slow_hashes) == 1  # from now on one HMAC
    oauth_error(backchannel(client, app, "wrong", BODY), 401, "invalid_client")


def test_a_hash_under_a_retired_key_is_upgraded_on_first_use(client, alice, make_client, settings):
    settings.CIBA = {**settings.CIBA, "CLIENT_SECRET_HASH_KEYS": ["k1"]}
    app, _ = make_client("poll", secret=STRONG)
    before = stored(app)
    settings.CIBA = {**settings.CIBA, "CLIENT_SECRET_HASH_KEYS": ["k2", "k1"]}
    assert backchannel(client, app, STRONG, BODY).status_code == 200
    after = stored(app)
    assert after != before and not hashers.ClientSecretHasher().must_update(after)
    settings.CIBA = {**settings.CIBA, "CLIENT_SECRET_HASH_KEYS": ["k2"]}  # k1 retired
    assert backchannel(client, app, STRONG, BODY).status_code == 200


def test_the_token_endpoint_upgrades_too_and_pending_polls_keep_working(client, alice, make_client):
    app, _ = make_client("poll", secret=STRONG)
    started = backchannel(client, app, STRONG, BODY).json()
    Application.objects.filter(pk=app.pk).update(client_secret=make_password(STRONG, hasher="md5"))
    oauth_error(poll(client, app, STRONG, started["auth_req_id"]), 400, "authorization_pending")
    assert hashers.is_keyed(stored(app))
    answer = poll(client, app, STRONG, started["auth_req_id"])
    assert answer.status_code == 400 and answer.json()["error"] in ("authorization_pending", "slow_down")


def test_a_weak_secret_is_never_upgraded(client, alice, make_client):
    app, weak = make_client("poll", secret="kiosk-secret")
    assert backchannel(client, app, weak, BODY).status_code == 200
    assert secret.is_slow(stored(app))


def test_an_upgrade_never_overwrites_a_concurrent_rotation(make_client):
    app, _ = make_client("poll", secret=STRONG)
    Application.objects.filter(pk=app.pk).update(client_secret=make_password(STRONG, hasher="md5"))
    stale = Application.objects.get(pk=app.pk)  # read before the rotation
    rotated = make_password(secrets.token_urlsafe(32), hasher=hashers.ALGORITHM)
    Application.objects.filter(pk=app.pk).update(client_secret=rotated)
    assert upgrade_secret(stale, STRONG) is False
    assert stored(app) == rotated


def test_with_keyed_hashing_off_an_unknown_id_costs_a_password_hash(client, alice, settings, slow_hashes):
    settings.PASSWORD_HASHERS = HASHERS
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "CLIENT_SECRET_HASHER": "default"}
    assert secret.unknown_client_is_slow()
    secret.pay_for_unknown_client("guess")
    assert len(slow_hashes) == 1


# --- system checks ------------------------------------------------------------------------------


def test_the_checks_say_when_the_keyed_hasher_is_misconfigured(settings):
    assert ids(ciba_checks.check_client_secret_hashing()) == []
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    assert ids(ciba_checks.check_client_secret_hashing()) == ["ciba.E035"]
    settings.PASSWORD_HASHERS = list(reversed(HASHERS))
    assert ids(ciba_checks.check_client_secret_hashing()) == ["ciba.E036"]
    settings.PASSWORD_HASHERS = HASHERS
    settings.CIBA = {"CLIENT_SECRET_HASH_KEYS": [], "CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT": 0}
    assert ids(ciba_checks.check_client_secret_hashing()) == ["ciba.E037"]


def test_deploy_checks_warn_when_secrets_keep_the_password_hasher(settings):
    settings.CIBA = {}
    assert ids(ciba_checks.check_client_secret_hashing_deploy()) == []
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "CLIENT_SECRET_HASHER": "default"}
    assert ids(ciba_checks.check_client_secret_hashing_deploy()) == ["ciba.W012"]
