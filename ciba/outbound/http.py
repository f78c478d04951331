"""The hardened HTTP session for every outbound call, and a bounded JSON GET.

Every such URL is attacker-influenced (a client registers it), so requests go through
requests-hardened: the host is resolved once, private/loopback/link-local addresses are
refused, and the connection is pinned to the checked address (no DNS rebinding). Redirects
are never followed and responses are read up to a size limit. The URL policy of
``ciba.outbound.url_policy`` (https only, no credentials) is applied again at call time, because
settings can change after a client was registered.

Every call also has a total deadline, connect to last byte (``CALLBACK_TOTAL_TIMEOUT``;
``JWKS_FETCH_TIMEOUT`` for key sets). requests only bounds each socket operation, so a peer
that sends one byte at a time, just inside the read timeout, in the TLS handshake, the status
line, the headers or the body, would hold a worker for as long as it likes. Hence ``send``
arms a watchdog (an alarm on the one thread of ``ciba.outbound.alarms``, not a thread per
call), and the connection pools use connection classes that register every socket the call
opens or reuses; when the deadline passes, the watchdog shuts those sockets down, the blocked
read fails at once, and the call raises ``DeadlineExceeded``, a ``requests.Timeout``, which
every caller already treats as worth a retry. The watchdog is
cancelled once the answer has been read: at the end of ``send``, or for a streamed response
when its body has been read, or it or the session is closed. It holds a duplicate of each
socket's descriptor, because wrapping a socket in TLS detaches the original socket object
while the handshake runs. A socket that is still connecting cannot be shut down, so the
connect timeout is cut to the deadline; name resolution, which no timeout reaches, is not
covered.

Callbacks go through ``kept_session``: each sending thread keeps one session, so its
connection to a client's endpoint (TCP, and TLS above all) serves the next callback to the
same endpoint instead of a new handshake each time (issue 29). A connection is reused only
for the same pinned address and TLS server name, only while the peer has not closed it, and
only within ``CALLBACK_KEEP_ALIVE`` seconds of its last answer; one the peer closes just as it
is reused is retried once on a new connection (``_closed_by_peer``), so a server's keep-alive
timeout never costs a callback a retry delay.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from http.client import RemoteDisconnected
from typing import Any

import requests
from django.core.exceptions import ValidationError
from requests.adapters import HTTPAdapter
from requests_hardened import Config, HTTPSession
from requests_hardened.ip_filter_adapter import IPFilterAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ProtocolError, ReadTimeoutError
from urllib3.poolmanager import ProxyManager
from urllib3.response import HTTPResponse

from ..conf import ciba_settings
from . import alarms
from .url_policy import validate_outbound_url

USER_AGENT = "django-ciba"


class OutboundError(Exception):
    """A client URL could not be called or did not answer usefully; the message is safe to show."""


class DeadlineExceeded(requests.Timeout):
    """The call was cut off at its total deadline (a ``requests.Timeout``: worth a retry)."""


class _Deadline:
    """The watchdog of one call: at the deadline it shuts down the sockets the call uses."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        #: A socket of this call was shut down: what it reads or writes is cut short.
        self.cut = False
        #: The call went out on a kept-alive connection (``_Session.send`` may retry it once).
        self.reused = False
        self._expired = self._done = False
        self._lock = threading.Lock()
        self._handles: dict[Any, socket.socket] = {}  # connection -> duplicate of its socket
        # On the one watchdog thread, not a thread of its own (``alarms``: no thread start,
        # which waits for the GIL, before each call).
        self._alarm = alarms.after(seconds, self._expire)

    def watch(self, connection: Any, sock: socket.socket) -> None:
        """Watch the socket ``connection`` uses for this call (shut at once if time is up)."""
        try:
            handle = socket.fromfd(sock.fileno(), sock.family, sock.type, sock.proto)
        except OSError:
            return
        with self._lock:  # shutdown and close never race (a closed descriptor can be reused)
            if self._done:
                handle.close()
                return
            old = self._handles.pop(connection, None)
            if old is not None:  # the connection's previous socket
                old.close()
            self._handles[connection] = handle
            if self._expired:
                self._shut(handle)

    def release(self, connection: Any) -> None:
        """``connection`` now serves another call of the session: stop watching it."""
        with self._lock:
            handle = self._handles.pop(connection, None)
            if handle is not None:
                handle.close()

    def cancel(self) -> None:
        self._alarm.cancel()
        with self._lock:
            self._done = True
            for handle in self._handles.values():
                handle.close()
            self._handles.clear()

    @property
    def done(self) -> bool:
        """Cancelled: the call's answer was read (or abandoned), nothing is watched any more."""
        return self._done

    def exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"no complete answer within {self.seconds:g} s")

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._expired = True
            for handle in self._handles.values():
                self._shut(handle)

    def _shut(self, handle: socket.socket) -> None:
        self.cut = True
        try:
            handle.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed by the peer
            pass


