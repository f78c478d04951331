"""A callback is sent by the process that committed it, right after the commit, with the outbox
and the workers as the fallback (issue 29): PostgreSQL, Redis, a real Celery worker with beat
sweeping every second, and real HTTP endpoints on loopback. This test process plays the web
process: its sender threads (``ciba.callbacks.inline``) send what its approvals commit.
"""

import json
import threading
import time
from unittest import mock

import pytest
from django.test import Client

from ciba import dispatch, services
from ciba.callbacks import inline, lanes
from ciba.models import AuthenticationRequest, CallbackDelivery
from tests.conftest import approve_ping, start_request
from tests.integration.conftest import wait_for

NT = "inline-integration-notification-token-0123456789"


@pytest.fixture(autouse=True)
def senders_drained():
    """No sender thread of an earlier test sends into this one, and none is left holding a
    connection to the test database when it is dropped."""
    assert inline.drain(30)
    yield
    assert inline.drain(30)


@pytest.fixture
def published():
    """Which callback tasks this process publishes (they still go to the broker)."""
    sent = []
    real = dispatch.send

    def send(task, *args, **kwargs):
        if task in (dispatch.DELIVER_CALLBACK, dispatch.DELIVER_CALLBACK_SLOW):
            sent.append((task, args))
        return real(task, *args, **kwargs)

    with mock.patch.object(dispatch, "send", side_effect=send):
        yield sent


def row_of(ar):
    return CallbackDelivery.objects.get(request=ar)


def delivered(ar):
    return CallbackDelivery.objects.filter(request=ar, state="delivered").exists()


def worker_ran_callbacks(worker) -> bool:
    return "Task ciba.deliver_callback[" in "".join(worker.output)


@pytest.mark.django_db(transaction=True)
def test_a_ping_is_sent_by_the_committing_process_once_and_no_task_is_published(
    celery_worker_process, alice, make_client, recorder, published
):
    app, _ = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/cb"))
    ar = approve_ping(app, alice, NT)
    assert wait_for(lambda: delivered(ar)), "the ping was not delivered"
    time.sleep(1.5)  # beat sweeps every second: none may send it again
    ((path, headers, body),) = recorder.received
    assert json.loads(body) == {"auth_req_id": ar.auth_req_id}
    assert headers["Authorization"] == f"Bearer {NT}"
    assert published == [] and not worker_ran_callbacks(celery_worker_process)
    row = row_of(ar)
    assert (row.attempts, row.lease_until, row.last_status) == (1, None, 204)


@pytest.mark.django_db(transaction=True)
def test_a_push_is_minted_and_sent_by_the_committing_process_once(
    celery_worker_process, alice, make_client, recorder, published
):
    app, _ = make_client("push", backchannel_client_notification_endpoint=recorder.url("/cb"))
    ar = services.create_request(
        expires_in=60,
        client=app,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        client_notification_token=NT,
    )
    services.approve(ar, user=alice)
    assert wait_for(lambda: delivered(ar)), "the push was not delivered"
    (received,) = recorder.received
    assert {"access_token", "id_token", "refresh_token"} <= set(json.loads(received[2]))
    assert AuthenticationRequest.objects.get(pk=ar.pk).state == "issued"
    assert published == []


@pytest.mark.django_db(transaction=True)
def test_a_dead_endpoint_is_retried_by_the_worker(
    celery_worker_process, alice, make_client, recorder, published
):
    recorder.statuses = [503]  # down at the first attempt, answering by the retry
    app, _ = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/cb"))
    ar = approve_ping(app, alice, NT)
    assert wait_for(lambda: delivered(ar), timeout=30), "the worker did not retry it"
    assert len(recorder.received) == 2 and recorder.answered == 2
    assert published == [(dispatch.DELIVER_CALLBACK, (row_of(ar).pk,))]  # the retry, with its countdown
    assert worker_ran_callbacks(celery_worker_process)
    assert row_of(ar).attempts == 2


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_endpoint_is_left_to_the_worker_and_the_approval_is_unaffected(
    celery_worker_process, alice, make_client, published
):
    app, _ = make_client("ping", backchannel_client_notification_endpoint="http://127.0.0.1:9/cb")
    ar = approve_ping(app, alice, NT)
    assert AuthenticationRequest.objects.get(pk=ar.pk).state == "approved"
    assert wait_for(lambda: row_of(ar).attempts >= 2, timeout=30), "no retry by the worker"
    assert row_of(ar).last_error == "connection error"
    assert worker_ran_callbacks(celery_worker_process)


