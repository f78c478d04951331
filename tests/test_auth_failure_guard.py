"""Wrong client credentials are refused cheaply once they repeat: before any password hash,
per client id and per source address, without locking out the real client."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import check_password as real_check_password
from django.test import override_settings

from ciba.constants import CIBA_GRANT_TYPE
from tests.conftest import basic_auth
from tests.protocol import backchannel, oauth_error, token

LIMITS = {
    "CLIENT_AUTH_FAILURE_RATE_PER_CLIENT": "3/minute",
    "CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS": "5/minute",
    "CLIENT_AUTH_FAILURE_BURST": 5,  # whole minutes: 3 per minute per id, 5 per address
}
BODY = "scope=openid&login_hint=alice"


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The guard's clock, stopped mid-slot (slots are aligned to the clock); tests move it."""
    now = [1_800_000_030.0]
    monkeypatch.setattr("ciba.client_auth.guard._now", lambda: now[0])
    return now


@pytest.fixture
def hashes(monkeypatch):
    """How many password hashes the server computed (the cost an attacker wants to impose)."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return real_check_password(*args, **kwargs)

    monkeypatch.setattr("ciba.client_auth.secret.check_password", counting)
    return calls


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
def test_repeated_wrong_secrets_are_refused_with_429_before_any_hash(client, alice, make_client, hashes):
    app, _ = make_client("poll")
    for _ in range(3):
        oauth_error(wrong(client, app), 401, "invalid_client")
    assert len(hashes) == 3
    refused = wrong(client, app)
    oauth_error(refused, 429, "invalid_client")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert len(hashes) == 3  # the refusal cost no hash


@override_settings(CIBA={**LIMITS})
def test_the_real_client_keeps_working_while_its_id_is_under_attack(client, alice, make_client):
    app, secret = make_client("poll")
    assert backchannel(client, app, secret, BODY).status_code == 200  # verified: remembered
    for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"):
        wrong(client, app, address)
    oauth_error(wrong(client, app, "198.51.100.5"), 429, "invalid_client")  # the id is locked ...
    assert backchannel(client, app, secret, BODY).status_code == 200  # ... but not for its owner


@override_settings(CIBA={**LIMITS})
def test_guessing_unknown_client_ids_from_one_address_is_refused(client, alice, make_client, hashes):
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
    app.client_id = "nobody"
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
        app, _ = make_client("poll")
    params = {"grant_type": grant, "auth_req_id": "x"}
    for _ in range(3):
        response = token(client, app, None, params, HTTP_AUTHORIZATION=basic_auth(app.client_id, "wrong"))
        assert response.status_code == 401, response.content
    refused = token(client, app, None, params, HTTP_AUTHORIZATION=basic_auth(app.client_id, "wrong"))
    assert refused.status_code == 429 and refused.json()["error"] == "invalid_client"
    assert int(refused["Retry-After"]) >= 1


@override_settings(CIBA={"CLIENT_AUTH_FAILURE_RATE_PER_CLIENT": "20/minute", "CLIENT_AUTH_FAILURE_BURST": 1})
def test_a_rate_is_spread_evenly_so_no_burst_of_hashes_reaches_the_server(
    client, alice, make_client, hashes, clock
):
    """20/minute is one failure per 3 s, not 20 hashes in the first second of a minute."""
    app, _ = make_client("poll")
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
        {"CLIENT_AUTH_FAILURE_RATE_PER_CLIENT": "20 per minute"},
        {"CLIENT_AUTH_FAILURE_BURST": 0},
    ):
        settings.CIBA = broken
        assert "ciba.E020" in [m.id for m in check_ciba_settings()]
    settings.CIBA = {"BACKCHANNEL_THROTTLE_RATE": None, "CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS": "100/hour"}
    assert "ciba.E020" not in [m.id for m in check_ciba_settings()]


def test_an_unknown_client_id_at_the_token_endpoint_costs_what_a_known_one_does(
    client, alice, make_client, hashes
):
    """Timing must not tell which client ids exist: both pay one password hash."""
    app, _ = make_client("poll")
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
    assert len(hashes) == 2


def test_a_client_id_gets_one_unverified_check_at_a_time(client, alice, make_client, hashes):
    """Requests arriving while a check of the same id runs are refused at once, not hashed in
    parallel (every worker hashing at once is what stalled legitimate polls under attack)."""
    from ciba.client_auth import attempt

    app, secret = make_client("poll")
    in_flight = attempt(app.client_id, "198.51.100.77")  # another process is checking it
    refused = wrong(client, app, address="198.51.100.78")
    oauth_error(refused, 429, "invalid_client")
    assert refused["Retry-After"] == "1" and len(hashes) == 0
    in_flight.failed()
    oauth_error(wrong(client, app, address="198.51.100.78"), 401, "invalid_client")  # its turn
    assert len(hashes) == 1
    assert backchannel(client, app, secret, BODY, REMOTE_ADDR="198.51.100.79").status_code == 200


def test_a_source_address_gets_one_unverified_check_at_a_time(client, alice, make_client, hashes):
    from ciba.client_auth import attempt

    app, _ = make_client("poll")
    in_flight = attempt("another-client", "203.0.113.7")
    oauth_error(wrong(client, app, address="203.0.113.7"), 429, "invalid_client")
    in_flight.succeeded()
    oauth_error(wrong(client, app, address="203.0.113.7"), 401, "invalid_client")
    assert len(hashes) == 1


class BrokenCache:
    """A cache whose server is gone: every call raises, as django-redis does."""

    def __getattr__(self, name):
        def broken(*args, **kwargs):
            raise ConnectionError("cache server unreachable")

        return broken


def test_an_unreachable_cache_does_not_lock_clients_out(monkeypatch):
    from ciba.client_auth import guard

    monkeypatch.setattr(guard, "cache", BrokenCache())
    checking = guard.attempt("some-client", "203.0.113.9")  # no exception: the check goes ahead
    checking.failed()
    guard.attempt("some-client", "203.0.113.9").succeeded()


def test_a_busy_clients_remembered_secret_is_refreshed_before_it_lapses(
    client, alice, make_client, hashes, monkeypatch, settings
):
    """Found by bench.compare: when a busy client's remembered secret lapsed, its concurrent
    requests all needed a hash at once, and the guard (one unverified check per id at a time)
    answered all but one with 429. In the last fifth of the entry's life one request re-verifies
    it, while the others go on using it, so the entry never lapses under traffic."""
    from ciba.client_auth import attempt

    settings.CIBA = {**settings.CIBA, "CLIENT_SECRET_CACHE_SECONDS": 100}
    wall = [1_900_000_000.0]
    monkeypatch.setattr("ciba.client_auth.secret.time.time", lambda: wall[0])
    app, secret = make_client("poll")
    assert backchannel(client, app, secret, BODY).status_code == 200
    assert len(hashes) == 1
    wall[0] += 85  # the last fifth: the next request refreshes the entry (one hash)
    assert backchannel(client, app, secret, BODY).status_code == 200
    assert len(hashes) == 2
    wall[0] += 50  # past the first entry's life, within the refreshed one's
    in_flight = attempt(app.client_id, "198.51.100.77")  # and the id's one check is taken
    try:
        assert backchannel(client, app, secret, BODY).status_code == 200  # no 429, no hash
    finally:
        in_flight.succeeded()
    assert len(hashes) == 2
