"""Failed client authentications are limited per (client, address) and per address, never per
client id alone, so nobody can lock a client out by naming it; cheap checks (keyed-hash
secrets, certificates, JWTs with keys held) always run; expensive ones (slow password hashes)
are refused before they cost anything when over budget, and capped globally (503)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.hashers import check_password as real_check_password
from django.test import override_settings

from ciba.client_auth import hashers
from ciba.constants import CIBA_GRANT_TYPE
from tests.conftest import basic_auth
from tests.integration.tls import MTLS_SETTINGS, Pki, presenting
from tests.keys import assertion_claims, public_jwk, rsa_key, sign
from tests.protocol import BACKCHANNEL, FORM, backchannel, oauth_error, token

LIMITS = {
    "CLIENT_AUTH_FAILURE_RATE_PER_CLIENT_ADDRESS": "3/minute",
    "CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS": "5/minute",
    "CLIENT_AUTH_FAILURE_BURST": 5,  # whole minutes: 3 per minute per (id, address), 5 per address
    "ALLOW_LOW_ENTROPY_CLIENT_SECRETS": True,  # the slow-hash clients below
}
BODY = "scope=openid&login_hint=alice"
WEAK = "kiosk-secret"  # a site-chosen secret: kept under the slow hash (an expensive check)


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The guard's clock, stopped mid-slot (slots are aligned to the clock); tests move it."""
    now = [1_800_000_030.0]
    monkeypatch.setattr("ciba.client_auth.guard._now", lambda: now[0])
    return now


