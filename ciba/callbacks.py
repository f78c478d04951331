"""Sending ping and push callbacks to a client's notification endpoint (CIBA §10.2, §10.3, §12).

Only the client's registered endpoint is ever called, through ``ciba.http``'s hardened
session: https only and no private addresses unless the settings allow them, the address
pinned after one resolution, redirects never followed ("The OP MUST NOT follow redirects"),
bounded timeouts and a bounded read of the response, whose body is otherwise ignored.
Neither the notification token nor any token appears in a log line or an error message.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any

import requests
from django.core.exceptions import ValidationError
from requests_hardened.ip_filter import InvalidIPAddress

from .http import session
from .urls_policy import validate_outbound_url

#: Read at most this much of a callback response: the body is ignored (§10.2), but reading a
#: little lets the connection be reused, and the bound keeps a hostile endpoint from streaming.
MAX_RESPONSE_BYTES = 16 * 1024


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry: bool
    status: int | None
    error: str
    retry_after: float | None = None


def post(url: str, notification_token: str, body: dict[str, Any]) -> Outcome:
    """POST ``body`` as JSON with the client's bearer token and classify the result.

    2xx is delivered (204 is what §10.2 asks for; 200 is accepted). 3xx is a failure, never
    followed. 408, 429 and 5xx, connection errors and timeouts are worth retrying; every
    other 4xx is final (the conformance suite fails an OP that calls again after a 401).
    """
    try:
        validate_outbound_url(url)
    except ValidationError as exc:
        return Outcome(False, False, None, f"endpoint refused: {' '.join(exc.messages)}")
    headers = {"Authorization": f"Bearer {notification_token}", "Content-Type": "application/json"}
    try:
        with session() as http, http.post(url, json=body, headers=headers, stream=True) as response:
            response.raw.read(MAX_RESPONSE_BYTES, decode_content=False)
            status = response.status_code
            retry_after = _retry_after(response.headers.get("Retry-After"))
    except InvalidIPAddress:
        return Outcome(False, False, None, "endpoint resolves to a private or loopback address")
    except requests.Timeout:
        return Outcome(False, True, None, "timeout")
    except requests.ConnectionError:
        return Outcome(False, True, None, "connection error")
    except requests.RequestException as exc:
        return Outcome(False, True, None, type(exc).__name__)
    if 200 <= status < 300:
        return Outcome(True, False, status, "")
    if 300 <= status < 400:
        return Outcome(False, False, status, f"HTTP {status}: redirects are not followed (CIBA §10.2)")
    transient = status in (408, 429) or status >= 500
    return Outcome(False, transient, status, f"HTTP {status}", retry_after if transient else None)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a delay, or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
