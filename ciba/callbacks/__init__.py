"""Callbacks: the ping and push messages a client receives at its notification endpoint
(CIBA §10.2, §10.3, §12). "Callback" is this package's one word for them; the spec's
"client notification" and the outbox's "delivery" name the same thing.

* ``outbox``: the durable outbox — claim a row, build its payload once, send, record, retry.
* ``send``: one HTTP POST to the client's registered endpoint, classified as an ``Outcome``.
* ``sealing``: push token payloads encrypted at rest until delivered.
* ``lanes``: the slow lane, where an endpoint that keeps timing out gets one slot of its own.
"""

from .outbox import deliver, due, payload, retry_delay, sweep
from .send import post

__all__ = ["deliver", "due", "payload", "post", "retry_delay", "sweep"]
