"""A pending poll's Redis call runs on a connection of the polling thread's own (not redis-py's
pool, whose lending costs more CPU than the round trip): what a client sees must not change
when that connection is closed by Redis, holds a reply nobody read, or finds the script gone.

Needs Redis (``CACHE_URL``): the integration tier, ``./scripts/test --production``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from ciba.client_auth import poll_identity
from ciba.polling import RedisPollState, poll_state
from tests.conftest import basic_auth, start_request

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def store(settings: Any) -> RedisPollState:
    url = os.environ.get("CACHE_URL", "")
    if not url.startswith("redis"):
        pytest.fail("These tests need Redis: set CACHE_URL=redis://... (./scripts/test --production).")
    settings.CIBA = {
        **settings.CIBA,
        "POLL_STATE_CLASS": "ciba.polling.RedisPollState",
        "POLL_STATE_REDIS_URL": url,
    }
    store = poll_state()
    assert isinstance(store, RedisPollState)
    return store


@pytest.fixture
def pending(client: Any, alice: Any, make_client: Any) -> tuple[str, str, str]:
    """``(client_id, fingerprint, auth_req_id)`` of a request the database path answered once
    (so Redis knows it and the client's verified credentials)."""
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    response = client.post(
        "/o/token/",
        f"grant_type=urn:openid:params:grant-type:ciba&auth_req_id={auth_req_id}",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.json()["error"] == "authorization_pending"
    client_id, fingerprint = poll_identity(basic_auth(app.client_id, secret), {})
    return client_id, fingerprint, auth_req_id


def own_connection(store: RedisPollState) -> Any:
    return store._own.connection


def test_a_connection_redis_closed_is_replaced_and_the_poll_answered_from_redis(store, pending):
    client_id, fingerprint, auth_req_id = pending
    assert store.poll(client_id, fingerprint, auth_req_id, time.time()) == "slow_down"
    connection = own_connection(store)
    connection.send_command("CLIENT", "ID")
    store.redis.client_kill_filter(_id=connection.read_response())  # a restart, CLIENT KILL, a timeout
    time.sleep(0.05)  # the server's FIN arrives

    later = time.time() + 60
    assert store.poll(client_id, fingerprint, auth_req_id, later) == "authorization_pending"
    assert store.available  # the breaker stayed closed: Redis was fine


def test_a_reply_left_unread_is_never_taken_for_a_polls_answer(store, pending):
    client_id, fingerprint, auth_req_id = pending
    store.poll(client_id, fingerprint, auth_req_id, time.time())
    own_connection(store).send_command("ECHO", "2")  # a reply that would read as "slow_down"
    time.sleep(0.05)

    assert store.poll(client_id, fingerprint, auth_req_id, time.time() + 60) == "authorization_pending"
    assert store.available


def test_a_script_redis_lost_is_loaded_again_and_the_poll_counted_once(store, pending):
    client_id, fingerprint, auth_req_id = pending
    real = store._poll.sha
    store._poll.sha = "0" * 40  # as after a Redis restart: EVALSHA answers NOSCRIPT

    assert store.poll(client_id, fingerprint, auth_req_id, time.time() + 60) == "authorization_pending"
    assert store._poll.sha == real and store.available
    assert store.poll(client_id, fingerprint, auth_req_id, time.time() + 61) == "slow_down"


def test_each_polling_thread_has_a_connection_of_its_own(store, pending):
    client_id, fingerprint, auth_req_id = pending
    seen: list[Any] = []

    def poll() -> None:
        store.poll(client_id, fingerprint, auth_req_id, time.time())
        seen.append(own_connection(store))

    threads = [threading.Thread(target=poll) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    poll()
    assert len({id(connection) for connection in seen}) == 4
