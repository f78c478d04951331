"""The ``ciba.db`` engine skips Django's health check (``SELECT 1``) for a connection PostgreSQL
answered within ``health_check_idle_seconds`` with nothing arrived on its socket since, and
checks every other connection as Django does.

The fast tier has no PostgreSQL: the connection here is a ``BoundedConnection`` whose libpq
side is a stand-in around one end of a real socket pair, so "something arrived" is a byte the
other end really sent. The real server terminating a backend between two requests is in
``tests/integration/test_db_health_check.py``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db.utils import ConnectionHandler

from ciba.db import base
from example_project import env


class FakePgconn:
    """libpq's connection as ``ciba_quiet_since`` sees it: a status and a socket."""

    def __init__(self, fd: int) -> None:
        self.status = psycopg.pq.ConnStatus.OK
        self.socket = fd


class Connection(base.BoundedConnection):
    """A ``BoundedConnection`` without a server: only what the health check reads."""

    def __init__(self, pgconn: FakePgconn) -> None:  # no psycopg set-up: there is no server
        self.pgconn = pgconn  # type: ignore[assignment]

    def __del__(self) -> None:  # nothing to close
        pass


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, server = socket.socketpair()
    yield ours, server
    ours.close()
    server.close()


@pytest.fixture
def wrapper(monkeypatch: Any, sockets: tuple[socket.socket, socket.socket]) -> Any:
    """The engine's wrapper with a connection the server answered just now, and Django's state
    at a request's first query (health checks on, not yet done this request)."""
    monkeypatch.setenv("DATABASE_URL", "postgres://ciba@db.example:5432/ciba")
    wrapper = ConnectionHandler({"default": env.database("/tmp/unused.sqlite3")})["default"]
    connection = Connection(FakePgconn(sockets[0].fileno()))
    connection.ciba_answered_at = time.monotonic()
    wrapper.connection = connection
    wrapper.health_check_enabled = True
    wrapper.health_check_done = False
    wrapper.checked = 0
    wrapper.closed = 0

    def is_usable() -> bool:
        wrapper.checked += 1
        return False  # what a broken connection answers: Django then closes it

    def close() -> None:
        wrapper.closed += 1
        wrapper.connection = None

    monkeypatch.setattr(wrapper, "is_usable", is_usable)
    monkeypatch.setattr(wrapper, "close", close)
    return wrapper


def test_a_connection_answered_within_the_last_second_skips_the_select_1(wrapper):
    wrapper.close_if_health_check_failed()

    assert wrapper.checked == 0 and wrapper.closed == 0
    assert wrapper.health_check_done  # and the rest of the request does not ask again


def test_a_connection_idle_longer_than_the_window_is_checked_as_django_checks_it(wrapper):
    wrapper.connection.ciba_answered_at = time.monotonic() - wrapper.health_check_idle_seconds - 0.5

    wrapper.close_if_health_check_failed()

    assert wrapper.checked == 1 and wrapper.closed == 1  # the broken connection is replaced


def test_a_connection_never_answered_is_checked(wrapper):
    wrapper.connection.ciba_answered_at = 0.0
    wrapper.close_if_health_check_failed()
    assert wrapper.checked == 1


def test_something_arrived_on_the_socket_means_the_check_runs_whatever_the_time(wrapper, sockets):
    _, server = sockets
    server.send(b"E")  # a terminated backend's farewell: an ErrorResponse, 57P01

    wrapper.close_if_health_check_failed()

    assert wrapper.checked == 1 and wrapper.closed == 1


def test_the_end_of_the_stream_means_the_check_runs(wrapper, sockets):
    _, server = sockets
    server.close()  # the server's side went away
    wrapper.close_if_health_check_failed()
    assert wrapper.checked == 1


def test_a_connection_libpq_knows_is_bad_is_checked(wrapper):
    wrapper.connection.pgconn.status = psycopg.pq.ConnStatus.BAD
    wrapper.close_if_health_check_failed()
    assert wrapper.checked == 1


def test_a_socket_that_cannot_be_polled_means_the_check_runs(wrapper, sockets):
    ours, _ = sockets
    wrapper.connection.pgconn.socket = -1  # what a closed descriptor leaves
    wrapper.close_if_health_check_failed()
    assert wrapper.checked == 1


def test_zero_seconds_checks_every_request_as_django_does(wrapper):
    wrapper.health_check_idle_seconds = 0.0
    wrapper.close_if_health_check_failed()
    assert wrapper.checked == 1


def test_nothing_changes_when_health_checks_are_off_or_done(wrapper):
    wrapper.connection.ciba_answered_at = 0.0  # would be checked, if anything were
    wrapper.health_check_enabled = False
    wrapper.close_if_health_check_failed()
    wrapper.health_check_enabled, wrapper.health_check_done = True, True
    wrapper.close_if_health_check_failed()
    assert wrapper.checked == 0


def test_the_window_is_an_option_of_the_engine_and_never_reaches_libpq(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://ciba@db.example:5432/ciba")
    config = env.database("/tmp/unused.sqlite3")
    wrapper = ConnectionHandler({"default": config})["default"]
    assert wrapper.health_check_idle_seconds == base.DEFAULT_HEALTH_CHECK_IDLE_SECONDS == 1.0
    assert "health_check_idle_seconds" not in wrapper.get_connection_params()

    config["OPTIONS"] = {**config["OPTIONS"], "health_check_idle_seconds": 0}
    wrapper = ConnectionHandler({"default": config})["default"]
    assert wrapper.health_check_idle_seconds == 0.0
    assert "health_check_idle_seconds" not in wrapper.get_connection_params()