@pytest.mark.django_db(transaction=True)
def test_a_slow_endpoint_never_holds_the_approve_request(celery_worker_process, alice, make_client, recorder):
    """The endpoint keeps the callback unanswered until the approve request has returned: if
    the request waited for the callback, the endpoint would time out first."""
    answered = threading.Event()
    returned = threading.Event()
    original = recorder.RequestHandlerClass.do_POST

    def held(handler):
        returned.wait(10)
        original(handler)
        answered.set()

    recorder.RequestHandlerClass.do_POST = held
    app, secret = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/cb"))
    auth_req_id = start_request(
        Client(), app, secret, f"scope=openid&login_hint=alice&client_notification_token={NT}"
    )
    ar = AuthenticationRequest.objects.select_related("client").get(auth_req_id=auth_req_id)
    services.approve(ar, user=alice)  # what the approve view calls
    returned.set()
    assert not answered.is_set(), "the approval waited for the client's endpoint"
    assert wait_for(lambda: delivered(ar)), "the ping was not delivered"
    assert answered.is_set() and len(recorder.received) == 1


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_in_the_slow_lane_is_sent_by_the_slow_lane_worker(
    celery_worker_process, alice, make_client, recorder, published
):
    url = recorder.url("/cb")
    lanes.mark(url, lanes.SLOW)
    app, _ = make_client("ping", backchannel_client_notification_endpoint=url)
    ar = approve_ping(app, alice, NT)
    assert wait_for(lambda: delivered(ar)), "the ping was not delivered"
    assert published == [(dispatch.DELIVER_CALLBACK_SLOW, (row_of(ar).pk,))]
    assert "Task ciba.deliver_callback_slow[" in "".join(celery_worker_process.output)
    assert len(recorder.received) == 1 and row_of(ar).attempts == 1


@pytest.mark.django_db(transaction=True)
def test_a_process_that_dies_after_the_commit_leaves_the_callback_to_the_worker(
    celery_worker_process, alice, make_client, recorder, published
):
    """The sender thread took the row and the process died before it ran (simulated: the job
    is dropped): nothing was published, and the beat sweep hands the row to the worker."""
    app, _ = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/cb"))
    with mock.patch.object(inline._senders, "submit", return_value=True) as taken:
        ar = approve_ping(app, alice, NT)
    assert taken.called and published == []
    assert wait_for(lambda: delivered(ar), timeout=30), "the sweep did not recover it"
    assert worker_ran_callbacks(celery_worker_process)
    time.sleep(1.5)
    assert len(recorder.received) == 1


@pytest.mark.django_db(transaction=True)
def test_when_every_sender_is_busy_the_task_is_published(
    celery_worker_process, alice, make_client, recorder, published
):
    app, _ = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/cb"))
    with mock.patch.object(inline._senders, "submit", return_value=False):
        ar = approve_ping(app, alice, NT)
    assert published == [(dispatch.DELIVER_CALLBACK, (row_of(ar).pk,))]
    assert wait_for(lambda: delivered(ar)), "the worker did not deliver it"
    assert worker_ran_callbacks(celery_worker_process) and len(recorder.received) == 1


@pytest.mark.django_db(transaction=True)
def test_endpoints_that_hang_take_the_senders_and_other_clients_callbacks_go_to_the_worker(
    celery_worker_process, alice, make_client, recorder, published
):
    """Each process has two sender threads (the default): two callbacks to an endpoint that
    does not answer hold both, and the next client's ping is not queued behind them: its task
    is published and the worker delivers it while the other two still hang."""
    release, hanging = threading.Event(), []
    original = recorder.RequestHandlerClass.do_POST

    def do_post(handler):
        if handler.path == "/hang":
            hanging.append(handler.path)
            release.wait(30)
        original(handler)

    recorder.RequestHandlerClass.do_POST = do_post
    stuck_app, _ = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/hang"))
    healthy_app, _ = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/ok"))
    try:
        stuck = [approve_ping(stuck_app, alice, NT) for _ in range(2)]
        assert wait_for(lambda: len(hanging) == 2), "the sender threads did not call the endpoint"
        ar = approve_ping(healthy_app, alice, NT)
        assert published == [(dispatch.DELIVER_CALLBACK, (row_of(ar).pk,))]
        assert wait_for(lambda: delivered(ar)), "the other client's ping waited"
        assert not any(delivered(a) for a in stuck)  # still hanging meanwhile
    finally:
        release.set()
    assert wait_for(lambda: all(delivered(a) for a in stuck))
    assert len(recorder.received) == 3 and len(published) == 1