#: The deadline of the call ``send`` is making in this thread (connections register with it).
_current: ContextVar[_Deadline | None] = ContextVar("ciba_outbound_deadline", default=None)


class _WatchedConnection:
    """Registers each socket it opens, or reuses for a new call, with the call's deadline."""

    sock: Any
    _watched_by: _Deadline | None = None
    _opened_for: _Deadline | None = None

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        self._opened_for = _current.get()
        self._watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> Any:
        deadline = _current.get()
        if self.sock is not None and self._opened_for is not deadline:
            # A kept-alive connection, now serving this call (urllib3 connects a new https
            # connection before its request: that one was opened for this call).
            if deadline is not None:
                deadline.reused = True
            if self._watched_by is not deadline:
                self._watch(self.sock)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def _watch(self, sock: socket.socket) -> None:
        deadline = _current.get()
        if deadline is None:
            return
        if self._watched_by is not None and self._watched_by is not deadline:
            self._watched_by.release(self)
        self._watched_by = deadline
        deadline.watch(self, sock)

    def getresponse(self) -> Any:
        response = super().getresponse()  # type: ignore[misc]
        deadline = _current.get()
        if deadline is not None:
            # urllib3 builds its response in this method, so it is given its class here.
            response.__class__, response.deadline = _WatchedResponse, deadline
        return response


class _WatchedResponse(HTTPResponse):
    """urllib3's response, still under the call's deadline while its body is read (requests
    leaves a streamed body to be read after ``send`` returns); disarmed once it is read or
    closed. Its reads raise requests exceptions, which is what callers of ``response.raw``
    catch: ``DeadlineExceeded`` when the watchdog cut the body short, even if the cut looked
    like the end of a body without a length."""

    deadline: _Deadline

    def read(self, *args: Any, **kwargs: Any) -> Any:
        try:
            data = super().read(*args, **kwargs)
        except requests.RequestException:
            raise
        except Exception as exc:
            if self.deadline.cut:
                raise self.deadline.exceeded() from exc
            if isinstance(exc, ReadTimeoutError):
                raise requests.ReadTimeout(exc) from exc
            if isinstance(exc, ProtocolError):
                raise requests.ConnectionError(exc) from exc
            raise
        if self.deadline.cut:
            raise self.deadline.exceeded()
        return data

    def release_conn(self) -> None:  # urllib3 calls it when the body has been read
        try:
            super().release_conn()
        finally:
            self.deadline.cancel()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.deadline.cancel()


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _IdleLimit:
    """A pool mixin: a connection idle longer than ``CALLBACK_KEEP_ALIVE`` is closed before it
    is reused (and reconnected). Servers close idle connections after a timeout of their own
    (2 s for gunicorn, 5 s for Apache and Node): reusing one near that moment races its close."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        idle_since = getattr(conn, "ciba_idle_since", None)
        limit = _keep_alive()
        if idle_since is not None and limit and time.monotonic() - idle_since > limit:
            conn.close()
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn.ciba_idle_since = time.monotonic()
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_IdleLimit, HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_IdleLimit, HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _WatchedPools:
    """An adapter mixin: its pool managers make connections that a deadline can cut."""

    poolmanager: Any

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[misc]
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)  # type: ignore[misc]
        if type(manager) is ProxyManager:  # not SOCKS, whose pools are its own
            manager.pool_classes_by_scheme = _POOLS
        return manager


class _IPFilterAdapter(_WatchedPools, IPFilterAdapter):
    """requests-hardened's adapter (resolve, refuse private addresses, pin), with deadlines."""


