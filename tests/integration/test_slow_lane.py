"""One client's hanging callback endpoint no longer delays everybody else's pings (issue 21,
finding 5): real workers laid out as docs/operations.md says (a solo worker for the normal lane,
two slots for the slow lane), real HTTP endpoints on loopback.

The worker tier's timing applies: ``CALLBACK_TOTAL_TIMEOUT`` 3 s, so the slow lane takes an
endpoint whose attempt is still running after 1 s; backoff from 0.2 s.
"""

import select
import socket
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from ciba import services
from ciba.callbacks import inline, lanes
from ciba.models import CallbackDelivery
from tests.integration.conftest import wait_for

NT = "slow-lane-notification-token-0123456789"
#: A ping of a healthy client is delivered within this many seconds of its approval while
#: another client's endpoint hangs (measured: about 0.1 s; it was one total timeout, 3 s here,
#: per attempt of the hanging endpoint, retried 8 times).
PROMPT = 1.0


class Endpoints:
    """Client notification endpoints on loopback: ``/hang/...`` paths hold every request
    (answering nothing) while ``hanging`` is set; every other path answers 204 at once. Records
    each request's path and arrival, and the most requests of one kind ever in flight (until
    answered, or until the caller closed the connection)."""

    def __init__(self) -> None:
        self.hanging = threading.Event()
        self.hanging.set()
        self.lock = threading.Lock()
        self.arrivals: list[tuple[str, float]] = []
        self.in_flight: dict[str, set[socket.socket]] = defaultdict(set)
        self.most_in_flight: dict[str, int] = defaultdict(int)
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                kind = self.path.split("/")[1]
                with endpoints.lock:
                    endpoints.arrivals.append((self.path, time.monotonic()))
                    # A held request whose caller has already closed its connection is no
                    # longer in flight, even if its handler has not noticed yet (a loaded
                    # machine can delay that past the next attempt's arrival).
                    flying = endpoints.in_flight[kind]
                    flying.difference_update({held for held in flying if closed_by_caller(held)})
                    flying.add(self.connection)
                    endpoints.most_in_flight[kind] = max(endpoints.most_in_flight[kind], len(flying))
                try:
                    if kind == "hang" and not self.hang():
                        return
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the worker gave up at its deadline
                    pass
                finally:
                    with endpoints.lock:
                        endpoints.in_flight[kind].discard(self.connection)

            def hang(self) -> bool:
                """Answer nothing while ``hanging``; False when the caller gave up meanwhile."""
                while endpoints.hanging.is_set():
                    if closed_by_caller(self.connection, wait=0.05):
                        return False  # closed at the caller's deadline: no longer in flight
                return True

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads, block_on_close = True, False

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.hanging.clear()
        self.server.shutdown()
        self.server.server_close()


def closed_by_caller(connection: socket.socket, wait: float = 0.0) -> bool:
    """Whether the caller closed ``connection`` (its request was read whole: nothing else
    makes it readable)."""
    try:
        readable, _, _ = select.select([connection], [], [], wait)
        return bool(readable) and not connection.recv(1, socket.MSG_PEEK)
    except OSError:
        return True


@pytest.fixture(autouse=True)
def callbacks_through_the_workers():
    """The lanes are the workers': this process sends no callback itself (its sender threads,
    ``ciba.callbacks.inline``, have their own test: tests/integration/test_callbacks_inline.py)."""
    assert inline.drain(30)
    with override_settings(CIBA={**settings.CIBA, "CALLBACK_INLINE_SENDERS": 0}):
        yield


@pytest.fixture
def endpoints():
    server = Endpoints()
    yield server
    server.close()


def approved_ping(app, user):
    ar = services.create_request(
        expires_in=300,
        client=app,
        user=user,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        client_notification_token=NT,
    )
    services.approve(ar, user=user)
    return CallbackDelivery.objects.get(request=ar)


def delivered(row):
    return CallbackDelivery.objects.filter(pk=row.pk, state="delivered").exists()


@pytest.mark.django_db(transaction=True)
def test_a_hanging_endpoint_is_moved_to_the_slow_lane_and_other_clients_pings_stay_prompt(
    lane_workers, endpoints, alice, make_client
):
    normal_worker, slow_worker = lane_workers
    hanging_url = endpoints.url("/hang/cb")
    hanging_app, _ = make_client("ping", backchannel_client_notification_endpoint=hanging_url)
    healthy_app, _ = make_client("ping", backchannel_client_notification_endpoint=endpoints.url("/ok/cb"))

    # Three pings owed to the client whose endpoint hangs. The first attempt holds the normal
    # lane's only slot until its deadline (3 s); after 1 s its endpoint is in the slow lane.
    stuck = [approved_ping(hanging_app, alice) for _ in range(3)]
    assert wait_for(lambda: lanes.is_slow(hanging_url), timeout=10), "the hanging endpoint was not moved"
    assert wait_for(lambda: CallbackDelivery.objects.filter(pk=stuck[0].pk, last_error="timeout").exists())

    # From now on every attempt to it runs in the slow lane; the healthy client's pings, approved
    # one after the other for about ten seconds, each arrive promptly.
    latencies = []
    for _ in range(8):
        row = approved_ping(healthy_app, alice)
        began = time.monotonic()
        assert wait_for(lambda row=row: delivered(row), timeout=10), "a healthy client's ping waited"
        latencies.append(time.monotonic() - began)
        time.sleep(0.8)
    assert max(latencies) < PROMPT, latencies
    slow_attempts = [t for path, t in endpoints.arrivals if path == "/hang/cb"]
    assert len(slow_attempts) >= 3  # it kept being retried meanwhile, in the slow lane
    assert endpoints.most_in_flight["hang"] == 1  # one slot: never two of its attempts at once
    assert "ciba.deliver_callback_slow" in "".join(slow_worker.output)
    assert "'throttled'" in "".join(slow_worker.output)  # its other pings waited their turn

    # The endpoint answers again: its first success brings it back, and every ping it was owed
    # is delivered exactly once.
    endpoints.hanging.clear()
    assert wait_for(lambda: all(delivered(row) for row in stuck), timeout=40), "the owed pings were lost"
    assert not lanes.is_slow(hanging_url)
    answered = CallbackDelivery.objects.filter(pk__in=[row.pk for row in stuck])
    assert all(row.delivered_at < row.request.expires_at for row in answered)
    assert timezone.now() > max(row.delivered_at for row in answered)
    later = approved_ping(hanging_app, alice)
    assert wait_for(lambda: delivered(later), timeout=10)
    assert "ciba.deliver_callback[" in "".join(normal_worker.output)
