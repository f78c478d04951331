"""Ping and push delivered by a real Celery worker over the Redis broker, to a real endpoint."""

import json
import threading
import time
from datetime import timedelta

import jwt
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from ciba import services
from ciba.constants import AUTH_REQ_ID_CLAIM, RT_HASH_CLAIM
from ciba.models import AuthenticationRequest, CallbackDelivery
from ciba.oauth.validators import token_hash
from tests.conftest import start_request
from tests.integration.conftest import wait_for

NT = "integration-notification-token-0123456789"


@pytest.fixture(autouse=True)
def callbacks_through_the_worker(settings):
    """These tests are about the worker's attempts: this process sends no callback itself
    (``ciba.callbacks.inline``; its own tests: tests/integration/test_callbacks_inline.py)."""
    settings.CIBA = {**settings.CIBA, "CALLBACK_INLINE_SENDERS": 0}


@pytest.fixture
def endpoint_client(make_client, recorder):
    def factory(mode):
        return make_client(mode, backchannel_client_notification_endpoint=recorder.url("/cb"))

    return factory


def start(app, secret):
    auth_req_id = start_request(
        Client(), app, secret, f"scope=openid&login_hint=alice&client_notification_token={NT}"
    )
    return AuthenticationRequest.objects.select_related("client", "user").get(auth_req_id=auth_req_id)


def delivered(ar):
    return CallbackDelivery.objects.filter(request=ar, state="delivered").first()


@pytest.mark.django_db(transaction=True)
def test_ping_arrives_with_the_bearer_token_after_approval(
    celery_worker_process, alice, endpoint_client, recorder
):
    app, secret = endpoint_client("ping")
    ar = start(app, secret)
    services.approve(ar, user=alice)
    assert wait_for(lambda: delivered(ar)), "the ping was not delivered"
    ((path, headers, body),) = recorder.received
    assert headers["Authorization"] == f"Bearer {NT}"
    assert json.loads(body) == {"auth_req_id": ar.auth_req_id}


@pytest.mark.django_db(transaction=True)
def test_push_delivers_tokens_a_client_can_verify_and_use(
    celery_worker_process, alice, endpoint_client, recorder
):
    app, secret = endpoint_client("push")
    ar = start(app, secret)
    services.approve(ar, user=alice)
    assert wait_for(lambda: delivered(ar)), "the push was not delivered"
    body = json.loads(recorder.received[0][2])
    client = Client()
    jwks = client.get("/o/.well-known/jwks.json").json()
    key = next(
        jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(body["id_token"])["kid"]
    )
    claims = jwt.decode(
        body["id_token"], key, algorithms=["RS256"], audience=app.client_id, issuer="http://testserver/o"
    )
    assert claims["at_hash"] == token_hash(body["access_token"])
    assert claims[RT_HASH_CLAIM] == token_hash(body["refresh_token"])
    assert claims[AUTH_REQ_ID_CLAIM] == ar.auth_req_id
    userinfo = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == str(alice.pk)


@pytest.mark.django_db(transaction=True)
def test_two_503s_then_success_is_exactly_one_delivery(
    celery_worker_process, alice, endpoint_client, recorder
):
    recorder.statuses = [503, 503]
    app, secret = endpoint_client("push")
    ar = start(app, secret)
    services.approve(ar, user=alice)
    assert wait_for(lambda: delivered(ar), timeout=30), "the push was not delivered"
    bodies = [body for _, _, body in recorder.received]
    assert len(bodies) == 3 and len(set(bodies)) == 1
    assert recorder.answered == 3
    assert CallbackDelivery.objects.get(request=ar).attempts == 3
    assert get_access_token_model().objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_400_is_not_retried(celery_worker_process, alice, endpoint_client, recorder):
    recorder.statuses = [400]
    app, secret = endpoint_client("ping")
    ar = start(app, secret)
    services.approve(ar, user=alice)
    assert wait_for(lambda: CallbackDelivery.objects.filter(request=ar, state="failed").exists())
    time.sleep(1.5)  # time enough for a (wrong) retry with the test backoff
    assert len(recorder.received) == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_delivers_once_after_restart_without_a_manual_sweep(
    celery_worker_process, alice, endpoint_client, recorder
):
    recorder.delays = [30]  # the first attempt hangs; the whole worker dies while it waits
    app, secret = endpoint_client("ping")
    ar = start(app, secret)
    services.approve(ar, user=alice)
    assert wait_for(lambda: len(recorder.received) == 1), "the first attempt never arrived"
    celery_worker_process.kill()
    row = CallbackDelivery.objects.get(request=ar)
    assert row.state == "pending" and row.lease_until is not None
    celery_worker_process.start()
    # The dead worker's message comes back only after the broker's visibility timeout (an
    # hour); the beat sweep hands the row to the new worker as soon as its lease runs out.
    assert wait_for(lambda: delivered(ar), timeout=40), "not delivered after the restart"
    assert recorder.answered == 1  # exactly one callback was answered by the client
    assert delivered(ar).delivered_at < ar.expires_at


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_while_holding_a_scheduled_retry_delivers_once_after_restart(
    celery_worker_process, alice, endpoint_client, recorder
):
    """A retry waiting for its countdown sits unacknowledged in the worker that took it; if that
    worker dies, the broker gives it back only after its visibility timeout (an hour), past
    the request's expiry. The outbox row says when it is due, and beat sends it then."""
    recorder.statuses, recorder.retry_after = [503], 4
    app, secret = endpoint_client("ping")
    ar = start(app, secret)
    services.approve(ar, user=alice)
    assert wait_for(lambda: CallbackDelivery.objects.filter(request=ar, attempts=1, last_status=503).exists())
    celery_worker_process.kill()  # the retry's message dies with it, unacknowledged
    celery_worker_process.start()
    assert wait_for(lambda: delivered(ar), timeout=30), "the retry was lost with the worker"
    time.sleep(2)  # later sweeps must not send it again
    assert len(recorder.received) == 2  # the 503, then the retry
    assert recorder.answered == 2
    row = CallbackDelivery.objects.get(request=ar)
    assert row.attempts == 2 and row.delivered_at < ar.expires_at


