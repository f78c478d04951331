from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from oauth2_provider.models import get_application_model

from ciba.constants import CIBA_GRANT_TYPE
from tests.peers import peer  # noqa: F401 - a fixture: real endpoints that answer or stall

Application = get_application_model()


@pytest.fixture(autouse=True)
def settings_left_as_found() -> Any:
    """Each test leaves Django's settings as it found them, or fails.

    ``@override_settings`` on a test that also sets values through pytest-django's ``settings``
    fixture restores in the wrong order: the decorator ends first, then the fixture puts back
    what it saw when it was first used, which is the decorator's override. Every later test
    then ran under it (a cap action left at "supersede", say), far from the test that caused it.
    """
    from django.conf import settings as django_settings

    from ciba.conf import ciba_settings

    before = django_settings._wrapped
    yield
    if django_settings._wrapped is not before:
        django_settings._wrapped = before
        ciba_settings.reload()
        pytest.fail(
            "This test left Django's settings overridden (an @override_settings decorator together "
            "with the settings fixture?): set every value through one of them."
        )


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    """Each test starts with an empty cache: throttles, failure counters and replay records of
    one test must not decide another's answers."""
    cache.clear()


@pytest.fixture(autouse=True)
def kept_connections_closed() -> Any:
    """The callbacks' kept-alive connections (``outbound.kept_session``) end with the test that
    opened them: one test's connection to its local server never serves another test."""
    yield
    from ciba.outbound import close_kept_session

    close_kept_session()


@pytest.fixture
def prepared_statements() -> Any:
    """On PostgreSQL, this test's connection binds parameters on the server and prepares hot
    statements, as ``DATABASE_PREPARED_STATEMENTS=on`` has it (yields True); elsewhere nothing
    changes (yields False). The test needs ``django_db(transaction=True)``."""
    with _postgresql_options(server_side_binding=True, prepare_threshold=5) as changed:
        yield changed


@pytest.fixture
def default_binding() -> Any:
    """On PostgreSQL, this test's connection binds parameters as Django does by default (on the
    client: every statement planned at every run), whatever ``DATABASE_PREPARED_STATEMENTS``
    says. The test needs ``django_db(transaction=True)``."""
    with _postgresql_options(server_side_binding=False) as changed:
        yield changed


@contextmanager
def _postgresql_options(**values: Any) -> Any:
    """These connection ``OPTIONS`` on PostgreSQL (True), nothing elsewhere (False); the
    connection is replaced on the way in and out."""
    from django.db import connection

    if connection.vendor != "postgresql":
        yield False
        return
    options = connection.settings_dict.setdefault("OPTIONS", {})
    saved = dict(options)
    connection.close()
    options.update(values)
    try:
        yield True
    finally:
        connection.close()
        options.clear()
        options.update(saved)


#: The per-user limits (ciba.user_limits) off, for tests that pile up requests for one user to
#: test something else: tests/test_user_limits.py tests the limits themselves.
NO_USER_LIMITS = {
    "MAX_PENDING_PER_USER": None,
    "MAX_PENDING_PER_CLIENT_USER": None,
    "USER_REQUEST_RATE": None,
}


@pytest.fixture
def no_user_limits(settings: Any) -> None:
    """``NO_USER_LIMITS`` for this test (a test that replaces ``settings.CIBA`` adds them itself)."""
    settings.CIBA = {**settings.CIBA, **NO_USER_LIMITS}


@pytest.fixture
def alice(db: Any) -> Any:
    return get_user_model().objects.create_user("alice", "alice@example.com", "alice-password")


@pytest.fixture
def make_client(db: Any) -> Callable[..., tuple[Any, str]]:
    """Create a confidential CIBA client; returns (application, plaintext secret)."""
    counter = iter(range(1, 10_000))

    def factory(mode: str = "poll", secret: str | None = None, **fields: Any) -> tuple[Any, str]:
        n = next(counter)
        secret = secret or f"secret-{n}-{secrets.token_urlsafe(32)}"
        values: dict[str, Any] = {
            "name": f"Kiosk {n}",
            "client_type": Application.CLIENT_CONFIDENTIAL,
            "authorization_grant_type": CIBA_GRANT_TYPE,
            "backchannel_token_delivery_mode": mode,
            "client_secret": secret,
            "algorithm": "RS256",
        }
        if mode in ("ping", "push"):
            values["backchannel_client_notification_endpoint"] = "https://client.example.com/cb"
        values.update(fields)
        app = Application(**values)
        app.full_clean()
        app.save()
        return app, secret

    return factory