class _PlainAdapter(_WatchedPools, HTTPAdapter):
    """The adapter used when private networks are allowed, with deadlines."""


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """The session's authentication: none, as a callable that changes nothing. requests looks
    a host up in the process's ``~/.netrc`` (``trust_env``) for any call that brings no
    authentication of its own, and its entry's credentials then replace the request's
    ``Authorization`` header: a client-registered endpoint whose host had an entry would be
    sent the operator's credentials instead of its ``client_notification_token``. Proxies from
    the environment still apply."""
    return request


class _Session(HTTPSession):
    """requests-hardened's session, where every ``send`` has a total deadline."""

    def __init__(self, config: Config, *, total_timeout: float) -> None:
        super().__init__(config)
        self.auth = _no_netrc  # never ~/.netrc's credentials (``_no_netrc``)
        self.total_timeout = total_timeout
        self._streaming: list[_Deadline] = []
        for prefix, https in (("http://", False), ("https://", True)):
            if config.ip_filter_enable:
                adapter: HTTPAdapter = _IPFilterAdapter(
                    is_https_proto=https,
                    allow_loopback=config.ip_filter_allow_loopback_ips,
                    tls_sni_support=config.ip_filter_tls_sni_support,
                )
            else:
                adapter = _PlainAdapter()
            self.mount(prefix, adapter)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        total = self.total_timeout
        timeout = kwargs.get("timeout") or self._config.default_timeout or total
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        kwargs["timeout"] = (min(connect or total, total), min(read or total, total))
        deadline = _Deadline(total)
        reset = _current.set(deadline)
        try:
            try:
                response = super().send(request, **kwargs)
            except requests.ConnectionError as exc:
                if not (deadline.reused and not deadline.cut and _closed_by_peer(exc)):
                    raise
                # The peer closed the kept-alive connection as the call went out: it never
                # read it. Once more, on a new connection, within the same deadline.
                deadline.reused = False
                response = super().send(request, **kwargs)
        except Exception as exc:
            deadline.cancel()
            if deadline.cut:
                raise deadline.exceeded() from exc
            raise
        except BaseException:
            deadline.cancel()
            raise
        finally:
            _current.reset(reset)
        if deadline.cut:  # the watchdog fired as the answer came in: past the deadline all the same
            deadline.cancel()
            response.close()
            raise deadline.exceeded()
        if kwargs.get("stream"):
            # Until the body is read, or closed with the session; a kept session forgets those
            # done (``_Deadline.done``), or its list would grow with every call.
            self._streaming = [d for d in self._streaming if not d.done]
            self._streaming.append(deadline)
        else:
            deadline.cancel()  # the body has been read
        return response

    def close(self) -> None:
        for deadline in self._streaming:
            deadline.cancel()
        self._streaming.clear()
        # urllib3 2 forgets its pools on close and leaves their connections to the garbage
        # collector: a kept session's connections would stay open as long as anything (a
        # traceback, say) still refers to them. Close them now.
        for adapter in self.adapters.values():
            for manager in (adapter.poolmanager, *adapter.proxy_manager.values()):
                for key in list(manager.pools.keys()):
                    pool = manager.pools.get(key)
                    if pool is not None:
                        pool.close()
        super().close()


_PEER_CLOSED = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, RemoteDisconnected)


def _closed_by_peer(exc: BaseException) -> bool:
    """Whether the connection failed because the peer closed it before its answer's headers
    were complete (reset, a broken pipe, or closed without a status line): what a server's idle
    timeout does to a kept-alive connection it closes as the call goes out. A timeout, or a
    body cut short (read after ``send`` returns), is not this."""
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        error = pending.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, _PEER_CLOSED):
            return True
        pending.extend(error.args)
        pending.append(error.__cause__)
    return False


