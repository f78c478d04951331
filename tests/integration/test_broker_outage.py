"""A broker (Redis) outage between the web side, the workers and beat: nothing is lost, and
nobody restarts anything (issue 21, finding 4).

The worker, its embedded beat and this process's publisher reach the broker through a
``FaultProxy``; the test refuses (Redis down: resets and ``ECONNREFUSED``) or pauses (a hung
Redis, a dropped route: no byte moves) the proxy while a user approves a ping request.
"""

import time

import pytest

from ciba import services
from ciba.models import CallbackDelivery
from tests.integration.conftest import publishing_to, wait_for

NT = "broker-outage-notification-token-0123456789"


@pytest.fixture(autouse=True)
def callbacks_through_the_worker(settings):
    """The ping must go through the broker: this process sends no callback itself
    (``ciba.callbacks.inline``; its own tests: tests/integration/test_callbacks_inline.py)."""
    settings.CIBA = {**settings.CIBA, "CALLBACK_INLINE_SENDERS": 0}


def start(app, user):
    return services.create_request(
        expires_in=300,
        client=app,
        user=user,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        client_notification_token=NT,
    )


def delivered(ar):
    return CallbackDelivery.objects.filter(request=ar, state="delivered").first()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("proxied_worker", ["solo", "prefork"], indirect=True)
@pytest.mark.parametrize("fault", ["refuse", "pause"])
def test_a_ping_approved_during_a_broker_outage_arrives_once_after_it_from_the_same_worker(
    fault, proxied_worker, broker_proxy, alice, make_client, recorder
):
    app, _ = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/cb"))
    ar = start(app, alice)
    # Another client's callback answered 503 with Retry-After: its retry waits in the worker,
    # unacknowledged, across the outage (what the worker must give back when it reconnects).
    other_app, _ = make_client("ping", backchannel_client_notification_endpoint=recorder.url("/retry"))
    recorder.statuses, recorder.retry_after = [503], 20
    other = start(other_app, alice)
    services.approve(other, user=alice)
    assert wait_for(lambda: CallbackDelivery.objects.filter(request=other, last_status=503).exists())
    pid = proxied_worker.process.pid
    with publishing_to(broker_proxy.broker_url):
        getattr(broker_proxy, fault)()
        try:
            time.sleep(2)  # the worker and beat notice (or wait on) the broken connection
            began = time.monotonic()
            services.approve(ar, user=alice)  # the ping is owed: its outbox row is written
            approve_seconds = time.monotonic() - began
            assert CallbackDelivery.objects.filter(request=ar, state="pending").exists()
            time.sleep(13)  # a 15-second outage in all
        finally:
            broker_proxy.restore()
    print(f"{fault}: the approval took {approve_seconds:.2f} s")  # shown with -s
    assert approve_seconds < 3, f"the approval waited {approve_seconds:.1f} s for the broker"
    assert wait_for(lambda: delivered(ar), timeout=60), "the ping was not delivered after the outage"
    time.sleep(3)  # more sweeps: none may send it again
    assert wait_for(lambda: delivered(other), timeout=60), "the held retry was lost"
    assert sorted(path for path, _, _ in recorder.received) == ["/cb", "/retry", "/retry"]
    assert proxied_worker.process.poll() is None, "the worker died"
    assert proxied_worker.process.pid == pid