@pytest.fixture
def hung_redis() -> Any:
    """A TCP server that accepts connections and never answers, as Redis stopped with SIGSTOP:
    ``(server, connections)``; its URL is ``redis://127.0.0.1:<server.getsockname()[1]>/0``."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    connections: list[Any] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connections.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    yield server, connections
    server.close()
    for connection in connections:
        connection.close()


@pytest.fixture
def json_server() -> Any:
    """A real HTTP server on loopback that serves JSON documents set by the test.

    ``server.documents[path] = {...}`` publishes a document; ``server.url(path)`` is its URL;
    ``server.hits[path]`` counts the GETs it answered.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            server.hits[self.path] = server.hits.get(self.path, 0) + 1
            document = server.documents.get(self.path)
            body = json.dumps(document).encode() if document is not None else b"{}"
            self.send_response(200 if document is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.documents, server.hits = {}, {}
    server.url = lambda path: f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def recorder() -> Any:
    """A real HTTP server on loopback that records every POST and answers queued statuses.

    ``server.statuses`` is a list of status codes to answer in order (then 204);
    ``server.delays`` a list of seconds to wait before answering, in order;
    ``server.drips`` maps a path to a list of seconds per byte: its next POSTs are answered
    one byte at a time at that pace (a peer that never times out a read);
    ``server.retry_after`` (seconds) goes with every 429 and 503;
    ``server.received`` holds ``(path, headers, body)`` of every POST, recorded on arrival,
    and ``server.answered`` counts the answers actually sent.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                server.received.append((self.path, dict(self.headers), body))
                status = server.statuses.pop(0) if server.statuses else 204
                delay = server.delays.pop(0) if server.delays else 0
                pace = server.drips.get(self.path, [])
                drip = pace.pop(0) if pace else 0
            if delay:
                time.sleep(delay)
            if drip:
                answer = f"HTTP/1.1 {status} Dripped\r\nContent-Length: 0\r\n\r\n".encode()
                try:
                    for byte in answer:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(drip)
                except OSError:  # the caller gave up: the usual end of a drip
                    return
                with lock:
                    server.answered += 1
                return
            try:
                self.send_response(status)
                if server.retry_after is not None and status in (429, 503):
                    self.send_header("Retry-After", str(server.retry_after))
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:  # the caller gave up (or died) while we waited
                return
            with lock:
                server.answered += 1

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads, block_on_close = True, False  # a hanging answer must not block teardown

    lock = threading.Lock()
    server: Any = Server(("127.0.0.1", 0), Handler)
    server.statuses, server.delays, server.received, server.answered = [], [], [], 0
    server.drips, server.retry_after = {}, None
    server.url = lambda path="/": f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def start_request(
    client: Any, app: Any, secret: str, body: str = "scope=openid+profile&login_hint=alice"
) -> str:
    """Start a CIBA request as ``app`` over HTTP and return its auth_req_id."""
    response = client.post(
        "/o/backchannel-authentication/",
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    return response.json()["auth_req_id"]


def pending_request(app: Any, user: Any, notification_token: str = "", **fields: Any) -> Any:
    """A pending ``openid`` request of ``app`` for ``user`` (by ``login_hint``), made through
    ``services.create_request``: 60 s to live, polled every 5 s."""
    from ciba import services

    return services.create_request(
        **{
            "expires_in": 60,
            "client": app,
            "user": user,
            "hint_kind": "login_hint",
            "scope": "openid",
            "interval": 5,
            "client_notification_token": notification_token,
            **fields,
        }
    )


def approve_ping(app: Any, user: Any, notification_token: str) -> Any:
    """Start a request of the ping client ``app`` for ``user`` and approve it: its callback
    outbox row is written (and, after commit, handed to a worker)."""
    from ciba import services

    auth_request = pending_request(app, user, notification_token)
    services.approve(auth_request, user=user)
    return auth_request


# The site-model suite runs under its own settings (tests.settings_site_model), in CI.
if os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings") != "tests.settings_site_model":
    collect_ignore = ["site_model"]


@pytest.fixture
def alices_request(client: Any, alice: Any, make_client: Any) -> Any:
    """alice's pending request from the "Corner Shop" poll client, for the consent API's tests."""
    from ciba.models import AuthenticationRequest

    app, secret = make_client("poll", name="Corner Shop")
    auth_req_id = start_request(
        client,
        app,
        secret,
        "scope=openid+email&login_hint=alice&binding_message=W4SCT&acr_values=urn%3Aacr%3Ahigh",
    )
    return AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
