"""This server's ID-token signing keys (ciba.signing): the key set, rotation with overlap, the
JWKS endpoint, and ID tokens signed with them presented back as id_token_hint."""

import io
import threading
import time
from datetime import timedelta

import jwt
import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ciba import signing
from ciba.models import SigningKey
from tests.conftest import basic_auth

JWKS_URL = "/o/.well-known/jwks.json"
ISSUER = "http://testserver/o"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
State = SigningKey.State


def keys_command(*args):
    out = io.StringIO()
    call_command("ciba_keys", *args, stdout=out)
    return out.getvalue()


def kid_of(token):
    return jwt.get_unverified_header(token)["kid"]


def published(client):
    response = client.get(JWKS_URL)
    assert response.status_code == 200
    return response.json()["keys"]


def verify_with_jwks(client, token, alg):
    """Verify as a relying party would: the key the header's kid names in the published set."""
    jwk = next(key for key in published(client) if key["kid"] == kid_of(token))
    return jwt.decode(token, jwt.PyJWK(jwk, algorithm=alg), algorithms=[alg], options={"verify_aud": False})


CLAIMS = {"iss": ISSUER, "sub": "1", "aud": "client", "exp": 4_000_000_000, "iat": 1_700_000_000}


def signing_key(kty):
    """A database key that signs now: a new RSA key waits as next while DOT's settings key
    signs RS256 (as in these settings), so it is activated."""
    key = signing.generate_key(kty)
    if key.state == State.NEXT:
        key, _ = signing.activate(kty)
    return key


# --- the life cycle, through the command ---------------------------------------------------


def test_the_command_rotates_with_overlap_and_prunes(client, db):
    out = keys_command("add", "--type", "rsa")
    first = SigningKey.objects.get()
    # DOT's settings key signs RS256 here: the first RSA key is published before it signs too.
    assert first.state == State.NEXT and "as next" in out
    keys_command("activate", "--type", "rsa")
    first.refresh_from_db()
    assert first.state == State.ACTIVE
    assert kid_of(signing.sign_id_token(CLAIMS, "PS256")) == first.kid

    # rotate: a next key is published, but the active one still signs.
    out = keys_command("rotate", "--type", "rsa")
    second = SigningKey.objects.exclude(pk=first.pk).get()
    assert second.state == State.NEXT
    assert "run rotate again after your relying parties' JWKS cache time" in out
    assert {first.kid, second.kid} <= {key["kid"] for key in published(client)}
    assert kid_of(signing.sign_id_token(CLAIMS, "PS256")) == first.kid

    # rotate again: the waiting key signs, the old one is retired and still published.
    out = keys_command("rotate", "--type", "rsa")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (State.RETIRED, State.ACTIVE)
    assert first.retired_at and second.activated_at
    assert f"Retired RSA key {first.kid}" in out
    assert kid_of(signing.sign_id_token(CLAIMS, "PS256")) == second.kid
    assert kid_of(signing.sign_id_token(CLAIMS, "RS256")) == second.kid
    assert {first.kid, second.kid} <= {key["kid"] for key in published(client)}

    listing = keys_command("list")
    assert first.kid in listing and "retired" in listing and "PRIVATE" not in listing

    # prune keeps a key retired within the keep time, and deletes it after.
    assert "Deleted 0" in keys_command("prune")
    keep = timedelta(seconds=signing.ciba_settings.SIGNING_KEY_RETIRED_KEEP_SECONDS)
    SigningKey.objects.filter(pk=first.pk).update(retired_at=timezone.now() - keep - timedelta(seconds=1))
    assert "Deleted 1" in keys_command("prune")
    assert not SigningKey.objects.filter(pk=first.pk).exists()
    assert first.kid not in {key["kid"] for key in published(client)}
    assert second.kid in {key["kid"] for key in published(client)}


def test_prune_takes_the_time_to_measure_from(db):
    signing.generate_key("EC")
    signing.generate_key("EC")
    _, old = signing.activate("EC")
    keep = signing.ciba_settings.SIGNING_KEY_RETIRED_KEEP_SECONDS
    assert signing.prune(now=old.retired_at + timedelta(seconds=keep - 1)) == 0
    assert signing.prune(now=old.retired_at + timedelta(seconds=keep + 1)) == 1
    assert list(SigningKey.objects.values_list("state", flat=True)) == [State.ACTIVE]


def test_activate_without_a_waiting_key_is_a_clear_error(db):
    with pytest.raises(CommandError, match="No EC key is waiting"):
        keys_command("activate", "--type", "ec")
    signing.generate_key("EC")
    with pytest.raises(signing.SigningKeyMissing):
        signing.activate("EC")


