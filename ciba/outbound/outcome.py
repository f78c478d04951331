"""What one outbound attempt achieved, and when to try again: shared by client callbacks and
device notifications, so both classify answers and back off the same way."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass


def is_transient(status: int) -> bool:
    """408, 429 and 5xx are worth retrying; any other non-2xx status is final."""
    return status in (408, 429) or status >= 500


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt: ``delivered``, or a failure that is worth a ``retry`` or not.

    ``status`` is the HTTP status when there was one; ``error`` is safe to log and store (it
    never holds a token); ``retry_after`` is the peer's own ``Retry-After``, in seconds;
    ``timed_out`` says the peer did not answer in time (it held the caller for a timeout:
    what moves a callback endpoint to the slow lane).
    """

    delivered: bool
    retry: bool = False
    status: int | None = None
    error: str = ""
    retry_after: float | None = None
    timed_out: bool = False

    @classmethod
    def ok(cls, status: int | None = None) -> Outcome:
        return cls(True, False, status)

    @classmethod
    def failed(cls, error: str, *, retry: bool, status: int | None = None) -> Outcome:
        return cls(False, retry, status, error)

    @classmethod
    def timeout(cls, error: str = "timeout") -> Outcome:
        """No complete answer in time (a connect, read or total timeout): worth a retry."""
        return cls(False, True, None, error, None, True)

    @classmethod
    def of_status(cls, what: str, status: int, retry_after: float | None = None) -> Outcome:
        """2xx is delivered; 3xx is final (redirects are never followed); else ``is_transient``."""
        if 200 <= status < 300:
            return cls.ok(status)
        if 300 <= status < 400:
            return cls.failed(f"{what}HTTP {status}: redirects are not followed", retry=False, status=status)
        transient = is_transient(status)
        return cls(False, transient, status, f"{what}HTTP {status}", retry_after if transient else None)

    @classmethod
    def combine(cls, outcomes: Sequence[Outcome]) -> Outcome:
        """One outcome for several targets: delivered if any was reached (or there was none to
        reach); otherwise failed, worth a retry if any failure was."""
        failures = [o for o in outcomes if not o.delivered]
        if not outcomes or len(failures) < len(outcomes):
            return cls.ok()
        return cls.failed("; ".join(f.error for f in failures), retry=any(f.retry for f in failures))


def backoff(attempt: int, *, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempt + 1``: exponential with jitter, capped; a peer's
    ``Retry-After`` is honoured within the cap."""
    delay = base * 2 ** max(0, attempt - 1) * random.uniform(0.5, 1.0)
    return min(cap, max(delay, retry_after or 0.0))


def parse_retry_after(value: str | None) -> float | None:
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