@pytest.mark.django_db(transaction=True)
def test_a_pool_child_killed_mid_delivery_delivers_once_without_any_sweep(
    prefork_worker, alice, endpoint_client, recorder
):
    """The redelivered task finds the dead attempt's lease: it comes back when the lease ends
    (it used to end as 'skipped', leaving the row pending for ever without beat)."""
    recorder.delays = [30]
    app, secret = endpoint_client("ping")
    ar = start(app, secret)
    services.approve(ar, user=alice)
    assert wait_for(lambda: len(recorder.received) == 1), "the first attempt never arrived"
    prefork_worker.kill_pool_child()
    assert wait_for(lambda: delivered(ar), timeout=40), "not delivered after the pool child died"
    assert recorder.answered == 1 and len(recorder.received) == 2


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_that_drips_its_answer_holds_nobody_elses_callback_and_is_retried_once(
    celery_worker_process, alice, make_client, recorder
):
    """One byte per second used to hold the only worker for as long as the peer liked, while
    the lease ran out and a sweep sent the row again. Now the attempt ends at the total
    deadline (3 s here), the next client's ping goes out, and the dripping one is retried once."""
    recorder.drips["/slow"] = [1.0]
    slow_app, slow_secret = make_client(
        "ping", backchannel_client_notification_endpoint=recorder.url("/slow")
    )
    fast_app, fast_secret = make_client(
        "ping", backchannel_client_notification_endpoint=recorder.url("/fast")
    )
    slow, fast = start(slow_app, slow_secret), start(fast_app, fast_secret)
    services.approve(slow, user=alice)
    assert wait_for(lambda: len(recorder.received) == 1), "the slow endpoint was never called"
    began = time.monotonic()
    services.approve(fast, user=alice)
    assert wait_for(lambda: delivered(fast), timeout=15), "the other client's ping waited for ever"
    assert time.monotonic() - began < 3 + 3  # at most one deadline behind the dripping peer
    assert wait_for(lambda: delivered(slow), timeout=20), "the dripping endpoint was not retried"
    time.sleep(2)  # beat sweeps every second: none may send either row again
    paths = [path for path, _, _ in recorder.received]
    assert sorted(paths) == ["/fast", "/slow", "/slow"]
    row = CallbackDelivery.objects.get(request=slow)
    assert row.attempts == 2


