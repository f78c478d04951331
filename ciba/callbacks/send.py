"""Sending ping and push callbacks to a client's notification endpoint (CIBA §10.2, §10.3, §12).

Only the client's registered endpoint is ever called, through ``ciba.outbound``'s hardened
session: https only and no private addresses unless the settings allow them, the address
pinned after one resolution, redirects never followed ("The OP MUST NOT follow redirects"),
bounded timeouts and a bounded read of the response, whose body is otherwise ignored.
Neither the notification token nor any token appears in a log line or an error message.
Each sending thread keeps its connection to an endpoint for its next callback there
(``kept_session``, ``CALLBACK_KEEP_ALIVE``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import requests
from django.core.exceptions import ValidationError
from requests_hardened.ip_filter import InvalidIPAddress

from ..outbound import Outcome, kept_session, parse_retry_after, validate_outbound_url

#: Read at most this much of a callback response: the body is ignored (§10.2), but reading a
#: little lets the connection be reused, and the bound keeps a hostile endpoint from streaming.
MAX_RESPONSE_BYTES = 16 * 1024

#: The wall-clock limit of the ``post`` calls made here (``deadline``); None: the setting's.
_deadline: ContextVar[float | None] = ContextVar("ciba_callback_deadline", default=None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """``post`` calls made inside give up after ``seconds`` (connect to last byte) instead of
    ``CALLBACK_TOTAL_TIMEOUT``: the shorter limit of a callback sent right after its commit
    (``ciba.callbacks.inline``). ``None``: the setting's."""
    token = _deadline.set(seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def post(url: str, notification_token: str, body: dict[str, Any]) -> Outcome:
    """POST ``body`` as JSON with the client's bearer token and classify the result.

    2xx is delivered (204 is what §10.2 asks for; 200 is accepted). 3xx is a failure, never
    followed. 408, 429 and 5xx, connection errors and timeouts are worth retrying; every
    other 4xx is final (the conformance suite fails an OP that calls again after a 401).
    """
    try:
        validate_outbound_url(url)
    except ValidationError as exc:
        return Outcome.failed(f"endpoint refused: {' '.join(exc.messages)}", retry=False)
    headers = {"Authorization": f"Bearer {notification_token}", "Content-Type": "application/json"}
    try:
        with (
            kept_session(total_timeout=_deadline.get()) as http,
            http.post(url, json=body, headers=headers, stream=True) as response,
        ):
            response.raw.read(MAX_RESPONSE_BYTES, decode_content=False)
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
    except InvalidIPAddress:
        return Outcome.failed("endpoint resolves to a private or loopback address", retry=False)
    except requests.Timeout:
        return Outcome.timeout()
    except requests.ConnectionError:
        return Outcome.failed("connection error", retry=True)
    except requests.RequestException as exc:
        return Outcome.failed(type(exc).__name__, retry=True)
    return Outcome.of_status("", status, retry_after)
