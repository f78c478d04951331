"""A TCP proxy the test controls, between the server under test and a real dependency.

Fault tests need PostgreSQL, Redis or the broker to misbehave the way networks do, without
stopping the shared services every other test uses: point the server's ``DATABASE_URL``,
``CACHE_URL`` or ``CELERY_BROKER_URL`` at ``proxy.port`` and then

* ``pause()``: black-hole. Connections stay open and new ones are accepted, but no byte moves in
  either direction (a hung server, a dropped route): only timeouts end a call.
* ``refuse()``: the dependency is down. Every open connection is reset and new connects are
  refused (``ECONNREFUSED``) until ``restore()``.
* ``resume()`` / ``restore()``: traffic flows again; held bytes are delivered (after a pause),
  new connections reach the dependency (after a refusal).

Loopback only; every thread is a daemon and ``close()`` ends them.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._closed = False
        self.port = listen_port
        self._listen()

    # --- what the test controls ---------------------------------------------------------

    def pause(self) -> None:
        """Black-hole every connection, open or new, until ``resume()``."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def refuse(self) -> None:
        """Reset every connection and refuse new ones until ``restore()``."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            # shutdown() first: on Linux, close() alone leaves the socket listening while the
            # accept thread is blocked in accept(), and restore() could not bind the port again.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            _close(listener)
        for sock in sockets:
            with contextlib.suppress(OSError):
                # SO_LINGER 0: close with RST, as a crashed peer's kernel would.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            _close(sock)

    def restore(self) -> None:
        """Accept connections again on the same port (after ``refuse()``); traffic flows."""
        self._flowing.set()
        if self._listener is None:
            self._listen()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.pause()
        try:
            yield
        finally:
            self.resume()

    @contextlib.contextmanager
    def refused(self) -> Iterator[None]:
        self.refuse()
        try:
            yield
        finally:
            self.restore()

    def url(self, scheme_and_rest: str) -> str:
        """``"redis://127.0.0.1:{port}/3"`` style helper: formats ``{port}`` with ours."""
        return scheme_and_rest.format(port=self.port)

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self.refuse()

    # --- plumbing ------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # refused or closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if not self._track(client):
            return
        self._flowing.wait()  # a paused proxy accepts but never connects onwards
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        if not self._track(upstream):
            _close(client)
            return
        pair = {client: upstream, upstream: client}
        try:
            while not self._closed:
                ready, _, _ = select.select(list(pair), [], [], 0.2)
                for sock in ready:
                    self._flowing.wait()
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            _close(client)
            _close(upstream)

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._listener is None or self._closed:
                _close(sock)  # refused while this connection was being set up
                return False
            self._sockets.add(sock)
            return True


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
