""" "Show my code": login_hint_tokens this server issues for a signed-in user, and a client
(a kiosk) sends back to the backchannel endpoint (issue 28; ``ciba.hint_tokens``).

Every code is minted through the consent API endpoint and redeemed through the real
backchannel endpoint by a real client; time is moved by shifting Django's clock.
"""

import base64
import hashlib
import json
import time
from datetime import datetime, timedelta

import jwt
import pytest
from django.test import override_settings
from django.utils import timezone

from ciba import hint_tokens
from ciba.models import AuthenticationRequest, LoginHintHandle
from tests.keys import public_jwk
from tests.protocol import consent_bearer
from tests.test_hints import ISSUER, KEY, ask, error_of, lht, user_of

MINT = "/o/ciba/login-hint-token/"
#: Another key than the test settings' SECRET_KEY (which also keys the clients' secret hashes).
OLD_KEY = "the-old-secret-key-" + "x" * 40


@pytest.fixture
def issuing(settings, no_user_limits):
    """Show my code on (and the per-user request limits off: some tests start several requests)."""
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_TOKEN_ISSUANCE": True}


@pytest.fixture
def clock(monkeypatch):
    """Django's clock, moved forward by ``clock.shift(seconds)`` (``timezone.now`` is what the
    server reads for issuing, expiry and single use)."""
    real_now = timezone.now

    class Clock:
        offset = timedelta()

        def shift(self, seconds):
            self.offset += timedelta(seconds=seconds)

    clock = Clock()
    monkeypatch.setattr(timezone, "now", lambda: real_now() + clock.offset)
    return clock


@pytest.fixture
def kiosk(make_client):
    return make_client("poll")


def mint(client, user):
    response = client.post(MINT, **consent_bearer(user))
    assert response.status_code == 200, response.content
    return response.json()["login_hint_token"]


def scan(client, kiosk, token):
    app, secret = kiosk
    return ask(client, app, secret, f"scope=openid&login_hint_token={token}")


def description_of(response):
    return response.json()["error_description"]


def segments(token):
    return token.split(".")


def claims_of(token):
    payload = segments(token)[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def ours(claims, headers=None):
    """A token signed with this server's own key: only to show that claims are checked too."""
    return jwt.encode(
        claims, hint_tokens._signing_keys()[0], algorithm="HS256", headers=headers or {"typ": hint_tokens.TYP}
    )


# --- the path that works ------------------------------------------------------------------


def test_a_shown_code_names_its_user_and_starts_a_request(client, alice, kiosk, issuing):
    token = mint(client, alice)
    response = scan(client, kiosk, token)
    assert user_of(response) == alice
    request = AuthenticationRequest.objects.get(auth_req_id=response.json()["auth_req_id"])
    assert request.hint_kind == "login_hint_token"
    assert request.client == kiosk[0]


def test_a_code_holds_no_personal_data_only_an_opaque_handle(client, alice, issuing):
    token = mint(client, alice)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "login-hint+jwt"}
    claims = claims_of(token)
    assert set(claims) == {"iss", "aud", "iat", "exp", "sub_id"}
    assert claims["iss"] == claims["aud"] == ISSUER
    assert claims["exp"] - claims["iat"] == 120
    assert set(claims["sub_id"]) == {"format", "id"} and claims["sub_id"]["format"] == "opaque"
    handle = claims["sub_id"]["id"]
    assert len(base64.urlsafe_b64decode(handle + "==")) == 16
    text = json.dumps(claims)
    for personal in ("alice", "example.com", f'"{alice.pk}"', "sub"):
        assert personal not in text.replace("sub_id", "")
    # At rest only the handle's SHA-256: a database reader cannot mint a scannable code.
    row = LoginHintHandle.objects.get(user=alice)
    assert row.digest == hashlib.sha256(handle.encode()).hexdigest() and handle not in row.digest


