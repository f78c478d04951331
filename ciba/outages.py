"""Bounded dependencies: a breaker per dependency, and telling an outage from a bug.

A hung PostgreSQL or Redis must cost a request a bounded time, never a worker. Socket and
query timeouts bound one call (``example_project/env.py`` sets them; docs/deployment.md lists
them); a ``Breaker`` bounds the calls after it: once a call to a dependency fails, the same
request stops asking it at once, and so does the whole process for ``seconds`` (then one call
tries again). Two dependencies have one here:

* Django's cache, through ``BoundedRedisCache`` (the ``BACKEND`` a site puts in ``CACHES``):
  every operation raises ``CacheUnavailable`` while its breaker is open, and a failed one
  raises it too (callers catch one exception type, whatever the client library).
* PostgreSQL, through the database engine ``ciba.db`` (``DatabaseUnavailable``).

``is_outage`` tells the views which exceptions mean "a dependency is down" (answered
``503 temporarily_unavailable`` with ``Retry-After``) rather than a bug (a 500 worth a report).

Breakers are per process (shared by its threads): processes do not share what they learned,
each pays one bounded call per ``seconds`` while a dependency is down. "Per request" is a
context variable, set by Django's ``request_started`` and ``request_finished`` signals (and by
``ciba.fast_lane`` around the requests it answers); outside a request (a Celery task, a
management command) only the process's breaker applies.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from django.core.cache.backends.redis import RedisCache
from django.core.signals import request_finished, request_started
from django.db import utils as db_utils

logger = logging.getLogger("ciba.outages")

#: Seconds a process stops asking a dependency after a failed call (a backend's OPTIONS may
#: say otherwise: ``breaker_seconds``).
DEFAULT_BREAKER_SECONDS = 2.0
#: What a Redis cache connection waits by default: to connect, and for each answer.
DEFAULT_CACHE_CONNECT_TIMEOUT = 0.5
DEFAULT_CACHE_SOCKET_TIMEOUT = 0.5


class DependencyUnavailable(Exception):
    """A dependency did not answer, or its breaker is open: nothing was decided."""


class CacheUnavailable(DependencyUnavailable):
    """Django's cache failed or its breaker is open."""


class DatabaseUnavailable(DependencyUnavailable, db_utils.OperationalError):
    """The database did not answer in time, or its breaker is open (a Django
    ``OperationalError``, so code that handles those handles this)."""


# Which breakers the current request has seen fail; None outside a request (a Celery task, a
# management command), where only the process's breakers apply.
_failed_here: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "ciba_outages_failed", default=None
)


def new_request(**kwargs: Any) -> None:
    """A request starts: it has seen no dependency fail yet."""
    _failed_here.set(frozenset())


def end_request(**kwargs: Any) -> None:
    """The request is over: what it saw fail no longer matters to this thread."""
    _failed_here.set(None)


def _failed_in_request(name: str) -> bool:
    failed = _failed_here.get()
    return failed is not None and name in failed


request_started.connect(new_request, dispatch_uid="ciba.outages.new_request")
request_finished.connect(end_request, dispatch_uid="ciba.outages.end_request")


