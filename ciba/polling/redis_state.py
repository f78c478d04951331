"""Pending polls answered by one Lua script in a Redis every web process shares.

With ``POLL_STATE_CLASS = "ciba.polling.RedisPollState"`` a pending poll of a
``client_secret_basic``/``client_secret_post`` client is answered in Redis without touching
the database (``ciba.oauth.prescreen``).

Why it is safe (docs/deployment.md has the long version):

* The Redis record only ever says "pending" or "finished". It is written once the request
  is committed (by the device notification run, or by the first poll the database path
  answers; never overwriting) and turned into a "finished" tombstone *inside*
  the transaction that approves or denies the request, before the commit. If Redis cannot
  be written the decision fails and rolls back, so Redis can lag behind the database only in
  the safe direction: it may send a poll to the database, never answer "pending" for a
  request that was decided. A request past ``expires_at`` is never answered from Redis.
* Redis answers only a client whose credentials the database path verified for a pending
  poll within ``CLIENT_SECRET_CACHE_SECONDS``, stored as a fingerprint (an HMAC keyed with
  ``SECRET_KEY``, never the secret). Saving or deleting the client forgets them at once.
* Redis answers only a poll that needs no sender constraint, so that no pending answer comes
  before a check the database path makes first (RFC 9449, RFC 8705): the credentials are
  remembered only for a client whose tokens need no DPoP key or certificate, and a request
  made with a DPoP key (``dpop_jkt``) is marked in its record (``d``) and never answered
  here. A poll that carries a DPoP proof is left to the database path by the callers
  (``prescreen``), which check the proof before anything else.
* Anything else (approved, unknown, wrong client, JWT client authentication, Redis down)
  goes to the database path, which gives every answer CIBA §11 names.

Both ``interval`` growth (``slow_down``) and the last poll time live in the Redis record
while it is the one answering; the database columns then show the last poll the database
answered.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import select
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis

from ..conf import ciba_settings
from ..outages import no_retry
from .database import DatabasePollState
from .store import PENDING, SLOW_DOWN, PollStateUnavailable, made_with_dpop_key, needs_no_proof

logger = logging.getLogger("ciba.poll_state")

ANSWERS = {1: PENDING, 2: SLOW_DOWN}

#: How long a record outlives its request's expiry, so a late poll still finds the tombstone.
GRACE_MS = 60_000
#: How long a client's version stamp is kept (a missing stamp reads as one more version).
VERSION_TTL = 7 * 24 * 3600


# Both poll scripts end here: 1 (authorization_pending) or 2 (slow_down, interval grows).
_COUNT = """
local function count(key, interval, last, now, increment)
  if now - last < interval * 1000 then
    redis.call('HSET', key, 'l', now, 'i', interval + increment)
    return 2
  end
  redis.call('HSET', key, 'l', now)
  return 1
end
"""

# KEYS: client credentials set, poll record. ARGV: fingerprint, client_id, now ms, increment s.
_POLL = (
    _COUNT
    + """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return false end
local r = redis.call('HMGET', KEYS[2], 's', 'c', 'i', 'l', 'e', 'd')
if r[1] ~= 'p' or r[2] ~= ARGV[2] or r[6] == '1' then return false end
local now = tonumber(ARGV[3])
if now >= tonumber(r[5]) then return false end
return count(KEYS[2], tonumber(r[3]), tonumber(r[4]), now, tonumber(ARGV[4]))
"""
)

# KEYS: poll records. ARGV: for each key, five values: client_id, interval s, expires ms,
# last poll ms, DPoP key required. Creates each record that does not exist (a tombstone, or a
# record the database path made first, is never overwritten); returns how many it created.
_TRACK = """
local created = 0
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then
    local a = (i - 1) * 5
    redis.call('HSET', key, 's', 'p', 'c', ARGV[a + 1], 'i', ARGV[a + 2], 'l', ARGV[a + 4],
      'e', ARGV[a + 3], 'd', ARGV[a + 5])
    redis.call('PEXPIREAT', key, tonumber(ARGV[a + 3]) + GRACE_MS)
    created = created + 1
  end
end
return created
""".replace("GRACE_MS", str(GRACE_MS))
#: Records one ``_TRACK`` call creates at most (a batch is ``NOTIFY_BATCH_SIZE``, 100 by default):
#: a script runs alone in Redis, so no call may hold it long.
TRACK_CHUNK = 500

# KEYS: client credentials set, poll record. ARGV: fingerprint ('' = none), set ttl s,
# client_id, interval s, expires ms, now ms, increment s, DPoP key required ('1'/'0'). The
# database path's bookkeeping of a pending poll: remembers the verified credentials, creates
# the record if it never was (a tombstone is never overwritten), marks it when the request
# was made with a DPoP key, and answers as _POLL does.
_RECORD_POLL = (
    _COUNT
    + """