def test_a_client_signed_login_hint_token_still_works_beside_the_servers_own(
    client, alice, make_client, issuing
):
    app, secret = make_client("poll", jwks={"keys": [public_jwk(KEY, "k1")]})
    assert user_of(ask(client, app, secret, f"scope=openid&login_hint_token={lht(app)}")) == alice
    assert user_of(scan(client, (app, secret), mint(client, alice))) == alice


def test_a_code_minted_under_an_old_secret_key_still_in_the_fallbacks_is_accepted(
    client, alice, kiosk, issuing, settings
):
    current = settings.SECRET_KEY
    settings.SECRET_KEY = OLD_KEY
    token = mint(client, alice)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = current, [OLD_KEY]
    assert user_of(scan(client, kiosk, token)) == alice


def test_a_code_minted_under_a_secret_key_no_longer_kept_is_refused(client, alice, kiosk, issuing, settings):
    current = settings.SECRET_KEY
    settings.SECRET_KEY = OLD_KEY
    token = mint(client, alice)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = current, []
    response = scan(client, kiosk, token)
    assert error_of(response) == "invalid_request" and "signature" in description_of(response)


# --- single use, expiry ----------------------------------------------------------------------


def test_a_code_is_used_once(client, alice, kiosk, issuing):
    token = mint(client, alice)
    assert user_of(scan(client, kiosk, token)) == alice
    replay = scan(client, kiosk, token)
    assert error_of(replay) == "invalid_request" and "already used" in description_of(replay)
    assert AuthenticationRequest.objects.count() == 1


def test_a_code_used_by_one_client_is_refused_to_another(client, alice, kiosk, make_client, issuing):
    token = mint(client, alice)
    assert user_of(scan(client, kiosk, token)) == alice
    assert error_of(scan(client, make_client("poll"), token)) == "invalid_request"


def test_an_expired_code_is_expired_login_hint_token(client, alice, kiosk, issuing, clock):
    token = mint(client, alice)
    clock.shift(121 + hint_tokens.OWN_LEEWAY)
    assert error_of(scan(client, kiosk, token)) == "expired_login_hint_token"
    assert not AuthenticationRequest.objects.exists()


def test_a_code_is_accepted_until_its_lifetime_ends(client, alice, kiosk, issuing, clock):
    token = mint(client, alice)
    clock.shift(115)
    assert user_of(scan(client, kiosk, token)) == alice


def test_the_lifetime_follows_the_setting(client, alice, kiosk, issuing, settings, clock):
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_TOKEN_LIFETIME": 30}
    response = client.post(MINT, **consent_bearer(alice))
    assert response.json()["expires_in"] == 30
    clock.shift(31 + hint_tokens.OWN_LEEWAY)
    assert error_of(scan(client, kiosk, response.json()["login_hint_token"])) == "expired_login_hint_token"


def test_an_expired_code_with_a_bad_signature_is_invalid_request_not_expired(
    client, alice, kiosk, issuing, clock
):
    header, payload, signature = segments(mint(client, alice))
    clock.shift(300)
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    assert error_of(scan(client, kiosk, forged)) == "invalid_request"


# --- forgeries and other servers' tokens ---------------------------------------------------


def test_a_tampered_payload_is_invalid_request(client, alice, kiosk, issuing):
    header, payload, signature = segments(mint(client, alice))
    claims = claims_of(f"{header}.{payload}.{signature}")
    claims["exp"] += 3600
    response = scan(client, kiosk, f"{header}.{b64(claims)}.{signature}")
    assert error_of(response) == "invalid_request" and "signature" in description_of(response)


def test_a_tampered_signature_is_invalid_request(client, alice, kiosk, issuing):
    header, payload, signature = segments(mint(client, alice))
    flipped = ("B" if signature[0] != "B" else "C") + signature[1:]
    assert error_of(scan(client, kiosk, f"{header}.{payload}.{flipped}")) == "invalid_request"
    # The genuine code was never consumed by the forgeries.
    assert user_of(scan(client, kiosk, f"{header}.{payload}.{signature}")) == alice


