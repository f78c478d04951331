"""kombu's Redis transport, made to survive a broker outage: ``CELERY_BROKER_TRANSPORT =
"ciba.backends.redis_broker.Transport"`` with a ``redis://`` or ``rediss://`` broker URL
(``ciba.dispatch.broker_settings`` sets it, with the timeouts below).

What it changes, and why (docs/operations.md, issue 21 finding 4):

* **Giving messages back never kills the worker.** When the connection to Redis breaks, the
  worker closes its channel, and kombu gives the messages the worker holds unacknowledged
  (late-acknowledged tasks, countdowns such as callback retries) back to their queues. With
  Redis unreachable that restore fails, and with Celery 5.7 and kombu 5.7 on the prefork pool
  it fails with an ``AttributeError`` (the channel rebuilds its connection pool after the
  transport was detached), which no ``ignore_errors`` catches: "Unrecoverable error", and the
  worker that also ran the sweeps was gone. Here a failed restore is logged and dropped:
  kombu keeps every delivered message in Redis' ``unacked`` hash until it is acknowledged, so
  the messages come back after ``visibility_timeout`` (any worker's ``restore_visible``), and
  the work they stand for is an outbox row the sweep hands out long before that.
* **A failed acknowledgement does not stop consumption.** With Redis hung (not down) the
  consuming connection sees no error, only the acknowledgements time out; kombu kept each
  such message counted against the prefetch limit, and the worker stopped fetching messages
  for good, alive and idle. Here the message is forgotten locally (it stays in the
  ``unacked`` hash, as above).
* **A message held across a reconnection does not kill the worker either.** A task the worker
  held when the connection broke (a callback retry's countdown) and ran after the reconnection
  is acknowledged on its old, closed channel: kombu failed there with an ``AttributeError`` and
  the worker stopped ("Unrecoverable error"). Such a message is now forgotten locally, as
  above (``QoS._channel_closed``).
* **No hidden retries behind the timeouts.** Every Redis connection has a socket and connect
  timeout (transport options, defaults here) and no redis-py retry on top of them: Celery's
  own retry policies decide whether to try again, so one publish from a web request costs at
  most one timeout, not four.

Everything else is kombu's transport unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual as kombu_virtual
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger("ciba.dispatch")

#: Defaults of the transport options ``ciba.dispatch.broker_settings`` does not set; a site's
#: ``CELERY_BROKER_TRANSPORT_OPTIONS`` overrides any of them.
SOCKET_TIMEOUT = 0.5
SOCKET_CONNECT_TIMEOUT = 0.5
HEALTH_CHECK_INTERVAL = 10


class QoS(kombu_redis.QoS):
    def ack(self, delivery_tag: Any) -> None:
        """Acknowledge; if Redis cannot be reached, forget the message here all the same."""
        if self._channel_closed(delivery_tag):
            return
        try:
            super().ack(delivery_tag)
        except self.channel.connection_errors:
            self._forget(delivery_tag)
            raise

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if self._channel_closed(delivery_tag):
            return
        try:
            super().reject(delivery_tag, requeue=requeue)
        except self.channel.connection_errors:
            self._forget(delivery_tag)
            raise

    def _channel_closed(self, delivery_tag: Any) -> bool:
        """Whether the message came on a channel closed since (the connection broke and the
        worker reconnected on a new one): a task it had held (a countdown's, say) finished
        after the reconnection. kombu would rebuild the closed channel's connection pool to
        acknowledge it and fail with an ``AttributeError`` (the channel has no connection any
        more), which nothing catches: "Unrecoverable error", and the worker was gone. The
        message is forgotten here instead; it stays in Redis' ``unacked`` hash (or was given
        back when the channel closed) and comes back after ``visibility_timeout`` to find its
        work done (an outbox row delivered or leased)."""
        if not getattr(self.channel, "closed", False):
            return False
        self._forget(delivery_tag)
        logger.warning(
            "A message received before the broker connection was re-established finished "
            "after it: not acknowledged (it comes back after the visibility timeout, its work done)."
        )
        return True

    def _forget(self, delivery_tag: Any) -> None:
        """A message whose acknowledgement failed stays in Redis' ``unacked`` hash (it comes back
        after ``visibility_timeout``, and finds its work done), but it must not stay counted
        here: kombu keeps it among the delivered messages, which count against the prefetch
        limit, and a worker whose acknowledgements failed during a hung-broker spell (no
        connection error on its consuming connection, so no restart) stopped asking for
        messages for ever once they filled it."""
        kombu_virtual.QoS.ack(self, delivery_tag)

    def restore_unacked(self, client: Any = None) -> Any:
        """Give the held messages back; if Redis cannot be reached, leave them where they are
        (its ``unacked`` hash) instead of taking the worker down."""
        try:
            return super().restore_unacked(client)
        except Exception as exc:  # noqa: BLE001 - whatever the close path raises, the worker lives
            held = len(self._delivered)
            self._delivered.clear()
            logger.warning(
                "Could not give %d unacknowledged message(s) back to the broker (%s): they come "
                "back after the visibility timeout, and the outbox sweep sends what is due.",
                held,
                type(exc).__name__,
            )
            return []


class Channel(kombu_redis.Channel):
    QoS = QoS
    socket_timeout = SOCKET_TIMEOUT
    socket_connect_timeout = SOCKET_CONNECT_TIMEOUT
    socket_keepalive = True
    health_check_interval = HEALTH_CHECK_INTERVAL

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        params = super()._connparams(asynchronous=asynchronous)
        params["retry"] = Retry(NoBackoff(), 0)
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
