"""Pending polls answered from Redis (``RedisPollState``): same answers, no database."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ciba import polling as fast_poll
from ciba import services
from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest
from ciba.polling import RedisPollState
from ciba.tasks import notify_authentication_device
from tests.conftest import basic_auth, start_request
from tests.integration.conftest import redis_poll_state_on

FORM = "application/x-www-form-urlencoded"
State = AuthenticationRequest.State


@pytest.fixture(autouse=True)
def redis_poll_state(settings: Any) -> RedisPollState:
    return redis_poll_state_on(settings)


@pytest.fixture
def clock(monkeypatch: Any) -> list[float]:
    """The fast path's clock, moved by the test (``clock[0] += 6``)."""
    moment = [time.time()]
    monkeypatch.setattr(fast_poll, "now", lambda: moment[0])
    return moment


def poll(client: Any, app: Any, secret: str, auth_req_id: str, **extra: Any) -> Any:
    return client.post(
        "/o/token/",
        f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={auth_req_id}",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        **extra,
    )


def decide(auth_req_id: str, how: Any) -> None:
    ar = AuthenticationRequest.objects.select_related("user", "client").get(auth_req_id=auth_req_id)
    how(ar, user=ar.user)


def test_a_pending_poll_is_answered_from_redis_without_a_query_and_with_the_same_bytes(
    client, alice, make_client, django_assert_num_queries, clock
):
    app, secret = make_client("poll")
    first_id, second_id = start_request(client, app, secret), start_request(client, app, secret)
    for ar in AuthenticationRequest.objects.filter(auth_req_id__in=[first_id, second_id]):
        notify_authentication_device.apply((ar.pk,))  # what the worker does first: records it
    from_database = poll(client, app, secret, first_id)  # verifies the client, remembers it

    with django_assert_num_queries(0):
        from_redis = poll(client, app, secret, second_id)

    assert from_redis.status_code == from_database.status_code == 400
    assert from_redis.content == from_database.content
    assert from_redis.json()["error"] == "authorization_pending"
    for header in ("Content-Type", "Cache-Control", "Pragma"):
        assert from_redis[header] == from_database[header]


def test_slow_down_from_redis_grows_the_interval_for_every_early_poll(client, alice, make_client, clock):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    assert poll(client, app, secret, auth_req_id).json()["error"] == "authorization_pending"
    polled_at, answers = clock[0], []
    # Each early poll adds 5 s: 1 s after (interval 5 -> 10), 5 s after (-> 15), 6 s after
    # (-> 20); waiting the full 20 s is then fine again.
    for seconds_later in (1, 6, 12, 32):
        clock[0] = polled_at + seconds_later
        answers.append(poll(client, app, secret, auth_req_id).json()["error"])
    assert answers == ["slow_down", "slow_down", "slow_down", "authorization_pending"]


def test_a_decided_request_is_never_answered_pending_from_redis(client, alice, make_client, clock):
    app, secret = make_client("poll")
    approved, denied = start_request(client, app, secret), start_request(client, app, secret)
    for auth_req_id in (approved, denied):
        assert poll(client, app, secret, auth_req_id).json()["error"] == "authorization_pending"

    decide(approved, services.approve)
    decide(denied, services.deny)
    clock[0] += 60

    tokens = poll(client, app, secret, approved)
    assert tokens.status_code == 200 and "access_token" in tokens.json()
    assert poll(client, app, secret, denied).json()["error"] == "access_denied"


def test_an_expired_request_is_answered_expired_token_even_though_redis_knew_it_pending(
    client, alice, make_client
):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret, "scope=openid&login_hint=alice&requested_expiry=1")
    assert poll(client, app, secret, auth_req_id).json()["error"] == "authorization_pending"
    time.sleep(1.1)
    assert poll(client, app, secret, auth_req_id).json()["error"] == "expired_token"


def test_another_clients_request_is_unknown_to_the_redis_path_too(client, alice, make_client, clock):
    owner, owner_secret = make_client("poll")
    intruder, intruder_secret = make_client("poll")
    theirs = start_request(client, owner, owner_secret)
    mine = start_request(client, intruder, intruder_secret)
    assert poll(client, owner, owner_secret, theirs).json()["error"] == "authorization_pending"
    assert poll(client, intruder, intruder_secret, mine).json()["error"] == "authorization_pending"

    assert poll(client, intruder, intruder_secret, theirs).json()["error"] == "invalid_grant"