def test_small_rsa_keys_are_refused(db):
    with pytest.raises(CommandError, match="2048"):
        keys_command("add", "--type", "rsa", "--bits", "1024")
    with pytest.raises(ValueError):
        signing.generate_key("RSA", bits=2047)
    with pytest.raises(ValueError):
        signing.generate_key("oct")
    assert not SigningKey.objects.exists()


def test_key_sizes_and_kids(db):
    rsa_key = signing.generate_key("rsa", bits=3072)
    ec_key = signing.generate_key("ec")
    assert signing._private_key(rsa_key.private_pem).key_size == 3072
    assert signing._private_key(ec_key.private_pem).curve.name == "secp256r1"
    # The kid is the RFC 7638 thumbprint of the public key.
    jwk = next(key for key in signing.published_jwks() if key["kid"] == rsa_key.kid)
    assert (
        jwt.PyJWK(jwk).key.public_numbers()
        == signing._private_key(rsa_key.private_pem).public_key().public_numbers()
    )
    assert len(rsa_key.kid) == 43


# --- the JWKS endpoint ---------------------------------------------------------------------


def test_the_jwks_endpoint_publishes_every_key_once_and_nothing_private(client, db, settings):
    active_rsa = signing_key("RSA")
    next_rsa = signing.generate_key("RSA")
    active_ec = signing.generate_key("EC")
    response = client.get(JWKS_URL)
    assert response["Access-Control-Allow-Origin"] == "*"
    max_age = settings.OAUTH2_PROVIDER.get("OIDC_JWKS_MAX_AGE_SECONDS", 3600)
    assert response["Cache-Control"].startswith(f"public, max-age={max_age}")
    keys = response.json()["keys"]
    kids = [key["kid"] for key in keys]
    assert len(kids) == len(set(kids)) == 4  # three database keys and DOT's settings key
    assert {active_rsa.kid, next_rsa.kid, active_ec.kid} < set(kids)
    for key in keys:
        assert not PRIVATE_MEMBERS & set(key), key
        assert key["use"] == "sig"
        jwt.PyJWK(key, algorithm="ES256" if key["kty"] == "EC" else "RS256")
    by_kid = {key["kid"]: key for key in keys}
    # An RSA key signs RS256 and PS256, so it names neither; DOT's key signs RS256 only.
    assert "alg" not in by_kid[active_rsa.kid] and "alg" not in by_kid[next_rsa.kid]
    assert by_kid[active_ec.kid]["alg"] == "ES256" and by_kid[active_ec.kid]["crv"] == "P-256"
    dot_kid = (set(kids) - {active_rsa.kid, next_rsa.kid, active_ec.kid}).pop()
    assert by_kid[dot_kid]["alg"] == "RS256"


def test_discovery_still_points_at_the_jwks_endpoint(client, db):
    document = client.get("/o/.well-known/openid-configuration").json()
    assert document["jwks_uri"].endswith(JWKS_URL)


@pytest.mark.parametrize("alg", ["PS256", "ES256", "RS256"])
def test_tokens_signed_with_database_keys_verify_against_the_published_set(client, db, alg):
    key = signing_key(signing.kty_for_alg(alg))
    token = signing.sign_id_token(CLAIMS, alg)
    assert kid_of(token) == key.kid
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg and header["typ"] == "JWT"
    assert verify_with_jwks(client, token, alg)["sub"] == "1"


def test_rs256_falls_back_to_dots_key(client, db, settings):
    token = signing.sign_id_token(CLAIMS, "RS256")
    assert verify_with_jwks(client, token, "RS256")["sub"] == "1"
    assert verify_with_jwks(client, token, "RS256") == jwt.decode(
        token,
        settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"],
        algorithms=["RS256"],
        options={"verify_signature": False},
    )
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEY": ""}
    with pytest.raises(signing.SigningKeyMissing):
        signing.sign_id_token(CLAIMS, "RS256")


def test_algorithms_no_key_signs_are_refused(db):
    with pytest.raises(signing.SigningKeyMissing):
        signing.sign_id_token(CLAIMS, "PS256")
    with pytest.raises(signing.SigningKeyMissing):
        signing.sign_id_token(CLAIMS, "ES256")
    with pytest.raises(ValueError):
        signing.sign_id_token(CLAIMS, "HS256")
    assert signing.kty_for_alg("PS256") == "RSA" and signing.kty_for_alg("ES256") == "EC"
    with pytest.raises(ValueError):
        signing.kty_for_alg("none")


