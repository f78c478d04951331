"""Django's PostgreSQL engine (psycopg 3), with every wait bounded and a breaker.

PostgreSQL's own timeouts (``statement_timeout``, ``lock_timeout``) end a slow query on a
server that still runs; TCP keepalives and ``tcp_user_timeout`` end a connection whose peer
vanished from the network. Neither ends a wait on a server that is hung (stopped, swapping,
its disk gone) or a network path that swallows bytes while the kernel acknowledges them: the
client then waits for an answer that never comes, and a web worker is lost with it. This
engine bounds that wait on the client side:

* every round trip on a connection waits at most ``OPTIONS["query_timeout"]`` seconds
  (default 2; 0 turns it off); then the connection is closed (its state is unknown) and the
  query raises ``OperationalError``;
* connecting waits at most libpq's ``connect_timeout`` (``OPTIONS``; libpq's minimum is 2 s);
* after a wait that timed out, the request stops asking the database and the process does for
  ``OPTIONS["breaker_seconds"]`` (default 2): queries and connects raise ``OperationalError``
  at once (``ciba.outages.Breaker``). Django's health check (``CONN_HEALTH_CHECKS``) and its
  closing of unusable persistent connections then cost nothing either, and a process that
  served a hung database reconnects on its own once the breaker closes.

Django's health check (``CONN_HEALTH_CHECKS``) costs a round trip (``SELECT 1``) at the first
query of every request. This engine skips it for a connection that PostgreSQL answered within
the last ``OPTIONS["health_check_idle_seconds"]`` (default 1; 0 checks every request, as Django
does) and on whose socket nothing arrived since: a backend that was terminated (a restart,
``pg_terminate_backend``, a failover) sends its farewell before it goes, which then makes the
check run and the connection be replaced, as Django's would. A connection that broke in that
second without a word (or whose word is still on its way) fails its first query instead:
``OperationalError``, which ciba's endpoints answer ``503 temporarily_unavailable`` (nothing
was written) and Django's end of the request closes; the next request connects again. A
connection idle for longer is checked as Django checks it.

Use it with ``"ENGINE": "ciba.db"`` (``example_project/env.py`` does for a ``postgres://``
``DATABASE_URL``); everything else is Django's ``django.db.backends.postgresql``.
"""

from __future__ import annotations

import select
import time
from typing import Any

import psycopg
from django.db.backends.postgresql import base as postgresql
from psycopg import errors as pg_errors

from ..outages import DEFAULT_BREAKER_SECONDS, Breaker, breaker

#: Seconds a query may wait for the server before the connection is given up.
DEFAULT_QUERY_TIMEOUT = 2.0
#: A connection answered within this many seconds skips Django's health check (``SELECT 1``).
DEFAULT_HEALTH_CHECK_IDLE_SECONDS = 1.0
_OWN_OPTIONS = ("query_timeout", "breaker_seconds", "health_check_idle_seconds")


class DatabaseTimeout(psycopg.OperationalError):
    """The server did not answer within the query timeout, or the breaker is open. Django
    reports it as ``django.db.utils.OperationalError``."""


class BoundedConnection(psycopg.Connection):
    """A psycopg connection whose waits end after ``ciba_query_timeout`` seconds."""

    ciba_query_timeout: float | None = None
    ciba_breaker: Breaker | None = None
    #: ``time.monotonic()`` when the server last answered on this connection (0: never).
    ciba_answered_at: float = 0.0

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        breaker = self.ciba_breaker
        if breaker is not None and not breaker.allow():
            gen.close()
            raise DatabaseTimeout("The database breaker is open: not asking PostgreSQL for a while.")
        if timeout is None and self.ciba_query_timeout:
            timeout = self.ciba_query_timeout
        try:
            result = super().wait(gen, interval=interval, timeout=timeout)
        except pg_errors._WaitTimeout:  # noqa: SLF001 - psycopg's own signal that the timeout passed
            # The connection's protocol state is unknown: it cannot be used again.
            self.pgconn.finish()
            if breaker is not None:
                breaker.trip(f"no answer within {timeout} s")
            raise DatabaseTimeout(f"PostgreSQL did not answer within {timeout} s.") from None
        self.ciba_answered_at = time.monotonic()
        if breaker is not None:
            breaker.succeeded()
        return result

    def ciba_quiet_since(self, seconds: float) -> bool:
        """Whether the server answered within the last ``seconds`` and nothing arrived on the
        socket since (an idle session receives nothing but a terminated backend's farewell,
        or the end of the stream). No round trip: one ``poll`` of the socket."""
        if not seconds or not self.ciba_answered_at or time.monotonic() - self.ciba_answered_at >= seconds:
            return False
        try:
            if self.pgconn.status != psycopg.pq.ConnStatus.OK:
                return False
            return not _readable(self.pgconn.socket)
        except (OSError, psycopg.Error, ValueError):
            return False


def _readable(fd: int) -> bool:
    """Whether ``fd`` has input (or an end of stream, or an error) waiting, without waiting."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


class _Psycopg:
    """The psycopg module, connecting with ``BoundedConnection``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(psycopg, name)

    @staticmethod
    def connect(*args: Any, **kwargs: Any) -> BoundedConnection:
        return BoundedConnection.connect(*args, **kwargs)


class DatabaseWrapper(postgresql.DatabaseWrapper):
    Database = _Psycopg()

    def __init__(self, settings_dict: dict[str, Any], alias: str = "default") -> None:
        super().__init__(settings_dict, alias)
        options = self.settings_dict.get("OPTIONS", {})
        self.query_timeout = float(options.get("query_timeout", DEFAULT_QUERY_TIMEOUT)) or None
        self.health_check_idle_seconds = float(
            options.get("health_check_idle_seconds", DEFAULT_HEALTH_CHECK_IDLE_SECONDS)
        )
        connect_timeout = max(2.0, float(options.get("connect_timeout") or 0))  # libpq's minimum is 2 s
        self.breaker = breaker(
            f"database {alias!r}".replace("'", ""),
            float(options.get("breaker_seconds", DEFAULT_BREAKER_SECONDS)),
            probe_seconds=max(self.query_timeout or 0.0, connect_timeout),
        )

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        for name in _OWN_OPTIONS:
            params.pop(name, None)
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        if not self.breaker.allow():
            raise DatabaseTimeout("The database breaker is open: not connecting to PostgreSQL for a while.")
        try:
            connection = super().get_new_connection(conn_params)
        except pg_errors.ConnectionTimeout:
            self.breaker.trip("connect timeout")
            raise
        self.breaker.succeeded()
        if isinstance(connection, BoundedConnection):  # not one from a psycopg pool
            connection.ciba_query_timeout = self.query_timeout
            connection.ciba_breaker = self.breaker
        return connection

    def close_if_health_check_failed(self) -> None:
        """Django's health check, skipped for a connection the server answered within
        ``health_check_idle_seconds`` with nothing arrived since (the module's docstring)."""
        connection = self.connection
        if (
            connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and isinstance(connection, BoundedConnection)
            and connection.ciba_quiet_since(self.health_check_idle_seconds)
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