@pytest.mark.django_db(transaction=True)
def test_a_device_notification_survives_a_broker_outage_without_an_operator(
    celery_worker_process, alice, make_client
):
    from django.core.cache import cache

    from example_project.celery import app as celery_app

    client_app, _ = make_client("poll")
    saved_url, saved_pool = celery_app.conf.broker_write_url, celery_app.amqp._producer_pool
    celery_app.conf.broker_write_url, celery_app.amqp._producer_pool = "redis://127.0.0.1:1/0", None
    try:
        ar = services.create_request(
            expires_in=120,
            client=client_app,
            user=alice,
            hint_kind="login_hint",
            scope="openid",
            interval=5,
            binding_message="SWEPT",
        )
    finally:
        celery_app.conf.broker_write_url, celery_app.amqp._producer_pool = saved_url, saved_pool
    ar.refresh_from_db()
    assert ar.device_notification_status == "queued"  # not failed: the outbox entry waits
    # The beat sweep sends it once it is overdue (SWEEP_GRACE), with nobody re-sending by hand.
    assert wait_for(lambda: cache.get(f"ciba-test-notified:{ar.auth_req_id}") == "SWEPT", timeout=40)
    assert wait_for(
        lambda: AuthenticationRequest.objects.filter(pk=ar.pk, device_notification_status="sent").exists()
    )


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_at_approval_time_still_delivers_once_it_is_back(
    celery_worker_process, alice, endpoint_client, recorder, caplog
):
    from example_project.celery import app as celery_app

    app, secret = endpoint_client("ping")
    ar = start(app, secret)
    # Point this process's publisher at a port where no broker listens: a real connection
    # refusal inside kombu, as when Redis is down.
    saved_url, saved_pool = celery_app.conf.broker_write_url, celery_app.amqp._producer_pool
    celery_app.conf.broker_write_url, celery_app.amqp._producer_pool = "redis://127.0.0.1:1/0", None
    try:
        services.approve(ar, user=alice)
    finally:
        celery_app.conf.broker_write_url, celery_app.amqp._producer_pool = saved_url, saved_pool
    assert "Could not enqueue CIBA callback" in caplog.text
    # The broker is back: the beat sweep finds the owed callback, with nobody sweeping by hand.
    assert wait_for(lambda: delivered(ar), timeout=30), "not delivered once the broker was back"
    time.sleep(2)  # two more sweeps: none may send it again
    assert len(recorder.received) == 1


@pytest.mark.django_db(transaction=True)
def test_expiry_racing_approvals_leaves_each_request_in_one_consistent_state(
    alice, make_client, no_user_limits
):
    app, _ = make_client("poll")
    requests = [
        services.create_request(
            expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
        )
        for _ in range(30)
    ]
    AuthenticationRequest.objects.update(expires_at=timezone.now() + timedelta(milliseconds=300))
    outcomes = {}
    barrier = threading.Barrier(2)

    def approve_all():
        try:
            barrier.wait()
            for ar in requests:
                try:
                    services.approve(AuthenticationRequest.objects.get(pk=ar.pk), user=alice)
                    outcomes[ar.pk] = "approved"
                except services.NotPending as exc:
                    outcomes[ar.pk] = exc.state
                time.sleep(0.02)
        finally:
            connection.close()

    def sweep():
        try:
            barrier.wait()
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                services.expire_due()
                time.sleep(0.01)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve_all), threading.Thread(target=sweep)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = dict(AuthenticationRequest.objects.values_list("pk", "state"))
    for pk, outcome in outcomes.items():
        if outcome == "approved":
            assert final[pk] in ("approved", "expired"), final[pk]  # approved, then uncollected past expiry
            assert AuthenticationRequest.objects.get(pk=pk).decided_at is not None
        else:
            assert outcome == "expired" and final[pk] == "expired"
            assert AuthenticationRequest.objects.get(pk=pk).decided_at is None  # never approved
    assert set(outcomes.values()) == {"approved", "expired"}  # the race really happened


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_requests_is_notified_by_a_few_batch_tasks_not_one_task_each(
    celery_worker_process, alice, make_client, no_user_limits
):
    """NOTIFY_BATCH_WINDOW: the web side sends one ``ciba.notify_due_devices`` per window and
    the worker runs every due notification in batches; each device is told exactly once."""
    from django.core.cache import cache

    client_app, _ = make_client("poll")
    requests_ = [
        services.create_request(
            expires_in=120,
            client=client_app,
            user=alice,
            hint_kind="login_hint",
            scope="openid",
            interval=5,
            binding_message=f"B{i}",
        )
        for i in range(60)
    ]
    assert wait_for(
        lambda: AuthenticationRequest.objects.filter(device_notification_status="sent").count() == 60
    )
    assert all(cache.get(f"ciba-test-notified:{ar.auth_req_id}") == f"B{i}" for i, ar in enumerate(requests_))
    received = "".join(celery_worker_process.output)
    assert received.count("Task ciba.notify_authentication_device[") == 0
    batch_tasks = received.count("Task ciba.notify_due_devices[") // 2  # "received" and "succeeded"
    assert 1 <= batch_tasks < 20, received[-3000:]
    assert AuthenticationRequest.objects.filter(device_notification_attempts=1).count() == 60
