"""The poll-state interface: where pending polls are counted and answered.

Every pending request is polled every few seconds, and almost every answer is
``authorization_pending`` or ``slow_down``. A store keeps that bookkeeping; the token
endpoint asks it. Credentials reach the store only as a *fingerprint* (an HMAC the client
authentication code computes), so this package never needs to know how clients authenticate.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..profile import sender_constrained_tokens_required

PENDING = "authorization_pending"
SLOW_DOWN = "slow_down"


def needs_no_proof(client: Any) -> bool:
    """Whether a poll of ``client`` with neither a DPoP proof nor a certificate passes the token
    endpoint's binding rules (``ciba.sender.bindings``): its tokens need neither, and the
    profile does not require sender-constrained tokens. A shared store remembers verified
    credentials (and so answers without the full path) only for such a client: no pending
    answer may come before a check the full path makes first."""
    return not (
        getattr(client, "dpop_bound_access_tokens", False)
        or getattr(client, "tls_client_certificate_bound_access_tokens", False)
        or sender_constrained_tokens_required()
    )


def made_with_dpop_key(ar: Any) -> bool:
    """Whether ``ar`` was made with a DPoP key (RFC 9449 §10): only a proof of that key
    collects it, or even hears that it is pending, which the full path checks."""
    return bool(getattr(ar, "dpop_jkt", ""))


class PollStateUnavailable(Exception):
    """The shared poll state could not be updated; the decision it guards must not commit.

    Raised only to ``ciba.services``, which turns it into ``ciba.errors.TemporarilyUnavailable``.
    """


class PollState:
    """The store interface, doing nothing: every method is a safe no-op or "ask the database".

    ``shared`` tells whether records outlive a request in a store every process shares (so a
    changed client must be forgotten there, and the token endpoint may be answered from it).
    """

    shared = False

    def track(self, ar: Any) -> None:
        """A committed request is pending (called by the device notification run)."""

    def track_many(self, ars: Iterable[Any]) -> None:
        """``track`` each of ``ars`` (a batch of the device notification run); a shared store
        does it in one round trip."""
        for ar in ars:
            self.track(ar)

    def finish(self, ar: Any) -> None:
        """``ar`` stops being pending in the current transaction (called before its commit)."""

    def record_poll(self, ar: Any, fingerprint: str | None, now: datetime) -> str:
        """Count a pending poll of ``ar`` that the full token endpoint authenticated (with
        credentials whose ``fingerprint`` the store may remember); return ``PENDING`` or
        ``SLOW_DOWN``."""
        raise NotImplementedError

    def poll(self, client_id: str, fingerprint: str, auth_req_id: str, now: float) -> str | None:
        """Answer a poll without the database (``PENDING``/``SLOW_DOWN``), or ``None`` when the
        full token endpoint must answer it."""
        return None

    def forget_client(self, client_id: str) -> None:
        """The client changed (secret, mode, deletion): stop trusting what was verified."""

    def client_version(self, client_id: str) -> bytes | None:
        """A value that changes whenever the client is saved or deleted (the client row cache
        compares it); ``None`` when there is no shared state to ask."""
        return None
