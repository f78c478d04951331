"""The pending-poll fast lane on Redis (``RedisPollState``) and PostgreSQL: only what the record
proves, Django's bytes, and Django for everything else."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler

from ciba import polling, services
from ciba.fast_lane import FastLane
from ciba.models import AuthenticationRequest
from ciba.polling import RedisPollState, poll_state
from ciba.tasks import notify_authentication_device
from tests.conftest import basic_auth, start_request
from tests.integration.conftest import redis_poll_state_on
from tests.test_fast_lane import FORM, STARTPROJECT_MIDDLEWARE, Site, Spy, call, environ, grant


@pytest.fixture(autouse=True)
def redis_poll_state(settings: Any) -> RedisPollState:
    settings.MIDDLEWARE = STARTPROJECT_MIDDLEWARE
    return redis_poll_state_on(settings)


@pytest.fixture
def site(redis_poll_state: Any) -> Site:
    django = WSGIHandler()
    spy = Spy(django)
    return Site(django, spy, FastLane(spy))


@pytest.fixture
def clock(monkeypatch: Any) -> list[float]:
    moment = [time.time()]
    monkeypatch.setattr(polling, "now", lambda: moment[0])
    return moment


def recorded(client: Any, app: Any, secret: str, body: str | None = None) -> str:
    """A request started over HTTP and recorded in Redis, as the device notification task does."""
    auth_req_id = start_request(client, app, secret, *([body] if body else []))
    notify_authentication_device.apply((AuthenticationRequest.objects.get(auth_req_id=auth_req_id).pk,))
    return auth_req_id


def basic(app: Any, secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}


def test_pending_and_slow_down_from_the_lane_are_djangos_bytes(
    site, client, alice, make_client, clock, django_assert_num_queries
):
    app, secret = make_client("poll")
    first, second = recorded(client, app, secret), recorded(client, app, secret)
    from_django = call(site.django, environ(grant(first), **basic(app, secret)))  # verifies, remembers
    assert from_django.error == "authorization_pending"

    with django_assert_num_queries(0):
        pending = call(site.lane, environ(grant(second), **basic(app, secret)))
        slow_down = call(site.lane, environ(grant(second), **basic(app, secret)))
    assert site.spy.calls == 0

    assert pending == from_django
    assert slow_down.error == "slow_down"
    assert slow_down == call(site.django, environ(grant(second), **basic(app, secret)))


def test_the_lane_grows_the_interval_atomically_as_the_full_path_does(
    site, client, alice, make_client, clock
):
    app, secret = make_client("poll")
    auth_req_id = recorded(client, app, secret)
    assert call(site.lane, environ(grant(auth_req_id), **basic(app, secret))).error == "authorization_pending"
    assert site.spy.calls == 1  # the first poll verified the secret on the full path
    polled_at, answers = clock[0], []
    for seconds_later in (1, 6, 12, 32):  # interval 5 -> 10 -> 15 -> 20, then waited long enough
        clock[0] = polled_at + seconds_later
        answers.append(call(site.lane, environ(grant(auth_req_id), **basic(app, secret))).error)
    assert answers == ["slow_down", "slow_down", "slow_down", "authorization_pending"]
    assert site.spy.calls == 1


def test_a_decided_request_is_never_pending_in_the_lane(site, client, alice, make_client, clock):
    app, secret = make_client("poll")
    approved, denied = recorded(client, app, secret), recorded(client, app, secret)
    for auth_req_id in (approved, denied):
        assert (
            call(site.lane, environ(grant(auth_req_id), **basic(app, secret))).error
            == "authorization_pending"
        )
    calls = site.spy.calls

    for auth_req_id, decide in ((approved, services.approve), (denied, services.deny)):
        ar = AuthenticationRequest.objects.select_related("user", "client").get(auth_req_id=auth_req_id)
        decide(ar, user=ar.user)
    clock[0] += 60

    tokens = call(site.lane, environ(grant(approved), **basic(app, secret)))
    assert tokens.status == "200 OK" and b"access_token" in tokens.body
    assert call(site.lane, environ(grant(denied), **basic(app, secret))).error == "access_denied"
    assert site.spy.calls == calls + 2


def test_an_expired_request_goes_to_django_which_says_expired_token(site, client, alice, make_client, clock):
    app, secret = make_client("poll")
    auth_req_id = recorded(client, app, secret, "scope=openid&login_hint=alice&requested_expiry=1")
    assert (
        call(site.django, environ(grant(auth_req_id), **basic(app, secret))).error == "authorization_pending"
    )
    AuthenticationRequest.objects.filter(auth_req_id=auth_req_id).update(
        expires_at=AuthenticationRequest.objects.get(auth_req_id=auth_req_id).created_at
    )
    clock[0] += 2  # the Redis record's expiry (1 s) has passed too

    answer = call(site.lane, environ(grant(auth_req_id), **basic(app, secret)))

    assert site.spy.calls == 1 and answer.error == "expired_token"


def test_a_wrong_or_unverified_secret_goes_to_django(site, client, alice, make_client, clock):
    app, secret = make_client("poll")
    auth_req_id = recorded(client, app, secret)

    unverified = call(site.lane, environ(grant(auth_req_id), **basic(app, secret)))
    assert site.spy.calls == 1 and unverified.error == "authorization_pending"
    wrong = call(site.lane, environ(grant(auth_req_id), **basic(app, secret + "x")))
    assert site.spy.calls == 2 and wrong.status.startswith("401") and wrong.error == "invalid_client"


def test_another_clients_request_goes_to_django(site, client, alice, make_client, clock):
    owner, owner_secret = make_client("poll")
    intruder, intruder_secret = make_client("poll")
    theirs, mine = recorded(client, owner, owner_secret), recorded(client, intruder, intruder_secret)
    assert (
        call(site.lane, environ(grant(mine), **basic(intruder, intruder_secret))).error
        == "authorization_pending"
    )

    answer = call(site.lane, environ(grant(theirs), **basic(intruder, intruder_secret)))

    assert site.spy.calls == 2 and answer.error == "invalid_grant"


def test_client_secret_post_takes_the_lane(site, client, alice, make_client, clock):
    app, secret = make_client("poll", token_endpoint_auth_method="client_secret_post")
    credentials = f"&client_id={app.client_id}&client_secret={secret}"
    body = f"scope=openid&login_hint=alice{credentials}"
    auth_req_id = client.post("/o/backchannel-authentication/", body, content_type=FORM).json()["auth_req_id"]
    assert call(site.lane, environ(grant(auth_req_id, credentials))).error == "authorization_pending"

    assert call(site.lane, environ(grant(auth_req_id, credentials))).error == "slow_down"
    assert site.spy.calls == 1


def test_with_redis_down_the_lane_hands_polls_to_django(site, client, alice, make_client, settings):
    app, secret = make_client("poll")
    auth_req_id = recorded(client, app, secret)
    assert call(site.lane, environ(grant(auth_req_id), **basic(app, secret))).error == "authorization_pending"
    settings.CIBA = {**settings.CIBA, "POLL_STATE_REDIS_URL": "redis://127.0.0.1:9/0"}  # nothing listens

    answer = call(site.lane, environ(grant(auth_req_id), **basic(app, secret)))

    assert site.spy.calls == 2 and answer.error == "authorization_pending"  # from the database
    assert not poll_state().available  # the breaker is open: the next polls do not wait for Redis
    call(site.lane, environ(grant(auth_req_id), **basic(app, secret)))
    assert site.spy.calls == 3