class Breaker:
    """Open after a failure, for the rest of the request and ``seconds`` in the process.

    When the ``seconds`` have passed, one call (the probe) is let through while every other
    call of the process still fails fast, for as long as the probe may wait (``probe_seconds``,
    the dependency's own timeout) or another ``seconds``; the probe's success closes the
    breaker (``succeeded``), its failure opens it again (``trip``). So while a dependency stays
    down, a process spends one bounded wait per ``seconds`` on it, on one thread at a time.
    """

    def __init__(
        self, name: str, seconds: float = DEFAULT_BREAKER_SECONDS, probe_seconds: float = 0.0
    ) -> None:
        self.name = name
        self.seconds = float(seconds)
        self.probe_seconds = max(float(seconds), float(probe_seconds))
        self._open_until = 0.0
        self._tripped = False
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Whether this call may go to the dependency (a probe, when the breaker was open)."""
        if _failed_in_request(self.name):
            return False
        if not self._tripped:
            return True
        now = time.monotonic()
        with self._lock:
            if now < self._open_until:
                return False
            self._open_until = now + self.probe_seconds  # this call probes; the others wait for it
            return True

    @property
    def is_open(self) -> bool:
        return _failed_in_request(self.name) or (self._tripped and time.monotonic() < self._open_until)

    def succeeded(self) -> None:
        """A call went through: the dependency answers again."""
        if self._tripped:
            with self._lock:
                if self._tripped:
                    self._tripped = False
                    self._open_until = 0.0
                    logger.warning("%s answers again", self.name)

    def trip(self, reason: str, seconds: float | None = None) -> None:
        """A call failed: open the breaker for ``seconds`` (default: the breaker's own), for
        dependencies whose pause is a setting that may change while the process runs."""
        seconds = self.seconds if seconds is None else float(seconds)
        failed = _failed_here.get()
        if failed is not None:
            _failed_here.set(failed | {self.name})
        with self._lock:
            was_closed = not self._tripped
            self._tripped = True
            self._open_until = time.monotonic() + seconds
        if was_closed:
            logger.warning(
                "%s unavailable (%s): not asked again for %.1f s in this process",
                self.name,
                reason,
                seconds,
            )

    def reset(self) -> None:
        """Close it (tests; a site's health check that saw the dependency come back)."""
        with self._lock:
            self._tripped = False
            self._open_until = 0.0
        failed = _failed_here.get()
        if failed is not None:
            _failed_here.set(failed - {self.name})


_breakers: dict[tuple[str, float, float], Breaker] = {}
_breakers_lock = threading.Lock()


def breaker(name: str, seconds: float = DEFAULT_BREAKER_SECONDS, probe_seconds: float = 0.0) -> Breaker:
    """The process's one breaker of a dependency. Django makes a cache backend and a database
    connection per thread: the breaker they share is what keeps every thread but one from
    waiting on a dependency that is down."""
    key = (name, float(seconds), float(probe_seconds))
    with _breakers_lock:
        if key not in _breakers:
            _breakers[key] = Breaker(name, seconds, probe_seconds)
        return _breakers[key]


# --- Django's cache ------------------------------------------------------------------------


def _redis_errors() -> tuple[type[BaseException], ...]:
    try:
        import redis
    except ImportError:  # pragma: no cover - the Redis cache needs it installed
        return (OSError,)
    return (redis.RedisError, OSError)


class _GuardedClient:
    """Django's ``RedisCacheClient``, each operation through the breaker."""

    def __init__(self, client: Any, breaker: Breaker) -> None:
        self._client = client
        self._breaker = breaker
        self._errors = _redis_errors()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if not self._breaker.allow():
                raise CacheUnavailable("The cache's breaker is open.")
            try:
                result = attribute(*args, **kwargs)
            except self._errors as exc:
                self._breaker.trip(f"{name}: {type(exc).__name__}")
                raise CacheUnavailable(f"The cache did not answer ({type(exc).__name__}).") from exc
            self._breaker.succeeded()
            return result

        return call


class BoundedRedisCache(RedisCache):
    """Django's Redis cache, with bounded calls and a breaker.

    ``OPTIONS``: ``socket_connect_timeout`` and ``socket_timeout`` (seconds, default 0.5
    each), ``retries`` (redis-py retries of a failed command, default 0: each retry would
    wait the timeout again), ``breaker_seconds`` (default 2); anything else goes to
    redis-py's connection pool as with Django's ``RedisCache``. So a hung Redis costs a
    request at most ``(retries + 1) × socket_timeout`` once (plus the connect timeout), and
    then nothing while the breaker is open: every operation raises ``CacheUnavailable``.
    """

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        options = dict(self._options)
        breaker_seconds = options.pop("breaker_seconds", DEFAULT_BREAKER_SECONDS)
        retries = int(options.pop("retries", 0))
        options.setdefault("socket_connect_timeout", DEFAULT_CACHE_CONNECT_TIMEOUT)
        options.setdefault("socket_timeout", DEFAULT_CACHE_SOCKET_TIMEOUT)
        longest = (retries + 1) * (
            float(options["socket_connect_timeout"] or 0) + float(options["socket_timeout"] or 0)
        )
        self.breaker = breaker(
            f"cache {_without_credentials(self._servers[0] if self._servers else '')}",
            breaker_seconds,
            probe_seconds=longest,
        )
        if "retry" not in options:
            options["retry"] = no_retry(retries)
        self._options = options

    @property
    def _cache(self) -> Any:  # type: ignore[override]
        client = self.__dict__.get("_guarded")
        if client is None:
            client = self.__dict__["_guarded"] = _GuardedClient(
                self._class(self._servers, **self._options), self.breaker
            )
        return client


def _without_credentials(url: str) -> str:
    """The Redis URL for logs: a password in it (``redis://:secret@host``) stays out."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def no_retry(retries: int = 0) -> Any:
    """A redis-py ``Retry`` of ``retries`` immediate retries (redis-py's default retries three
    times with backoff, which multiplies every timeout)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), retries)


# --- telling an outage from a bug ---------------------------------------------------------


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means a dependency is down or hung (a retry may succeed), not a bug.

    Database: Django's ``OperationalError`` (connection refused, timed out, closed, a
    statement or lock timeout) and ``InterfaceError`` (a connection already closed). Cache
    and Redis: ``CacheUnavailable`` and redis-py's connection and timeout errors (a site on
    Django's own ``RedisCache``). Anything else, including ``DatabaseError`` for a bad query,
    is not an outage.
    """
    if isinstance(exc, (DependencyUnavailable, db_utils.OperationalError, db_utils.InterfaceError)):
        return True
    try:
        import redis
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError))
