"""The only code that changes the state of a CIBA request.

Views, the token grant, Celery tasks, management commands and the admin all call these
functions, so every transition is the same single conditional UPDATE (two racing callers
cannot both win), records when (and by whom) it happened, and fires its signal after commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import router, transaction
from django.utils import timezone

from . import signals
from .models import AuthenticationRequest

State = AuthenticationRequest.State


class NotPending(Exception):
    """The request can no longer be decided; ``state`` is what it is now (for a 409)."""

    def __init__(self, state: str) -> None:
        super().__init__(f"The request is {state}.")
        self.state = state


class InvalidApproval(ValueError):
    """The approval asks for something the request does not allow (e.g. scopes never requested)."""


def create_request(*, expires_in: int, now: datetime | None = None, **fields: Any) -> AuthenticationRequest:
    """Store a new pending request and announce it once committed."""
    now = now or timezone.now()
    ar = AuthenticationRequest.objects.create(
        expires_at=now + timedelta(seconds=expires_in), created_at=now, updated_at=now, **fields
    )
    _after_commit(signals.auth_request_created, request=ar)
    return ar


def approve(
    ar: AuthenticationRequest, *, user: Any, scopes: Iterable[str] | None = None, acr: str = ""
) -> AuthenticationRequest:
    """Record the user's approval. ``scopes`` narrows what was requested (``openid`` stays).

    Raises ``NotPending`` when the request was decided, issued or expired meanwhile: an
    expired request is never approved, whatever the caller saw before.
    """
    requested = ar.scopes
    granted = list(dict.fromkeys(scopes)) if scopes is not None else requested
    if "openid" not in granted:
        granted.insert(0, "openid")
    extra = [s for s in granted if s not in requested]
    if extra:
        raise InvalidApproval(f"Scopes that were not requested: {' '.join(extra)}")
    now = timezone.now()
    fields = {"decided_at": now, "decided_by": user, "granted_scope": " ".join(granted), "acr": acr}
    _transition(ar, State.APPROVED, now, fields)
    _after_commit(signals.auth_request_approved, request=ar, user=user)
    return ar


def deny(ar: AuthenticationRequest, *, user: Any) -> AuthenticationRequest:
    now = timezone.now()
    _transition(ar, State.DENIED, now, {"decided_at": now, "decided_by": user})
    _after_commit(signals.auth_request_denied, request=ar, user=user)
    return ar


def mark_issued(ar: AuthenticationRequest) -> bool:
    """The token race arbiter: True for exactly one caller per approved, unexpired request."""
    if not ar.transition_to(State.ISSUED, issued_at=timezone.now()):
        return False
    _after_commit(signals.tokens_issued, request=ar)
    return True


def expire(ar: AuthenticationRequest, now: datetime | None = None) -> bool:
    """Mark one request past ``expires_at`` as expired; False if it was finished meanwhile."""
    if not ar.transition_to(State.EXPIRED, now=now or timezone.now()):
        return False
    _after_commit(signals.auth_request_expired, request=ar)
    return True


def _transition(ar: AuthenticationRequest, to: str, now: datetime, fields: dict[str, Any]) -> None:
    if not ar.transition_to(to, now=now, **fields):
        current = AuthenticationRequest.objects.filter(pk=ar.pk).first()
        raise NotPending(current.effective_state(now) if current else State.EXPIRED)


def _after_commit(signal: Any, **kwargs: Any) -> None:
    sender = AuthenticationRequest
    using = router.db_for_write(sender)
    transaction.on_commit(lambda: signal.send(sender=sender, **kwargs), using=using)
