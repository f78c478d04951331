"""The device-notification batch records its requests in the Redis poll state with one round
trip per batch, not one per notification, and keeps ``RedisPollState``'s rules: a record is
created once and never overwrites one (a decision's tombstone, or the database path's count),
and a Redis that fails or hangs trips the breaker and loses no notification."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from ciba import device_outbox, services
from ciba.models import AuthenticationRequest
from ciba.polling import PENDING, RedisPollState, poll_state, redis_state

Status = AuthenticationRequest.NotificationStatus


def use_store(settings: Any, url: str, **extra: Any) -> RedisPollState:
    settings.CIBA = {
        **settings.CIBA,
        "POLL_STATE_CLASS": "ciba.polling.RedisPollState",
        "POLL_STATE_REDIS_URL": url,
        **extra,
    }
    store = poll_state()
    assert isinstance(store, RedisPollState)
    store._open_until = 0.0  # one store per URL and process: another test may have tripped it
    return store


@pytest.fixture
def store(settings: Any) -> Iterator[RedisPollState]:
    store = use_store(settings, os.environ.get("CACHE_URL", "redis://127.0.0.1:6379/15"))
    yield store
    keys = [redis_state.record_key(ar.auth_req_id) for ar in AuthenticationRequest.objects.all()]
    if keys:
        store.redis.delete(*keys)


@pytest.fixture
def round_trips(store: RedisPollState, monkeypatch: Any) -> list[str]:
    """The commands the poll state's Redis client sends, one round trip each, in the steady
    state: the script is loaded (redis-py loads it at the first NOSCRIPT, once per Redis)."""
    store.redis.script_load(redis_state._TRACK)
    sent: list[str] = []
    execute = store.redis.execute_command

    def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return execute(*args, **options)

    monkeypatch.setattr(store.redis, "execute_command", counted)
    return sent


def pending_requests(alice: Any, app: Any, count: int, **fields: Any) -> list[AuthenticationRequest]:
    """``count`` pending requests of ``app``, each to its own user (per-user caps apply)."""
    users = get_user_model().objects
    return [
        services.create_request(
            expires_in=300,
            client=app,
            user=users.create_user(f"{alice.username}-{next(NUMBERS)}"),
            hint_kind="login_hint",
            scope="openid",
            interval=5,
            **fields,
        )
        for _ in range(count)
    ]


NUMBERS = itertools.count()


def record(store: RedisPollState, ar: AuthenticationRequest) -> dict[str, str]:
    raw = store.redis.hgetall(redis_state.record_key(ar.auth_req_id))
    return {key.decode(): value.decode() for key, value in raw.items()}


def all_sent(requests: list[AuthenticationRequest]) -> bool:
    statuses = AuthenticationRequest.objects.filter(pk__in=[ar.pk for ar in requests]).values_list(
        "device_notification_status", flat=True
    )
    return len(statuses) == len(requests) and set(statuses) == {Status.SENT}


def test_a_batch_records_every_request_with_one_round_trip(store, round_trips, alice, make_client):
    app, _ = make_client("poll")
    requests = pending_requests(alice, app, 30)
    round_trips.clear()

    assert device_outbox.notify_due() == 30

    assert round_trips == ["EVALSHA"]  # not one per notification
    assert all_sent(requests)
    for ar in requests:
        assert record(store, ar) == {
            "s": "p",
            "c": app.client_id,
            "i": "5",
            "l": "0",
            "e": str(int(ar.expires_at.timestamp() * 1000)),
            "d": "0",
        }
        ttl = store.redis.pttl(redis_state.record_key(ar.auth_req_id))
        assert 300_000 < ttl <= 300_000 + redis_state.GRACE_MS  # the request's life and the grace
    # and Redis answers their polls: the records are what the fast path reads
    store.redis.sadd(redis_state.client_key(app.client_id), "fingerprint")
    assert store.poll(app.client_id, "fingerprint", requests[0].auth_req_id, time.time()) == PENDING


def test_a_batch_larger_than_one_script_call_is_split(store, round_trips, alice, make_client, monkeypatch):
    monkeypatch.setattr(redis_state, "TRACK_CHUNK", 4)
    app, _ = make_client("poll")
    requests = pending_requests(alice, app, 10)
    round_trips.clear()

    device_outbox.notify_due()

    assert round_trips == ["EVALSHA"] * 3  # 4 + 4 + 2
    assert all(record(store, ar)["s"] == "p" for ar in requests)


def test_a_decided_requests_tombstone_and_the_database_paths_count_are_never_overwritten(
    store, alice, make_client
):
    app, _ = make_client("poll")
    decided, polled, fresh = pending_requests(alice, app, 3)
    services.deny(
        AuthenticationRequest.objects.select_related("user", "client").get(pk=decided.pk), user=decided.user
    )
    # the database path answered a poll first and made the record (the interval grown since)
    store.redis.hset(
        redis_state.record_key(polled.auth_req_id), mapping={"s": "p", "c": app.client_id, "i": "10"}
    )

    device_outbox.notify_due()

    assert record(store, decided)["s"] == "f"
    assert record(store, polled) == {"s": "p", "c": app.client_id, "i": "10"}
    assert record(store, fresh)["s"] == "p"


def test_a_request_made_with_a_dpop_key_is_marked_in_its_record(store, alice, make_client):
    app, _ = make_client("poll")
    (with_key,) = pending_requests(alice, app, 1, dpop_jkt="0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    (without,) = pending_requests(alice, app, 1)

    device_outbox.notify_due()

    assert record(store, with_key)["d"] == "1"
    assert record(store, without)["d"] == "0"


def test_only_the_first_attempt_records_the_request(store, round_trips, alice, make_client):
    app, _ = make_client("poll")
    (retried,) = pending_requests(alice, app, 1)
    AuthenticationRequest.objects.filter(pk=retried.pk).update(
        device_notification_attempts=1, device_notification_status=Status.RETRYING
    )
    round_trips.clear()

    device_outbox.notify_due()

    assert round_trips == []  # recorded by its first attempt (or by the database path)
    assert all_sent([retried])


def test_with_redis_refusing_the_batch_trips_the_breaker_and_every_notification_goes_out(
    settings, alice, make_client, caplog
):
    store = use_store(settings, "redis://127.0.0.1:9/0")  # nothing listens there
    app, _ = make_client("poll")
    requests = pending_requests(alice, app, 5)

    assert device_outbox.notify_due() == 5

    assert all_sent(requests)
    assert not store.available  # polls now go to the database path, which records them
    assert "Poll state unreachable (track: ConnectionError)" in caplog.text


def test_a_hung_redis_costs_the_batch_one_timeout_and_no_notification(
    settings, hung_redis, alice, make_client, monkeypatch
):
    server, connections = hung_redis
    url = f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    store = use_store(settings, url, POLL_STATE_REDIS_TIMEOUT=0.1, POLL_STATE_BREAKER_SECONDS=60)
    calls: list[int] = []
    track = store._track
    monkeypatch.setattr(store, "_track", lambda **kw: calls.append(len(kw["keys"])) or track(**kw))
    app, _ = make_client("poll")
    requests = pending_requests(alice, app, 12)

    assert device_outbox.notify_due() == 12

    assert calls == [12]  # one call for the batch, which timed out once
    assert all_sent(requests)
    assert not store.available
