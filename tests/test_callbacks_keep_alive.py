"""A sending thread keeps its connection to a client's notification endpoint for its next
callback there (``CALLBACK_KEEP_ALIVE``): no new TCP connection and TLS handshake per callback,
and still no callback lost or delayed when the endpoint closes a connection it kept.

The endpoints are real TCP servers on loopback (``tests/peers.py``); they count the
connections they accepted.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from django.test import override_settings

from ciba import outbound
from ciba.callbacks.send import post
from ciba.outbound import http as outbound_http
from tests.peers import answers_204, read_request
from tests.test_outbound_deadline import CIBA, DEADLINE

NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


def ping(url: str) -> outbound.Outcome:
    return post(url, "notification-token", {"auth_req_id": "x"})


def answers_once_then_closes_on_the_next(conn: socket.socket) -> None:
    """Keeps the connection after its first answer, then closes it as the next request comes
    in, without an answer: what a server whose keep-alive timeout ends just then does."""
    read_request(conn)
    conn.sendall(NO_CONTENT)
    read_request(conn)


def closes_without_answering(conn: socket.socket) -> None:
    read_request(conn)


def hung_up(endpoint: object, connections: int, seconds: float = 2.0) -> bool:
    """Whether every connection of ``endpoint`` has ended (its handler threads are done)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        names = [t.name for t in threading.enumerate() if getattr(t, "_target", None) == endpoint.serve]
        if not names:
            return True
        time.sleep(0.01)
    return False


@override_settings(CIBA=CIBA)
def test_callbacks_to_one_endpoint_share_one_connection(peer):
    endpoint = peer(answers_204)
    outcomes = [ping(endpoint.url) for _ in range(3)]
    assert [(o.delivered, o.status) for o in outcomes] == [(True, 204)] * 3
    assert endpoint.connections == 1


@override_settings(CIBA=CIBA)
def test_each_endpoint_gets_its_own_connection(peer):
    first, second = peer(answers_204), peer(answers_204)
    for url in (first.url, second.url, first.url, second.url):
        assert ping(url).delivered
    assert (first.connections, second.connections) == (1, 1)


@override_settings(CIBA={**CIBA, "CALLBACK_KEEP_ALIVE": 0.2})
def test_a_connection_idle_past_the_keep_alive_limit_is_replaced(peer):
    endpoint = peer(answers_204)
    assert ping(endpoint.url).delivered
    time.sleep(0.3)
    assert ping(endpoint.url).delivered
    assert endpoint.connections == 2


@override_settings(CIBA={**CIBA, "CALLBACK_KEEP_ALIVE": 0})
def test_keep_alive_0_opens_and_closes_a_connection_per_callback(peer):
    endpoint = peer(answers_204)
    assert ping(endpoint.url).delivered
    assert hung_up(endpoint, 1), "the connection was left open"
    assert ping(endpoint.url).delivered
    assert endpoint.connections == 2


@override_settings(CIBA=CIBA)
def test_a_kept_connection_the_endpoint_closes_as_it_is_reused_still_delivers_at_once(peer):
    endpoint = peer(answers_once_then_closes_on_the_next)
    assert ping(endpoint.url).delivered
    started = time.monotonic()
    outcome = ping(endpoint.url)
    assert (outcome.delivered, outcome.status) == (True, 204)  # on a new connection, not a retry later
    assert time.monotonic() - started < DEADLINE
    assert endpoint.connections == 2


@override_settings(CIBA=CIBA)
def test_a_new_connection_closed_without_an_answer_is_a_failed_attempt_not_sent_twice(peer):
    endpoint = peer(closes_without_answering)
    outcome = ping(endpoint.url)
    assert not outcome.delivered and outcome.retry  # the outbox retries it later
    assert endpoint.connections == 1


@override_settings(CIBA=CIBA)
def test_an_endpoint_closing_the_connection_after_each_answer_gets_every_callback(peer):
    """A server that closes after each answer, without saying so (``Connection: close``), is
    found closed before the next callback goes out: each callback takes a new connection."""

    def answers_and_closes(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(NO_CONTENT)

    endpoint = peer(answers_and_closes)
    for _ in range(3):
        assert ping(endpoint.url).delivered
        time.sleep(0.05)  # the close reaches us, as it would between two real callbacks
    assert endpoint.connections == 3


@override_settings(CIBA=CIBA)
def test_a_kept_connection_is_never_used_by_another_process(peer, monkeypatch):
    """A forked child (a Celery pool process, a preforking web server) shares its parent's
    sockets: it opens its own connection instead of writing into the parent's."""
    endpoint = peer(answers_204)
    assert ping(endpoint.url).delivered
    parent = os.getpid()
    monkeypatch.setattr(outbound_http.os, "getpid", lambda: parent + 1)
    assert ping(endpoint.url).delivered
    assert endpoint.connections == 2


@override_settings(CIBA=CIBA)
def test_a_sending_thread_has_its_own_connection_and_closes_it_when_done(peer):
    endpoint = peer(answers_204)
    assert ping(endpoint.url).delivered

    def sender() -> None:
        try:
            assert ping(endpoint.url).delivered
        finally:
            outbound.close_kept_session()

    thread = threading.Thread(target=sender)
    thread.start()
    thread.join()
    assert endpoint.connections == 2
    assert ping(endpoint.url).delivered  # this thread's connection is still kept
    assert endpoint.connections == 2


@pytest.mark.parametrize("value", [-1, "4s", None])
def test_a_keep_alive_that_is_not_seconds_is_reported_by_the_checks(settings, value):
    from ciba.checks import Codes, check_worker_settings

    settings.CIBA = {**settings.CIBA, "CALLBACK_KEEP_ALIVE": value}
    assert [m.id for m in check_worker_settings()] == [Codes.WORKER_SETTINGS]
    settings.CIBA = {**settings.CIBA, "CALLBACK_KEEP_ALIVE": 0}
    assert check_worker_settings() == []