def test_a_code_signed_by_another_server_is_invalid_request(client, alice, kiosk, issuing, settings):
    current = settings.SECRET_KEY
    settings.SECRET_KEY = "another-server-entirely-" + "z" * 40
    elsewhere = mint(client, alice)  # the same issuer and claims, another server's key
    settings.SECRET_KEY = current
    assert error_of(scan(client, kiosk, elsewhere)) == "invalid_request"


def test_a_token_the_client_signed_claiming_to_be_ours_is_invalid_request(
    client, alice, make_client, issuing
):
    app, secret = make_client("poll", jwks={"keys": [public_jwk(KEY, "k1")]})
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 60,
        "sub_id": {"format": "opaque", "id": "A" * 22},
        "sub": "alice",
    }
    for headers in ({"kid": "k1"}, {"kid": "k1", "typ": "login-hint+jwt"}):
        forged = jwt.encode(claims, KEY, algorithm="RS256", headers=headers)
        response = ask(client, app, secret, f"scope=openid&login_hint_token={forged}")
        assert error_of(response) == "invalid_request"
    assert "HS256" in description_of(response)
    assert not AuthenticationRequest.objects.exists()


def test_an_unsigned_token_claiming_to_be_ours_is_invalid_request(client, alice, kiosk, issuing):
    header, payload, _ = segments(mint(client, alice))
    none_header = b64({"alg": "none", "typ": "login-hint+jwt"})
    assert error_of(scan(client, kiosk, f"{none_header}.{payload}.")) == "invalid_request"


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "https://elsewhere.example/o"},
        {"aud": [ISSUER, "https://elsewhere.example/o"]},
        {"iss": "https://elsewhere.example/o"},
        {"exp": None},
        {"sub_id": {"format": "email", "email": "alice@example.com"}},
        {"sub_id": {"format": "opaque", "id": "never-issued-handle-xyz"}},
    ],
)
def test_a_code_whose_claims_are_not_ours_is_invalid_request(client, alice, kiosk, issuing, changes):
    claims = claims_of(mint(client, alice))
    claims.update(changes)
    token = ours({k: v for k, v in claims.items() if v is not None})
    assert error_of(scan(client, kiosk, token)) == "invalid_request"


def test_a_token_of_ours_without_the_hint_typ_is_invalid_request(client, alice, kiosk, issuing):
    # An ID token this server signed has our iss but is not a code: it is refused, not redeemed.
    claims = claims_of(mint(client, alice))
    assert error_of(scan(client, kiosk, ours(claims, headers={"typ": "JWT"}))) == "invalid_request"


@pytest.mark.parametrize(
    "garbage",
    [
        "A" * 10_000,
        "eyJ" + "A" * 10_000 + ".e30.sig",
        b64({"alg": "HS256", "typ": "login-hint+jwt"}) + "." + "B" * 10_000 + ".sig",
        "a.b.c",
        "...",
    ],
    ids=["10kB-no-dots", "10kB-header", "10kB-ours-claimed", "three-dots", "empty-parts"],
)
def test_garbage_as_a_login_hint_token_is_a_400_never_a_500(client, alice, kiosk, issuing, garbage):
    response = scan(client, kiosk, garbage)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_request"


# --- the user ------------------------------------------------------------------------------


def test_a_code_whose_user_was_deactivated_since_is_unknown_user_id(client, alice, kiosk, issuing):
    token = mint(client, alice)
    alice.is_active = False
    alice.save()
    assert error_of(scan(client, kiosk, token)) == "unknown_user_id"


def test_a_code_whose_user_was_deleted_is_refused(client, alice, kiosk, issuing):
    # The user's codes go with them (the handle's row cascades): the code is no longer valid.
    token = mint(client, alice)
    alice.delete()
    assert error_of(scan(client, kiosk, token)) == "invalid_request"
    assert not AuthenticationRequest.objects.exists()


def test_a_code_shown_while_issuance_was_on_is_refused_once_it_is_off(
    client, alice, kiosk, issuing, settings
):
    token = mint(client, alice)
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_TOKEN_ISSUANCE": False}
    assert error_of(scan(client, kiosk, token)) == "invalid_request"


