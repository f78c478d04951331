"""Django's health check on the ``ciba.db`` engine, with a real PostgreSQL: skipped for a
connection answered within the last ``health_check_idle_seconds``, and a backend terminated
between two requests never costs a request that was answered as accepted.

Requests go through Django's WSGI handler as a server calls it, so ``close_old_connections``
runs at each request's start and end (Django's test client turns it off). A backend is
terminated with ``pg_terminate_backend`` from a second connection: PostgreSQL's own way of
ending a session (a restart or a failover ends them all the same way).
"""

from __future__ import annotations

import json
import select
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, connections

from ciba.db import base
from ciba.models import AuthenticationRequest
from tests.conftest import basic_auth
from tests.protocol import BACKCHANNEL
from tests.test_fast_lane import environ

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def site(alice: Any, make_client: Any) -> Any:
    """The WSGI application, and a poll client's backchannel request through it."""
    app, secret = make_client("poll")
    django = WSGIHandler()

    def request(message: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        body = f"scope=openid&login_hint=alice&binding_message={message}"
        env = environ(body, path=BACKCHANNEL, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret))
        started: list[Any] = []
        chunks = django(env, lambda status, headers, exc_info=None: started.append((status, headers)))
        try:
            content = b"".join(chunks)
        finally:
            chunks.close()  # request_finished: Django closes a connection that failed
        status, headers = started[0]
        return int(status.split()[0]), json.loads(content), dict(headers)

    return request


@pytest.fixture
def checks(monkeypatch: Any) -> list[bool]:
    """Every health check Django runs (``is_usable``: a ``SELECT 1``) and what it found."""
    found: list[bool] = []
    usable = base.DatabaseWrapper.is_usable

    def counted(self: Any) -> bool:
        found.append(usable(self))
        return found[-1]

    monkeypatch.setattr(base.DatabaseWrapper, "is_usable", counted)
    return found


@pytest.fixture
def window(monkeypatch: Any) -> None:
    """A window no request outlasts: what these tests see never depends on the machine's speed."""
    monkeypatch.setattr(connections["default"], "health_check_idle_seconds", 3600.0)


@pytest.fixture
def admin() -> Iterator[psycopg.Connection]:
    """A second session on the test database, to end the server's session from outside."""
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
        autocommit=True,
    ) as session:
        yield session


def backend() -> int:
    assert isinstance(connection.connection, base.BoundedConnection), "the production tier runs on ciba.db"
    return connection.connection.info.backend_pid


def terminate(admin: psycopg.Connection, pid: int, *, farewell_arrived: bool) -> None:
    """End the backend ``pid``; with ``farewell_arrived``, wait until it is gone and its last
    message (``57P01 terminating connection due to administrator command``) reached our socket."""
    assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    if farewell_arrived:
        fd = connection.connection.pgconn.socket
        readable, _, _ = select.select([fd], [], [], 30)  # a bound on the wait, not a timing
        assert readable, "the terminated backend's farewell never arrived"


def stored(message: str) -> int:
    return AuthenticationRequest.objects.filter(binding_message=message).count()


def test_a_connection_answered_just_before_is_not_checked_again(site, checks, window):
    assert site("FIRST")[0] == 200
    pid, checks[:] = backend(), []

    status, body, _ = site("SECOND")

    assert status == 200 and body["auth_req_id"]
    assert checks == []  # no SELECT 1 before the request's first query
    assert backend() == pid  # the same connection, kept across requests


def test_a_connection_idle_longer_than_the_window_is_checked_before_use(site, checks, window):
    assert site("FIRST")[0] == 200
    pid, checks[:] = backend(), []
    connection.connection.ciba_answered_at -= 7200  # idle for two hours

    assert site("SECOND")[0] == 200

    assert checks == [True]
    assert backend() == pid


def test_a_backend_terminated_between_two_requests_is_replaced_when_its_farewell_arrived(
    site, checks, window, admin
):
    assert site("FIRST")[0] == 200
    pid, checks[:] = backend(), []
    terminate(admin, pid, farewell_arrived=True)

    status, body, _ = site("SECOND")

    # Within the window, yet checked: something arrived on the socket. The check found the
    # connection dead, Django connected again, and the request was served and stored.
    assert checks == [False]
    assert status == 200 and body["auth_req_id"]
    assert backend() != pid
    assert stored("FIRST") == stored("SECOND") == 1


def test_a_backend_terminated_before_its_farewell_was_seen_costs_one_503_and_no_request(
    site, checks, window, admin, monkeypatch
):
    assert site("FIRST")[0] == 200
    pid, checks[:] = backend(), []
    terminate(admin, pid, farewell_arrived=False)
    # The skip decided before the farewell arrived (it is still on its way, or the network
    # dropped it): the check is skipped and the dead connection meets the request's query.
    monkeypatch.setattr(base, "_readable", lambda fd: False)

    status, body, headers = site("SECOND")

    assert status == 503 and body["error"] == "temporarily_unavailable"
    assert headers["Retry-After"] == "1"
    # Django's end of the request checked the connection that failed (its own is_usable after
    # an error), found it dead and closed it: the client's retry gets a new one.
    assert checks == [False] and connection.connection is None
    assert stored("SECOND") == 0  # answered as not accepted, and nothing was stored
    status, body, _ = site("SECOND")
    assert status == 200 and body["auth_req_id"]
    assert backend() != pid
    assert stored("FIRST") == stored("SECOND") == 1
