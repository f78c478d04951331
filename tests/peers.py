"""Real TCP servers on loopback that play a client's endpoint, answering or stalling as each
test needs (``peer``, a fixture of ``tests/conftest.py``), and the handlers they share."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ciba import outbound

DRIP = 0.3


# --- the peers --------------------------------------------------------------------------------


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def wait_for_hangup(conn: socket.socket) -> None:
    while conn.recv(65536):
        pass


def drip(conn: socket.socket, data: bytes) -> None:
    """Send ``data`` a byte every ``DRIP`` seconds, until the caller hangs up."""
    conn.settimeout(DRIP)
    for byte in data:
        conn.sendall(bytes([byte]))
        try:
            if not conn.recv(1):  # the caller sends nothing more: this is its hang-up
                return
        except TimeoutError:
            pass


def silent(conn: socket.socket) -> None:
    """Accept, read the request, never answer (until the caller hangs up)."""
    read_request(conn)
    wait_for_hangup(conn)


def drips_headers(conn: socket.socket) -> None:
    read_request(conn)
    drip(conn, b"HTTP/1.1 204 No Content\r\nX-Padding: " + b"x" * 200 + b"\r\n\r\n")


def drips_body(conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n")
    drip(conn, b"x" * 200)


def drips_unsized_body(conn: socket.socket) -> None:
    """A body without a length ends when the connection does: a cut must not look like its end."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    drip(conn, b"x" * 200)


def answers_204(conn: socket.socket) -> None:
    """Answers every request on the connection, as a keep-alive server does, until the hang-up."""
    while read_request(conn):
        conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")


def answers_then_drips(conn: socket.socket) -> None:
    """Answers a first request at once and keeps the connection; drips the answer to the next."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    drips_headers(conn)


class Peer:
    """A TCP server on loopback: ``handler(conn)`` runs in a thread per connection, which ends
    when the caller hangs up. ``connections`` counts the connections accepted."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler, self.connections = handler, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.02)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/cb"
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()

    def accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        with conn:
            try:
                self.handler(conn)
            except OSError:  # the caller hung up
                pass

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.listener.close()


@pytest.fixture
def peer() -> Iterator[Callable[..., Peer]]:
    """Starts peers; afterwards, once they are stopped, no thread of the test is left: neither a
    watchdog nor a peer's handler (which ends only when the caller hangs up)."""
    threads = threading.active_count()
    peers: list[Peer] = []

    def start(handler: Callable[[socket.socket], None]) -> Peer:
        peers.append(Peer(handler))
        return peers[-1]

    yield start
    outbound.close_kept_session()  # the callbacks' kept connections: the caller hangs up
    for p in peers:
        p.stop()
    settled = time.monotonic() + 2
    while threading.active_count() > threads and time.monotonic() < settled:
        time.sleep(0.01)
    assert threading.active_count() <= threads, [t.name for t in threading.enumerate()]
