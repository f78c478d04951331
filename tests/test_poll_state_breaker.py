"""A hung Redis under the poll state: polls fall back to the database at once instead of each
waiting for a timeout, decisions are refused at once, and Redis is tried again later."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from ciba import services
from ciba.models import AuthenticationRequest
from ciba.polling import PollStateUnavailable, RedisPollState
from tests.protocol import backchannel, consent_bearer, oauth_error, poll


@pytest.fixture
def hung_store(settings, hung_redis):
    server, connections = hung_redis
    url = f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    settings.CIBA = {
        **settings.CIBA,
        "POLL_STATE_CLASS": "ciba.polling.RedisPollState",
        "POLL_STATE_REDIS_URL": url,
        "POLL_STATE_REDIS_TIMEOUT": 0.1,
        "POLL_STATE_BREAKER_SECONDS": 60,
    }
    from ciba.polling import poll_state

    store = poll_state()
    assert isinstance(store, RedisPollState)
    return store, connections


def test_polls_fall_back_to_the_database_at_once_after_the_first_timeout(
    client, alice, make_client, hung_store
):
    store, connections = hung_store
    app, secret = make_client("poll")
    auth_req_id = backchannel(client, app, secret, "scope=openid&login_hint=alice").json()["auth_req_id"]
    oauth_error(poll(client, app, secret, auth_req_id), 400, "authorization_pending")
    assert not store.available  # the first call timed out and opened the breaker
    tried = len(connections)
    for _ in range(5):  # answered from the database, right, without touching Redis
        assert poll(client, app, secret, auth_req_id).json()["error"] in (
            "authorization_pending",
            "slow_down",
        )
    assert len(connections) == tried


def test_decisions_are_refused_at_once_while_redis_is_unreachable(client, alice, make_client, hung_store):
    store, _ = hung_store
    app, secret = make_client("poll")
    auth_req_id = backchannel(client, app, secret, "scope=openid&login_hint=alice").json()["auth_req_id"]
    with pytest.raises(PollStateUnavailable):
        store.finish(AuthenticationRequest.objects.get())
    response = Client().post(f"/o/ciba/requests/{auth_req_id}/approve/", **consent_bearer(alice))
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert AuthenticationRequest.objects.get().state == "pending"  # nothing was decided


def test_redis_is_tried_again_when_the_breaker_closes(alice, make_client, hung_store, monkeypatch):
    store, connections = hung_store
    app, _ = make_client("poll")
    ar = services.create_request(
        expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    assert store.poll(app.client_id, "fp", ar.auth_req_id, 0) is None
    assert not store.available
    before = len(connections)
    store._open_until = 0.0  # the breaker window has passed
    assert store.poll(app.client_id, "fp", ar.auth_req_id, 0) is None  # tried Redis again, hung again
    assert len(connections) > before and not store.available


def test_a_hung_redis_costs_one_timeout_not_one_per_redis_py_retry(hung_store):
    store, _ = hung_store
    started = time.monotonic()
    assert store.poll("kiosk", "fingerprint", "A" * 43, 0) is None
    # POLL_STATE_REDIS_TIMEOUT is 0.1 s here; redis-py's default Retry (three retries with
    # backoff) would wait at least four times that.
    assert time.monotonic() - started < 0.35
    assert not store.available