def _keep_alive() -> float:
    return float(ciba_settings.CALLBACK_KEEP_ALIVE or 0)


#: Each thread's kept session (``kept_session``): the process it was made in, its settings, it.
_kept = threading.local()


@contextmanager
def kept_session(*, total_timeout: float | None = None) -> Iterator[requests.Session]:
    """The calling thread's session for client notification endpoints, kept open after the
    ``with`` block so that its connections serve the next calls (``CALLBACK_KEEP_ALIVE``; 0: a
    new session, closed after the block, as ``session``). ``total_timeout`` is the deadline of
    each call made in the block (default ``CALLBACK_TOTAL_TIMEOUT``). A kept session is remade
    when the settings it was made with change, and never used in a process it was not made in
    (a forked child would share its parent's sockets); ``close_kept_session`` closes it."""
    if total_timeout is None:
        total_timeout = ciba_settings.CALLBACK_TOTAL_TIMEOUT
    if not _keep_alive():
        close_kept_session()
        with session(total_timeout=total_timeout) as http:
            yield http
        return
    key = (
        os.getpid(),
        bool(ciba_settings.CALLBACK_ALLOW_PRIVATE_NETWORKS),
        ciba_settings.CALLBACK_CONNECT_TIMEOUT,
        ciba_settings.CALLBACK_READ_TIMEOUT,
    )
    held = getattr(_kept, "held", None)
    if held is None or held[0] != key:
        close_kept_session()
        held = _kept.held = (key, session(total_timeout=total_timeout))
    http = held[1]
    http.total_timeout = total_timeout
    yield http


def close_kept_session() -> None:
    """Close the calling thread's kept session and its connections (a thread that sends
    callbacks calls it as it ends)."""
    held = getattr(_kept, "held", None)
    _kept.held = None
    if held is not None and held[0][0] == os.getpid():  # a parent's sockets are left to it
        held[1].close()


def session(*, allow_private: bool | None = None, total_timeout: float | None = None) -> requests.Session:
    """A hardened session; ``allow_private`` defaults to ``CALLBACK_ALLOW_PRIVATE_NETWORKS``,
    ``total_timeout`` (the deadline of each call it makes) to ``CALLBACK_TOTAL_TIMEOUT``."""
    if allow_private is None:
        allow_private = ciba_settings.CALLBACK_ALLOW_PRIVATE_NETWORKS
    if total_timeout is None:
        total_timeout = ciba_settings.CALLBACK_TOTAL_TIMEOUT
    return _Session(
        Config(
            ip_filter_enable=not allow_private,
            ip_filter_allow_loopback_ips=allow_private,
            never_redirect=True,
            default_timeout=(ciba_settings.CALLBACK_CONNECT_TIMEOUT, ciba_settings.CALLBACK_READ_TIMEOUT),
            user_agent_override=USER_AGENT,
        ),
        total_timeout=total_timeout,
    )


def get_json(url: str, *, max_bytes: int = 64 * 1024, total_timeout: float | None = None) -> Any:
    """GET a JSON document from a client-registered URL, or raise ``OutboundError``.

    ``total_timeout`` bounds the whole fetch (default ``CALLBACK_TOTAL_TIMEOUT``)."""
    try:
        validate_outbound_url(url)
    except ValidationError as exc:
        raise OutboundError(f"URL refused: {' '.join(exc.messages)}") from None
    try:
        with (
            session(total_timeout=total_timeout) as http,
            http.get(url, stream=True, headers={"Accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise OutboundError(f"HTTP {response.status_code} from {url}")
            body = response.raw.read(max_bytes + 1, decode_content=True)
    except requests.RequestException as exc:
        raise OutboundError(f"Could not fetch {url}: {type(exc).__name__}") from None
    if len(body) > max_bytes:
        raise OutboundError(f"Response from {url} is larger than {max_bytes} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise OutboundError(f"Response from {url} is not JSON") from None