# --- the consent API endpoint ----------------------------------------------------------------


def test_the_endpoint_answers_a_code_and_when_it_expires(client, alice, issuing):
    before = timezone.now()
    response = client.post(MINT, **consent_bearer(alice))
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"login_hint_token", "expires_in", "expires_at"}
    assert body["expires_in"] == 120
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert expires_at.utcoffset() == timedelta(0)
    assert before + timedelta(seconds=118) <= expires_at <= timezone.now() + timedelta(seconds=121)
    assert claims_of(body["login_hint_token"])["exp"] == int(expires_at.timestamp())


def test_the_endpoint_accepts_the_users_session(client, alice, issuing):
    client.force_login(alice)
    assert client.post(MINT).status_code == 200


def test_the_endpoint_enforces_csrf_for_a_session(alice, issuing):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.post(MINT).status_code == 403


def test_the_endpoint_needs_the_user(client, alice, issuing):
    assert client.post(MINT).status_code in (401, 403)
    assert not LoginHintHandle.objects.exists()


def test_the_endpoint_refuses_a_token_without_the_consent_scope(client, alice, issuing):
    assert client.post(MINT, **consent_bearer(alice, scope="read")).status_code == 403


@override_settings(CIBA={"LOGIN_HINT_TOKEN_ISSUANCE": False})
def test_the_endpoint_is_404_when_show_my_code_is_off(client, alice):
    assert client.post(MINT, **consent_bearer(alice)).status_code == 404
    assert client.post(MINT).status_code == 404
    assert not LoginHintHandle.objects.exists()


def test_the_endpoint_answers_only_post(client, alice, issuing):
    assert client.get(MINT, **consent_bearer(alice)).status_code == 405


def test_minting_faster_than_about_one_a_second_is_429_with_retry_after(client, alice, issuing, clock):
    for _ in range(hint_tokens.PER_USER):
        mint(client, alice)
    refused = client.post(MINT, **consent_bearer(alice))
    assert refused.status_code == 429
    assert refused.json()["error"] == "access_denied"
    assert 1 <= int(refused["Retry-After"]) <= hint_tokens.PER_USER
    clock.shift(hint_tokens.PER_USER + 0.1)
    mint(client, alice)


def test_a_user_holds_a_few_codes_and_a_newer_one_replaces_the_oldest(client, alice, kiosk, issuing, clock):
    tokens = []
    for _ in range(hint_tokens.PER_USER + 1):
        tokens.append(mint(client, alice))
        clock.shift(1.1)
    assert LoginHintHandle.objects.filter(user=alice).count() == hint_tokens.PER_USER
    oldest = scan(client, kiosk, tokens[0])
    assert error_of(oldest) == "invalid_request" and "no longer valid" in description_of(oldest)
    for token in tokens[1:]:
        assert user_of(scan(client, kiosk, token)) == alice


def test_a_page_left_open_all_day_does_not_grow_the_table(client, alice, issuing, clock):
    for _ in range(40):  # a refresh every 100 s, then some
        mint(client, alice)
        clock.shift(100)
    assert LoginHintHandle.objects.filter(user=alice).count() <= hint_tokens.PER_USER


def test_the_expiry_sweep_purges_codes_that_can_no_longer_be_used(
    client, alice, issuing, clock, django_user_model
):
    bob = django_user_model.objects.create_user("bob", "bob@example.com")
    mint(client, alice)
    clock.shift(60)
    mint(client, bob)
    clock.shift(65 + hint_tokens.OWN_LEEWAY)  # alice's expired, bob's not yet
    assert hint_tokens.purge_expired() == 1
    assert list(LoginHintHandle.objects.values_list("user__username", flat=True)) == ["bob"]


def test_issuing_while_off_is_a_clear_error(alice, rf):
    with pytest.raises(hint_tokens.IssuanceDisabled, match="LOGIN_HINT_TOKEN_ISSUANCE"):
        hint_tokens.issue(alice, rf.post(MINT))