if ARGV[1] ~= '' then
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
local r = redis.call('HMGET', KEYS[2], 's', 'i', 'l')
if r[1] == 'f' then return false end
if ARGV[8] == '1' then redis.call('HSET', KEYS[2], 'd', '1') end
if not r[1] then
  redis.call('HSET', KEYS[2], 's', 'p', 'c', ARGV[3], 'i', ARGV[4], 'l', '0', 'e', ARGV[5], 'd', ARGV[8])
  redis.call('PEXPIREAT', KEYS[2], tonumber(ARGV[5]) + GRACE_MS)
  r = {'p', ARGV[4], '0'}
end
return count(KEYS[2], tonumber(r[2]), tonumber(r[3]), tonumber(ARGV[6]), tonumber(ARGV[7]))
""".replace("GRACE_MS", str(GRACE_MS))
)


class RedisPollState(DatabasePollState):
    """Pending polls answered by one Lua script in ``POLL_STATE_REDIS_URL``.

    Needs a Redis that every web process shares (the records are the truth for
    ``slow_down`` while they answer) and Redis ≥ 6.2.

    A circuit breaker keeps a hung Redis from slowing every poll: the first call that fails
    or times out (``POLL_STATE_REDIS_TIMEOUT``, once: redis-py's retries, which would wait
    it again each time, are off) opens it for ``POLL_STATE_BREAKER_SECONDS``,
    during which this process asks the database at once (polls stay right, only slower) and
    decisions are refused at once (503: they must reach Redis to commit). Then one call tries
    Redis again.

    ``poll``, the call every pending poll makes, runs on a connection of the calling thread's
    own rather than through redis-py's pool: lending and returning a pooled connection (a
    lock, a readiness check of three system calls, redis-py's per-command bookkeeping) cost
    more CPU than the round trip itself, and a web process's CPU is what bounds pending polls
    per second. The same timeout, breaker and health check apply; a process so holds one more
    connection per thread that polls.
    """

    shared = True

    def __init__(self, url: str | None = None) -> None:
        self._errors = (redis.RedisError, OSError)
        timeout = ciba_settings.POLL_STATE_REDIS_TIMEOUT
        self.redis = redis.Redis.from_url(
            url or ciba_settings.POLL_STATE_REDIS_URL,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            health_check_interval=30,
            retry=no_retry(),
        )
        self._poll = self.redis.register_script(_POLL)
        self._track = self.redis.register_script(_TRACK)
        self._record_poll = self.redis.register_script(_RECORD_POLL)
        self._open_until = 0.0
        self._own = threading.local()  # each thread's connection for ``poll``

    @property
    def available(self) -> bool:
        """False while the breaker is open: do not wait for Redis, use the database."""
        return time.monotonic() >= self._open_until

    def _trip(self, exc: Exception, what: str) -> None:
        if self.available:
            logger.warning(
                "Poll state unreachable (%s: %s); the database answers for a while", what, type(exc).__name__
            )
        self._open_until = time.monotonic() + ciba_settings.POLL_STATE_BREAKER_SECONDS

    def track(self, ar: Any) -> None:
        self.track_many([ar])

    def track_many(self, ars: Iterable[Any]) -> None:
        """Record the requests of a batch with one script call (one round trip) per
        ``TRACK_CHUNK``. Never raises: a request left unrecorded (Redis down, the breaker
        open) is recorded by the first poll the database path answers, and its notification
        goes out all the same."""
        ars = list(ars)
        for start in range(0, len(ars), TRACK_CHUNK):
            if not self.available:
                return  # the database path records them on the first poll it answers
            chunk = ars[start : start + TRACK_CHUNK]
            args: list[Any] = []
            for ar in chunk:
                args += [ar.client.client_id, ar.interval, _ms(ar.expires_at), 0, _dpop_flag(ar)]
            try:
                self._track(keys=[record_key(ar.auth_req_id) for ar in chunk], args=args)
            except self._errors as exc:  # the database answers these requests' polls instead
                self._trip(exc, "track")

    def finish(self, ar: Any) -> None:
        if not self.available:
            raise PollStateUnavailable("Poll state unreachable (circuit open)")
        key = record_key(ar.auth_req_id)
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(key, "s", "f")
            pipe.pexpireat(key, _ms(ar.expires_at) + GRACE_MS)
            pipe.execute()
        except self._errors as exc:
            self._trip(exc, "finish")
            raise PollStateUnavailable(f"Poll state unreachable: {type(exc).__name__}") from exc

    def record_poll(self, ar: Any, fingerprint: str | None, now: datetime) -> str:
        """Counted in Redis (which then answers this request's next polls); in the database
        when Redis does not answer. The credentials are remembered only when a poll without
        any proof of possession passes every check the database path makes (``needs_no_proof``)."""
        ttl = ciba_settings.CLIENT_SECRET_CACHE_SECONDS
        verified = fingerprint if fingerprint and ttl and needs_no_proof(ar.client) else ""
        keys = [client_key(ar.client.client_id), record_key(ar.auth_req_id)]
        args = [verified, ttl or 1, ar.client.client_id, ar.interval, _ms(ar.expires_at)]
        args += [_ms(now), ciba_settings.SLOW_DOWN_INCREMENT, _dpop_flag(ar)]
        answer = self._answer(self._record_poll, keys, args)
        return answer or super().record_poll(ar, fingerprint, now)

    def poll(self, client_id: str, fingerprint: str, auth_req_id: str, now: float) -> str | None:
        if not self.available:
            return None
        keys = [client_key(client_id), record_key(auth_req_id)]
        args = [fingerprint, client_id, int(now * 1000), ciba_settings.SLOW_DOWN_INCREMENT]
        try:
            return ANSWERS.get(self._run_own(self._poll, keys, args))
        except self._errors as exc:
            self._trip(exc, "poll")
            return None

    def _run_own(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """``script`` on this thread's own connection (``EVALSHA``; loaded again through the
        pool if Redis lost its scripts, a restart). redis-py drops the connection on any error
        or timeout while sending or reading, so a reply is never left unread on it."""
        connection = self._own_connection()
        try:
            connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
            return connection.read_response()
        except redis.exceptions.NoScriptError:  # the reply was read: the connection is clean
            return script(keys=keys, args=args)

    def _own_connection(self) -> Any:
        """This thread's connection, made with the pool's settings (URL, timeouts, no retries,
        health check); a new one in a forked child. One that has something to read before it
        was asked anything is dropped and made again, as the pool does before lending one:
        the server closed it (a restart, ``CLIENT KILL``, its idle timeout), which would
        otherwise fail the poll and open the breaker while Redis is fine."""
        connection = getattr(self._own, "connection", None)
        if connection is None or connection.pid != os.getpid():
            pool = self.redis.connection_pool
            connection = self._own.connection = pool.connection_class(**pool.connection_kwargs)
        sock = getattr(connection, "_sock", None)
        if sock is not None:
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            if poller.poll(0):
                connection.disconnect()  # connected again by the next send
        return connection

    def _answer(self, script: Any, keys: list[str], args: list[Any]) -> str | None:
        """Run a poll script; ``None`` (the database decides) when Redis does not answer."""
        if not self.available:
            return None
        try:
            return ANSWERS.get(script(keys=keys, args=args))
        except self._errors as exc:
            self._trip(exc, "poll")
            return None

    def forget_client(self, client_id: str) -> None:
        if not self.available:
            logger.error("Could not forget a changed CIBA client: the poll state is unreachable")
            return
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(client_key(client_id))
            # A random stamp, not a counter: it still changes after Redis lost its data.
            pipe.set(version_key(client_id), secrets.token_bytes(16), ex=VERSION_TTL)
            pipe.execute()
        except self._errors as exc:
            # Verified credentials then live on for at most CLIENT_SECRET_CACHE_SECONDS, and
            # cached client rows for at most ciba.client_auth.clients.MAX_AGE.
            logger.error("Could not forget a changed CIBA client: %s", type(exc).__name__)

    def client_version(self, client_id: str) -> bytes | None:
        if not self.available:
            return None
        try:
            return self.redis.get(version_key(client_id)) or b"-"
        except self._errors as exc:
            self._trip(exc, "client version")
            return None


def record_key(auth_req_id: str) -> str:
    # The auth_req_id is a bearer credential: keep it out of Redis key listings.
    return "ciba:poll:" + hashlib.sha256(auth_req_id.encode()).hexdigest()


def client_key(client_id: str) -> str:
    return "ciba:poll-client:" + hashlib.sha256(client_id.encode()).hexdigest()


def version_key(client_id: str) -> str:
    return "ciba:client-version:" + hashlib.sha256(client_id.encode()).hexdigest()


def _dpop_flag(ar: Any) -> str:
    return "1" if made_with_dpop_key(ar) else "0"


def _ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)