def test_the_available_algorithms_say_what_can_be_signed_now(db, settings):
    assert signing.id_token_algs_available() == ["RS256", "HS256"]
    settings.CIBA = {**settings.CIBA, "PROFILE": "fapi-ciba"}
    assert signing.id_token_algs_available() == ["RS256"]
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEY": ""}
    assert signing.id_token_algs_available() == []
    signing.generate_key("EC")
    assert signing.id_token_algs_available() == ["ES256"]
    signing.generate_key("RSA")
    assert signing.id_token_algs_available() == ["RS256", "PS256", "ES256"]
    settings.CIBA = {**settings.CIBA, "PROFILE": ""}
    assert signing.id_token_algs_available() == ["RS256", "PS256", "ES256", "HS256"]


def test_a_next_key_alone_signs_nothing(db, settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEY": ""}
    SigningKey.objects.create(kid="waiting", kty="EC", private_pem=_ec_pem(), state=State.NEXT)
    assert "ES256" not in signing.id_token_algs_available()
    assert [key["kid"] for key in signing.published_jwks()] == ["waiting"]


def _ec_pem():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


# --- one active key per type ---------------------------------------------------------------


def test_the_database_allows_one_active_key_per_type(db):
    SigningKey.objects.create(kid="a", kty="EC", private_pem=_ec_pem(), state=State.ACTIVE)
    SigningKey.objects.create(kid="b", kty="RSA", private_pem="x", state=State.ACTIVE)
    with pytest.raises(IntegrityError), transaction.atomic():
        SigningKey.objects.create(kid="c", kty="EC", private_pem=_ec_pem(), state=State.ACTIVE)


def test_a_key_added_while_another_process_activates_one_waits_as_next(db, monkeypatch):
    def racing(kty, using):
        # Another process's first key of this type commits between the check and the insert.
        SigningKey.objects.create(kid="theirs", kty="EC", private_pem=_ec_pem(), state=State.ACTIVE)
        return False

    monkeypatch.setattr(signing, "_has_active", racing)
    mine = signing.generate_key("EC")
    assert mine.state == State.NEXT and mine.pk
    assert SigningKey.objects.get(state=State.ACTIVE).kid == "theirs"


def test_activating_twice_activates_the_next_keys_in_turn(db):
    signing.generate_key("EC")
    older = signing.generate_key("EC")
    newer = signing.generate_key("EC")
    assert signing.activate("EC")[0].kid == newer.kid
    assert signing.activate("EC")[0].kid == older.kid
    assert SigningKey.objects.filter(kty="EC", state=State.ACTIVE).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_activations_never_retire_the_same_key_twice():
    """Two rotations at once (two processes): each activates its own waiting key, in turn."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers itself; row locks are what this checks (production tier).")
    signing.generate_key("EC")
    waiting = {signing.generate_key("EC").kid, signing.generate_key("EC").kid}
    barrier = threading.Barrier(2)
    results, errors = [], []

    def rotate():
        try:
            barrier.wait()
            results.append(signing.activate("EC"))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=rotate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {new.kid for new, _ in results} == waiting
    assert len({old.kid for _, old in results}) == 2
    assert SigningKey.objects.filter(kty="EC", state=State.ACTIVE).count() == 1


# --- the per-process cache -----------------------------------------------------------------


def test_after_activate_the_next_signature_uses_the_new_key(db):
    first = signing.generate_key("EC")
    second = signing.generate_key("EC")
    assert kid_of(signing.sign_id_token(CLAIMS, "ES256")) == first.kid
    signing.activate("EC")
    assert kid_of(signing.sign_id_token(CLAIMS, "ES256")) == second.kid


def test_a_change_commits_a_new_version_stamp(db, django_capture_on_commit_callbacks):
    signing.generate_key("EC")
    signing.id_token_algs_available()
    stamp = cache.get(signing.VERSION_CACHE_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        signing.generate_key("EC")
        assert cache.get(signing.VERSION_CACHE_KEY) == stamp  # not before the commit
    assert cache.get(signing.VERSION_CACHE_KEY) != stamp


def test_other_processes_changes_are_seen_by_the_stamp_or_within_the_local_window(db, monkeypatch):
    first = signing.generate_key("EC")
    second = signing.generate_key("EC")
    assert kid_of(signing.sign_id_token(CLAIMS, "ES256")) == first.kid
    # Another process rotates (here: the rows change behind this process's back).
    SigningKey.objects.filter(pk=first.pk).update(state=State.RETIRED, retired_at=timezone.now())
    SigningKey.objects.filter(pk=second.pk).update(state=State.ACTIVE, activated_at=timezone.now())
    assert kid_of(signing.sign_id_token(CLAIMS, "ES256")) == first.kid  # cached, no query
    # ... and its commit bumps the shared stamp: seen at the next use.
    cache.set(signing.VERSION_CACHE_KEY, "bumped elsewhere")
    assert kid_of(signing.sign_id_token(CLAIMS, "ES256")) == second.kid

    # Without the stamp (a per-process cache), the local window bounds the delay.
    SigningKey.objects.filter(pk=second.pk).update(state=State.RETIRED, retired_at=timezone.now())
    SigningKey.objects.filter(pk=first.pk).update(state=State.ACTIVE)
    assert kid_of(signing.sign_id_token(CLAIMS, "ES256")) == second.kid
    later = time.monotonic() + signing.LOCAL_CACHE_SECONDS + 1
    monkeypatch.setattr(signing.time, "monotonic", lambda: later)
    assert kid_of(signing.sign_id_token(CLAIMS, "ES256")) == first.kid


def test_signing_reads_the_database_when_the_cache_fails(db, monkeypatch):
    class BrokenCache:
        def get(self, *args, **kwargs):
            raise ConnectionError("cache down")

    first = signing.generate_key("EC")
    second = signing.generate_key("EC")
    monkeypatch.setattr(signing, "cache", BrokenCache())
    assert kid_of(signing.sign_id_token(CLAIMS, "ES256")) == first.kid
    SigningKey.objects.filter(pk=first.pk).update(state=State.RETIRED, retired_at=timezone.now())
    SigningKey.objects.filter(pk=second.pk).update(state=State.ACTIVE)
    assert kid_of(signing.sign_id_token(CLAIMS, "ES256")) == second.kid


def test_database_reads_are_cached_between_signatures(db, django_assert_num_queries):
    signing.generate_key("EC")
    signing.sign_id_token(CLAIMS, "ES256")
    with django_assert_num_queries(0):
        signing.sign_id_token(CLAIMS, "ES256")
        signing.id_token_algs_available()
        signing.published_jwks()


# --- id_token_hint signed with a database key ----------------------------------------------


def hint_request(client, app, secret, token):
    return client.post(
        "/o/backchannel-authentication/",
        f"scope=openid&id_token_hint={token}",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


def hint_claims(app, user):
    return {"iss": ISSUER, "aud": app.client_id, "sub": str(user.pk), "exp": int(time.time()) + 60}


@pytest.mark.parametrize("alg", ["PS256", "ES256", "RS256"])
def test_an_id_token_hint_signed_with_a_database_key_is_accepted(client, alice, make_client, alg):
    app, secret = make_client("poll")
    key = signing_key(signing.kty_for_alg(alg))
    token = signing.sign_id_token(hint_claims(app, alice), alg)
    assert kid_of(token) == key.kid
    response = hint_request(client, app, secret, token)
    assert response.status_code == 200, response.content


def test_a_hint_signed_with_a_retired_key_is_accepted_until_the_key_is_pruned(client, alice, make_client):
    app, secret = make_client("poll")
    signing_key("RSA")
    old_token = signing.sign_id_token(hint_claims(app, alice), "PS256")
    signing.generate_key("RSA")
    _, retired = signing.activate("RSA")
    assert hint_request(client, app, secret, old_token).status_code == 200
    keep = signing.ciba_settings.SIGNING_KEY_RETIRED_KEEP_SECONDS
    assert signing.prune(now=retired.retired_at + timedelta(seconds=keep + 1)) == 1
    response = hint_request(client, app, secret, old_token)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_an_rsa_key_declared_for_rs256_does_not_verify_ps256(client, alice, make_client, settings):
    """DOT's settings key is published with alg RS256: a PS256 token under its kid is refused."""
    app, secret = make_client("poll")
    pem = settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]
    dot_kid = signing.published_jwks()[0]["kid"]
    token = jwt.encode(hint_claims(app, alice), pem, algorithm="PS256", headers={"kid": dot_kid})
    response = hint_request(client, app, secret, token)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


# --- the admin -----------------------------------------------------------------------------


def test_the_admin_lists_keys_read_only_and_never_shows_the_private_key(admin_client):
    key = signing.generate_key("EC")
    listing = admin_client.get("/admin/ciba/signingkey/")
    assert listing.status_code == 200 and key.kid in listing.content.decode()
    detail = admin_client.get(f"/admin/ciba/signingkey/{key.pk}/change/")
    assert detail.status_code == 200
    assert "PRIVATE KEY" not in detail.content.decode() and "PRIVATE KEY" not in listing.content.decode()
    assert admin_client.get("/admin/ciba/signingkey/add/").status_code == 403
    assert admin_client.post(f"/admin/ciba/signingkey/{key.pk}/delete/", {"post": "yes"}).status_code == 403
    assert SigningKey.objects.filter(pk=key.pk).exists()