@pytest.fixture
def hashes(monkeypatch):
    """How many slow password hashes the server computed (the cost an attacker wants to impose)."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return real_check_password(*args, **kwargs)

    monkeypatch.setattr("ciba.client_auth.secret.check_password", counting)
    return calls


@pytest.fixture
def strong(make_client):
    """A client with a generated secret, stored under the keyed hash (checked with one HMAC)."""
    secret = secrets.token_urlsafe(32)
    app, _ = make_client("poll", secret=secret)
    assert hashers.is_keyed(app.client_secret)
    return app, secret


def wrong(client, app, address="203.0.113.7", **extra):
    return backchannel(
        client,
        app,
        None,
        BODY,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, "wrong"),
        REMOTE_ADDR=address,
        **extra,
    )


@override_settings(CIBA={**LIMITS})
def test_repeated_wrong_secrets_on_a_slow_hash_are_refused_with_429_before_any_hash(
    client, alice, make_client, hashes
):
    app, _ = make_client("poll", secret=WEAK)
    for _ in range(3):
        oauth_error(wrong(client, app), 401, "invalid_client")
    assert len(hashes) == 3
    refused = wrong(client, app)
    oauth_error(refused, 429, "invalid_client")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert len(hashes) == 3  # the refusal cost no hash


@override_settings(CIBA={**LIMITS})
@pytest.mark.parametrize("kind", ["keyed", "slow"])
def test_a_stranger_cannot_lock_a_client_out_from_another_address(client, alice, make_client, kind):
    """The client was never verified before (nothing cached): its first request still works,
    however many failures someone else caused with its id."""
    secret = secrets.token_urlsafe(32) if kind == "keyed" else WEAK
    app, _ = make_client("poll", secret=secret)
    assert hashers.is_keyed(app.client_secret) == (kind == "keyed")
    answers = {wrong(client, app, "198.51.100.66").status_code for _ in range(12)}
    assert answers == {401, 429}
    response = backchannel(client, app, secret, BODY, REMOTE_ADDR="192.0.2.10")
    assert response.status_code == 200, response.content


@override_settings(CIBA={**LIMITS})
def test_keyed_secrets_are_always_checked_and_their_failures_counted(client, alice, strong, hashes):
    """A keyed hash costs one HMAC: the check runs even over budget (the right secret still
    works from the attacker's own address), and failures over budget are answered 429."""
    app, secret = strong
    for _ in range(3):
        oauth_error(wrong(client, app), 401, "invalid_client")
    refused = wrong(client, app)
    oauth_error(refused, 429, "invalid_client")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert backchannel(client, app, secret, BODY, REMOTE_ADDR="203.0.113.7").status_code == 200
    assert hashes == []  # no password hash at all


@override_settings(CIBA={**LIMITS})
def test_guessing_unknown_client_ids_from_one_address_is_refused(client, alice, make_client):
    app, _ = make_client("poll")
    for n in range(5):
        app.client_id = f"guess-{n}"
        oauth_error(wrong(client, app), 401, "invalid_client")
    app.client_id = "guess-5"
    oauth_error(wrong(client, app), 429, "invalid_client")
    oauth_error(wrong(client, app, address="203.0.113.8"), 401, "invalid_client")  # another address


@override_settings(CIBA={**LIMITS, "TRUSTED_PROXIES": ["10.0.0.0/8"]})
def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(client, alice, make_client):
    app, _ = make_client("poll")
    for n in range(5):
        app.client_id = f"nobody-{n}"
        wrong(client, app, "10.1.2.3", HTTP_X_FORWARDED_FOR="203.0.113.50, 10.9.9.9")
    app.client_id = "nobody-x"
    oauth_error(wrong(client, app, "10.1.2.3", HTTP_X_FORWARDED_FOR="203.0.113.50"), 429, "invalid_client")
    # a forged X-Forwarded-For from outside the proxies is ignored: REMOTE_ADDR counts
    oauth_error(wrong(client, app, "192.0.2.1", HTTP_X_FORWARDED_FOR="203.0.113.50"), 401, "invalid_client")


@override_settings(CIBA={**LIMITS})
@pytest.mark.parametrize("grant", [CIBA_GRANT_TYPE, "client_credentials"])
def test_the_token_endpoint_refuses_repeated_failures_the_same_way(client, alice, make_client, grant):
    from oauth2_provider.models import get_application_model

    if grant == "client_credentials":
        Application = get_application_model()
        app = Application.objects.create(
            name="Backend", client_type="confidential", authorization_grant_type="client-credentials"
        )
    else:
        app, _ = make_client("poll", secret=WEAK)
    params = {"grant_type": grant, "auth_req_id": "x"}
    for _ in range(3):
        response = token(client, app, None, params, HTTP_AUTHORIZATION=basic_auth(app.client_id, "wrong"))
        assert response.status_code == 401, response.content
    refused = token(client, app, None, params, HTTP_AUTHORIZATION=basic_auth(app.client_id, "wrong"))
    assert refused.status_code == 429 and refused.json()["error"] == "invalid_client"
    assert int(refused["Retry-After"]) >= 1


@override_settings(
    CIBA={
        "CLIENT_AUTH_FAILURE_RATE_PER_CLIENT_ADDRESS": "20/minute",
        "CLIENT_AUTH_FAILURE_BURST": 1,
        "ALLOW_LOW_ENTROPY_CLIENT_SECRETS": True,
    }
)
def test_a_rate_is_spread_evenly_so_no_burst_of_hashes_reaches_the_server(
    client, alice, make_client, hashes, clock
):
    """20/minute is one failure per 3 s, not 20 hashes in the first second of a minute."""
    app, _ = make_client("poll", secret=WEAK)
    oauth_error(wrong(client, app), 401, "invalid_client")
    refused = wrong(client, app)
    oauth_error(refused, 429, "invalid_client")
    assert 1 <= int(refused["Retry-After"]) <= 3
    assert len(hashes) == 1
    clock[0] += 3
    oauth_error(wrong(client, app), 401, "invalid_client")  # the next slot: one more check
    assert len(hashes) == 2


def test_a_malformed_rate_is_a_configuration_error_not_a_500_per_request(settings):
    from ciba.checks import check_ciba_settings

    for broken in (
        {"CLIENT_AUTH_FAILURE_RATE_PER_CLIENT_ADDRESS": "20 per minute"},
        {"CLIENT_AUTH_FAILURE_BURST": 0},
    ):
        settings.CIBA = broken
        assert "ciba.E020" in [m.id for m in check_ciba_settings()]
    settings.CIBA = {"BACKCHANNEL_THROTTLE_RATE": None, "CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS": "100/hour"}
    assert "ciba.E020" not in [m.id for m in check_ciba_settings()]


def test_an_unknown_client_id_costs_what_a_known_one_does(client, alice, strong, hashes, monkeypatch):
    """Timing must not tell which client ids exist: both pay one HMAC (no password hash)."""
    app, _ = strong
    macs = []
    real_verify = hashers.ClientSecretHasher.verify
    monkeypatch.setattr(
        hashers.ClientSecretHasher, "verify", lambda self, *a: macs.append(1) or real_verify(self, *a)
    )
    params = {"grant_type": "client_credentials"}
    known = token(client, app, None, params, HTTP_AUTHORIZATION=basic_auth(app.client_id, "wrong"))
    unknown = token(
        client,
        app,
        None,
        params,
        HTTP_AUTHORIZATION=basic_auth("no-such-client", "wrong"),
        REMOTE_ADDR="198.51.100.9",
    )
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    assert len(macs) == 2 and hashes == []
    backchannel(client, app, None, BODY, HTTP_AUTHORIZATION=basic_auth("nobody", "wrong"))
    assert len(macs) == 3 and hashes == []


@override_settings(CIBA={"ALLOW_LOW_ENTROPY_CLIENT_SECRETS": True})
def test_an_address_gets_one_expensive_check_at_a_time(client, alice, make_client, hashes):
    from ciba.client_auth import attempt

    app, _ = make_client("poll", secret=WEAK)
    in_flight = attempt("another-client", "203.0.113.7", expensive=True)
    refused = wrong(client, app, address="203.0.113.7")
    oauth_error(refused, 429, "invalid_client")
    assert refused["Retry-After"] == "1" and hashes == []
    in_flight.succeeded()
    oauth_error(wrong(client, app, address="203.0.113.7"), 401, "invalid_client")
    assert len(hashes) == 1


@override_settings(
    CIBA={"ALLOW_LOW_ENTROPY_CLIENT_SECRETS": True, "CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT": 2}
)
def test_no_client_id_is_locked_while_another_address_checks_it(client, alice, make_client, hashes):
    """The old per-id lock let a stranger's check of an id refuse the real client's."""
    from ciba.client_auth import attempt

    app, _ = make_client("poll", secret=WEAK)
    in_flight = attempt(app.client_id, "198.51.100.77", expensive=True)
    try:
        assert backchannel(client, app, WEAK, BODY, REMOTE_ADDR="198.51.100.78").status_code == 200
    finally:
        in_flight.failed()
    assert len(hashes) == 1


@override_settings(
    CIBA={"CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT": 1, "ALLOW_LOW_ENTROPY_CLIENT_SECRETS": True}
)
def test_past_the_cap_on_expensive_checks_both_endpoints_answer_503_at_once(
    client, alice, make_client, strong, hashes
):
    from ciba.client_auth import attempt

    app, _ = make_client("poll", secret=WEAK)
    keyed, keyed_secret = strong
    in_flight = attempt("someone", "198.51.100.1", expensive=True)  # the one slot is taken
    try:
        busy = backchannel(client, app, WEAK, BODY, REMOTE_ADDR="192.0.2.20")
        oauth_error(busy, 503, "temporarily_unavailable")
        assert busy["Retry-After"] == "1"
        busy = token(client, app, WEAK, {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": "x"})
        oauth_error(busy, 503, "temporarily_unavailable")
        assert busy["Retry-After"] == "1"
        assert hashes == []  # nothing queued behind the slot
        # cheap checks never wait for the cap
        assert backchannel(client, keyed, keyed_secret, BODY).status_code == 200
    finally:
        in_flight.succeeded()
    assert backchannel(client, app, WEAK, BODY, REMOTE_ADDR="192.0.2.20").status_code == 200


class BrokenCache:
    """A cache whose server is gone: every call raises, as django-redis does."""

    def __getattr__(self, name):
        def broken(*args, **kwargs):
            raise ConnectionError("cache server unreachable")

        return broken


def test_an_unreachable_cache_does_not_lock_clients_out(monkeypatch):
    from ciba.client_auth import guard

    monkeypatch.setattr(guard, "cache", BrokenCache())
    checking = guard.attempt("some-client", "203.0.113.9", expensive=True)  # the check goes ahead
    assert checking.failed() is None
    guard.attempt("some-client", "203.0.113.9", expensive=True).succeeded()
    assert guard.attempt("some-client", "203.0.113.9", expensive=False).failed() is None


@override_settings(CIBA={"ALLOW_LOW_ENTROPY_CLIENT_SECRETS": True})
def test_an_unreachable_cache_still_answers_both_kinds_of_client(
    client, alice, make_client, strong, monkeypatch
):
    from ciba.client_auth import guard, secret

    monkeypatch.setattr(guard, "cache", BrokenCache())
    monkeypatch.setattr(secret, "cache", BrokenCache())
    slow, _ = make_client("poll", secret=WEAK)
    keyed, keyed_secret = strong
    assert backchannel(client, slow, WEAK, BODY).status_code == 200
    assert backchannel(client, keyed, keyed_secret, BODY).status_code == 200
    oauth_error(wrong(client, keyed), 401, "invalid_client")


def test_a_busy_clients_remembered_slow_secret_is_refreshed_before_it_lapses(
    client, alice, make_client, hashes, monkeypatch, settings, no_user_limits
):
    """Found by bench.compare: when a busy client's remembered secret lapsed, its concurrent
    requests all needed a hash at once. In the last fifth of the entry's life one request
    re-verifies it, while the others go on using it, so the entry never lapses under traffic."""
    from ciba.client_auth import attempt

    settings.CIBA = {**settings.CIBA, "CLIENT_SECRET_CACHE_SECONDS": 100}
    wall = [1_900_000_000.0]
    monkeypatch.setattr("ciba.client_auth.secret.time.time", lambda: wall[0])
    app, secret = make_client("poll", secret=WEAK)
    assert backchannel(client, app, secret, BODY).status_code == 200
    assert len(hashes) == 1
    wall[0] += 85  # the last fifth: the next request refreshes the entry (one hash)
    assert backchannel(client, app, secret, BODY).status_code == 200
    assert len(hashes) == 2
    wall[0] += 50  # past the first entry's life, within the refreshed one's
    in_flight = attempt(app.client_id, "127.0.0.1", expensive=True)  # and the address's one check
    try:
        assert backchannel(client, app, secret, BODY).status_code == 200  # no 429, no hash
    finally:
        in_flight.succeeded()
    assert len(hashes) == 2


# --- cheap methods: certificates and JWTs with keys held -----------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: Any) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def mtls(client: Any, app: Any, address: str, **headers: Any) -> Any:
    body = f"client_id={quote(app.client_id)}&{BODY}"
    return client.post(BACKCHANNEL, body, content_type=FORM, HTTP_X_FORWARDED_FOR=address, **headers)


@pytest.mark.parametrize("method", ["tls_client_auth", "self_signed_tls_client_auth"])
def test_bogus_requests_naming_an_mtls_client_never_lock_out_its_certificate(
    client, alice, make_client, pki, settings, method
):
    settings.CIBA = {**settings.CIBA, **MTLS_SETTINGS, **LIMITS}
    if method == "tls_client_auth":
        cert = pki.issue("kiosk-guard")
        app, _ = make_client(
            "poll", token_endpoint_auth_method=method, tls_client_auth_subject_dn=cert.subject_dn
        )
    else:
        cert = pki.self_signed("kiosk-guard-self")
        app, _ = make_client("poll", token_endpoint_auth_method=method, jwks={"keys": [cert.jwk("k1")]})
    stranger = pki.issue("not-the-kiosk") if method == "tls_client_auth" else pki.self_signed("other")
    answers = [mtls(client, app, "198.51.100.66", **presenting(stranger)).status_code for _ in range(10)]
    assert set(answers) == {401, 429}
    for address in ("192.0.2.30", "198.51.100.66"):  # its own address, and even the attacker's
        response = mtls(client, app, address, **presenting(cert))
        assert response.status_code == 200, response.content


@override_settings(CIBA={**LIMITS})
def test_bogus_assertions_naming_a_private_key_jwt_client_never_lock_it_out(client, alice, make_client):
    key, forged = rsa_key(), rsa_key()
    app, _ = make_client(
        "poll", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public_jwk(key, "k")]}
    )

    def assertion(signing_key: Any) -> str:
        claims = assertion_claims(app.client_id, "http://testserver/o/backchannel-authentication/")
        return sign(claims, signing_key, "RS256", kid="k")

    def send(signing_key: Any, address: str) -> Any:
        body = (
            f"{BODY}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
            f"&client_assertion={assertion(signing_key)}"
        )
        return client.post(BACKCHANNEL, body, content_type=FORM, REMOTE_ADDR=address)

    assert {send(forged, "198.51.100.66").status_code for _ in range(10)} == {401, 429}
    assert send(key, "192.0.2.40").status_code == 200
    assert send(key, "198.51.100.66").status_code == 200


def test_a_jwks_uri_fetch_is_an_expensive_check_and_keys_held_are_not(
    client, alice, make_client, json_server, settings
):
    from ciba.client_auth import attempt

    settings.CIBA = {**settings.CIBA, "CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT": 1}
    key = rsa_key()
    json_server.documents["/jwks.json"] = {"keys": [public_jwk(key, "k")]}
    app, _ = make_client(
        "poll", token_endpoint_auth_method="private_key_jwt", jwks_uri=json_server.url("/jwks.json")
    )

    def send() -> Any:
        claims = assertion_claims(app.client_id, "http://testserver/o")
        body = (
            f"{BODY}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
            f"&client_assertion={sign(claims, key, 'RS256', kid='k')}"
        )
        return client.post(BACKCHANNEL, body, content_type=FORM)

    in_flight = attempt("someone", "198.51.100.1", expensive=True)
    oauth_error(send(), 503, "temporarily_unavailable")  # would fetch: waits for no slot
    assert json_server.hits == {}
    in_flight.succeeded()
    assert send().status_code == 200  # fetched (one slot), and now held
    in_flight = attempt("someone", "198.51.100.1", expensive=True)
    try:
        assert send().status_code == 200  # keys held: a cheap check, no slot needed
    finally:
        in_flight.succeeded()
    assert json_server.hits["/jwks.json"] == 1