def test_a_wrong_secret_is_never_answered_from_redis(client, alice, make_client, clock):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    assert poll(client, app, secret, auth_req_id).json()["error"] == "authorization_pending"

    response = poll(client, app, secret + "x", auth_req_id)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_rotating_a_client_secret_stops_the_old_one_at_once(
    client, alice, make_client, clock, django_capture_on_commit_callbacks
):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    assert poll(client, app, secret, auth_req_id).json()["error"] == "authorization_pending"
    start_request(client, app, secret)  # the client row is now cached in this process

    with django_capture_on_commit_callbacks(execute=True):
        app.client_secret = "rotated-0123456789abcdef0123456789abcdef"
        app.save()
    clock[0] += 60

    assert poll(client, app, secret, auth_req_id).status_code == 401
    refused = client.post(
        "/o/backchannel-authentication/",
        "scope=openid&login_hint=alice",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert refused.status_code == 401
    rotated = poll(client, app, "rotated-0123456789abcdef0123456789abcdef", auth_req_id)
    assert rotated.json()["error"] == "slow_down"  # accepted; it only polled again too soon


def test_a_secret_rotated_by_a_bulk_update_stops_the_old_one_once_the_client_is_forgotten(
    client, alice, make_client, clock
):
    """QuerySet.update() sends no signal: the documented call makes the rotation take effect."""
    from django.contrib.auth.hashers import make_password

    from ciba.client_auth import forget_client
    from ciba.models import Application

    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    assert poll(client, app, secret, auth_req_id).json()["error"] == "authorization_pending"
    new_secret = "bulk-rotated-0123456789abcdef0123456789abcdef"
    Application.objects.filter(pk=app.pk).update(client_secret=make_password(new_secret))
    forget_client(app.client_id)
    clock[0] += 60
    assert poll(client, app, secret, auth_req_id).status_code == 401
    assert poll(client, app, new_secret, auth_req_id).json()["error"] == "slow_down"


def test_a_client_changed_in_another_process_is_read_again(
    client, alice, make_client, django_capture_on_commit_callbacks
):
    from ciba.models import Application

    app, secret = make_client("poll")
    start_request(client, app, secret)  # cached here
    with django_capture_on_commit_callbacks(execute=True):
        other_process_copy = Application.objects.get(pk=app.pk)
        other_process_copy.backchannel_token_delivery_mode = "ping"
        other_process_copy.backchannel_client_notification_endpoint = "https://client.example.com/cb"
        other_process_copy.save()

    refused = client.post(
        "/o/backchannel-authentication/",
        "scope=openid&login_hint=alice",  # a ping client must send client_notification_token
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"


def test_a_request_decided_before_its_creation_was_recorded_stays_decided(
    client, alice, make_client, redis_poll_state, clock
):
    app, secret = make_client("poll")
    first, late = start_request(client, app, secret), start_request(client, app, secret)
    assert poll(client, app, secret, first).json()["error"] == "authorization_pending"
    ar = AuthenticationRequest.objects.select_related("user", "client").get(auth_req_id=late)

    services.deny(ar, user=ar.user)  # the tombstone comes first ...
    redis_poll_state.track(ar)  # ... and the creation's record, late, does not overwrite it

    assert poll(client, app, secret, late).json()["error"] == "access_denied"


def test_with_redis_down_polls_are_answered_from_the_database_and_decisions_wait(
    client, alice, make_client, settings
):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    settings.CIBA = {**settings.CIBA, "POLL_STATE_REDIS_URL": "redis://127.0.0.1:9/0"}  # nothing listens
    assert poll(client, app, secret, auth_req_id).json()["error"] == "authorization_pending"

    client.force_login(alice)  # the consent API with a session
    response = client.post(f"/o/ciba/requests/{auth_req_id}/approve/", {}, content_type="application/json")

    assert response.status_code == 503, response.content
    assert response.json()["error"] == "temporarily_unavailable"
    assert response["Retry-After"] == "1"
    assert AuthenticationRequest.objects.get(auth_req_id=auth_req_id).state == State.PENDING


def test_client_secret_post_clients_are_answered_from_redis_too(
    client, alice, make_client, django_assert_num_queries, clock
):
    app, secret = make_client("poll", token_endpoint_auth_method="client_secret_post")
    body = f"scope=openid&login_hint=alice&client_id={app.client_id}&client_secret={secret}"
    ids = [
        client.post("/o/backchannel-authentication/", body, content_type=FORM).json()["auth_req_id"]
        for _ in range(2)
    ]

    def poll_post(auth_req_id: str) -> Any:
        return client.post(
            "/o/token/",
            f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={auth_req_id}&client_id={app.client_id}"
            f"&client_secret={secret}",
            content_type=FORM,
        )

    assert poll_post(ids[0]).json()["error"] == "authorization_pending"
    assert poll_post(ids[1]).json()["error"] == "authorization_pending"
    with django_assert_num_queries(0):
        assert poll_post(ids[1]).json()["error"] == "slow_down"


def test_a_malformed_poll_still_gets_its_precise_error(client, alice, make_client, clock):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    assert poll(client, app, secret, auth_req_id).json()["error"] == "authorization_pending"

    duplicated = client.post(
        "/o/token/",
        f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={auth_req_id}&auth_req_id={auth_req_id}",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert duplicated.status_code == 400
    assert duplicated.json()["error"] == "invalid_request"


def test_concurrent_polls_of_one_request_are_counted_exactly(client, alice, make_client, redis_poll_state):
    from concurrent.futures import ThreadPoolExecutor

    from ciba.client_auth import poll_identity

    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    assert poll(client, app, secret, auth_req_id).json()["error"] == "authorization_pending"
    identity = poll_identity(basic_auth(app.client_id, secret), {})
    later = time.time() + 60  # past the interval: exactly one of these polls is on time

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: redis_poll_state.poll(*identity, auth_req_id, later), range(8)))

    assert sorted(answers) == ["authorization_pending"] + ["slow_down"] * 7
    assert redis_poll_state.poll(*identity, auth_req_id, later + 5 + 7 * 5 - 1) == "slow_down"


# --- no pending answer before the full path's DPoP checks (RFC 9449) --------------------------

TOKEN_URL = "http://testserver/o/token/"
BACKCHANNEL_URL = "http://testserver/o/backchannel-authentication/"


def test_a_dpop_bound_clients_secret_is_not_remembered_so_a_poll_without_a_proof_is_refused(
    client, alice, make_client, clock
):
    from tests.dpop import DPoPKey

    app, secret = make_client("poll", dpop_bound_access_tokens=True)
    key = DPoPKey("EC")
    auth_req_id = start_request(client, app, secret)
    notify_authentication_device.apply((AuthenticationRequest.objects.get(auth_req_id=auth_req_id).pk,))
    assert poll(client, app, secret, auth_req_id, HTTP_DPOP=key.proof("POST", TOKEN_URL)).json()["error"] == (
        "authorization_pending"
    )
    clock[0] += 6
    assert poll(client, app, secret, auth_req_id).json()["error"] == "invalid_dpop_proof"


def test_a_request_made_with_a_dpop_key_is_never_answered_from_redis(client, alice, make_client, clock):
    from tests.dpop import DPoPKey

    app, secret = make_client("poll")
    plain = start_request(client, app, secret)
    assert poll(client, app, secret, plain).json()["error"] == "authorization_pending"  # remembered
    key = DPoPKey("EC")
    keyed = client.post(
        "/o/backchannel-authentication/",
        "scope=openid&login_hint=alice",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        HTTP_DPOP=key.proof("POST", BACKCHANNEL_URL),
    ).json()["auth_req_id"]
    notify_authentication_device.apply((AuthenticationRequest.objects.get(auth_req_id=keyed).pk,))  # recorded
    assert poll(client, app, secret, keyed).json()["error"] == "invalid_dpop_proof"
    proof = key.proof("POST", TOKEN_URL)
    assert poll(client, app, secret, keyed, HTTP_DPOP=proof).json()["error"] == "authorization_pending"
    clock[0] += 6
    assert poll(client, app, secret, keyed).json()["error"] == "invalid_dpop_proof"  # the record says so
    from ciba.client_auth import Credentials
    from ciba.constants import AUTH_CLIENT_SECRET_BASIC

    fingerprint = Credentials(AUTH_CLIENT_SECRET_BASIC, app.client_id, secret=secret).fingerprint()
    store = fast_poll.poll_state()
    assert store.poll(app.client_id, fingerprint, keyed, clock[0]) is None
    assert store.poll(app.client_id, fingerprint, plain, clock[0]) in (fast_poll.PENDING, fast_poll.SLOW_DOWN)
