"""User codes (CIBA §7.1.2): setting one, and checking one a client relays.

A user code proves that whoever starts a request for this user knows something only the user
knows, so that knowing a login hint is not enough to push requests to their phone. Codes are
kept with Django's password hasher and compared in constant time (``check_password``).

A check costs a password hash, so what a client may spend is budgeted, per client
(``UserCodeFailures``):

* **Per (client, user).** ``USER_CODE_MAX_FAILURES`` wrong codes for one user within
  ``USER_CODE_LOCKOUT_SECONDS``; then that client's codes for that user are refused until the
  window ends, the right one included. Another client is not affected: a stranger who knows a
  login hint can no longer lock the user's code for the clients the user actually uses. The
  budget is taken *before* the hash (a conditional UPDATE), so a burst of concurrent requests
  buys no more hashes than the budget; a right code gives it back.
* **Per client.** ``USER_CODE_MAX_FAILURES_PER_CLIENT`` wrong codes for all users together
  within the same window; then every code that client sends is refused until the window ends.
  A client guessing across many users, or flooding codes for users who set none, buys at most
  this many hashes per window.

Once over a budget a code is refused after one indexed read, before any hash. A user who set
no code is checked against a dummy hash under the same budgets, so their answer
(``invalid_user_code``) and its cost are those of a wrong code: timing tells nothing the
answer does not, and a flood of such requests costs no more hashes than a flood of wrong codes.
"""

from __future__ import annotations

import enum
import unicodedata
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.hashers import check_password, make_password
from django.db import IntegrityError, router, transaction
from django.db.models import F, Max
from django.utils import timezone

from .conf import ciba_settings
from .models import UserCode, UserCodeFailures

#: Longest accepted code, in characters.
MAX_LENGTH = 64

_DUMMY: list[str] = []


class UnacceptableUserCode(ValueError):
    """A code a user may not choose; the message says why."""


class Verdict(enum.Enum):
    """The outcome of a check: the user's code, not it, or refused unchecked (over budget)."""

    RIGHT = "right"
    WRONG = "wrong"
    REFUSED = "refused"


def set_user_code(user: Any, code: str) -> UserCode:
    """Give ``user`` this code (replacing any other); every client's failures start over."""
    code = clean(code, user=user)
    row, _ = UserCode.objects.update_or_create(user=user, defaults={"code": make_password(code)})
    unlock(user)
    return row


def clear_user_code(user: Any) -> bool:
    """Remove ``user``'s code; True if there was one."""
    return UserCode.objects.filter(user=user).delete()[0] > 0


def unlock(user: Any) -> None:
    """Forget every client's wrong codes for ``user`` (their per-client totals stay)."""
    UserCodeFailures.objects.filter(user=user).delete()


def locked_until(user: Any) -> datetime | None:
    """Until when some client's codes for ``user`` are refused (``None``: no client's are)."""
    return UserCodeFailures.objects.filter(
        user=user,
        failures__gte=ciba_settings.USER_CODE_MAX_FAILURES,
        window_ends__gt=timezone.now(),
    ).aggregate(until=Max("window_ends"))["until"]


def clean(code: str, *, user: Any = None) -> str:
    """The code as stored: NFC, between ``USER_CODE_MIN_LENGTH`` and 64 printable characters,
    and not the user's own username."""
    if not isinstance(code, str):
        raise UnacceptableUserCode("The user code must be text.")
    code = unicodedata.normalize("NFC", code)
    minimum = ciba_settings.USER_CODE_MIN_LENGTH
    if not minimum <= len(code) <= MAX_LENGTH:
        raise UnacceptableUserCode(f"The user code must be {minimum} to {MAX_LENGTH} characters long.")
    if any(unicodedata.category(ch).startswith(("C", "Z")) and ch != " " for ch in code):
        raise UnacceptableUserCode("The user code must hold only printable characters.")
    if user is not None and code.casefold() == str(user.get_username()).casefold():
        raise UnacceptableUserCode("The user code must not be the username.")
    return code


def has_user_code(user: Any) -> bool:
    return UserCode.objects.filter(user=user).exists()


def check_user_code(user: Any, code: str, *, client: Any) -> bool:
    """True when ``code`` is ``user``'s code and ``client`` is within its budgets."""
    return verify(user, code, client=client) is Verdict.RIGHT


def verify(user: Any, code: str, *, client: Any) -> Verdict:
    """Check ``code`` for ``user`` as ``client`` sent it, within the client's budgets."""
    now = timezone.now()
    if _client_over_budget(client, now) or not _take(client, user, now):
        return Verdict.REFUSED
    row = UserCode.objects.filter(user=user).only("code").first()
    # A user without a code costs the same hash, under the same budgets.
    matches = check_password(unicodedata.normalize("NFC", code), row.code if row is not None else _dummy())
    if matches and row is not None:
        UserCodeFailures.objects.filter(client=client, user=user).delete()  # the budget given back
        return Verdict.RIGHT
    _count(client, None, now, limit=None)
    return Verdict.WRONG


def _client_over_budget(client: Any, now: datetime) -> bool:
    return UserCodeFailures.objects.filter(
        client=client,
        user__isnull=True,
        window_ends__gt=now,
        failures__gte=ciba_settings.USER_CODE_MAX_FAILURES_PER_CLIENT,
    ).exists()


def _take(client: Any, user: Any, now: datetime) -> bool:
    """Count one failure of ``client`` for ``user`` ahead of the hash; False when its budget
    for this window is spent (nothing is counted then)."""
    return _count(client, user, now, limit=ciba_settings.USER_CODE_MAX_FAILURES)


def _count(client: Any, user: Any, now: datetime, *, limit: int | None) -> bool:
    """Add one failure to the row of (``client``, ``user``) in the current window, if it stays
    within ``limit`` (``None``: always); a row whose window ended starts a new one. Every write
    is conditional, so concurrent requests never count past ``limit``."""
    rows = UserCodeFailures.objects.filter(client=client, user=user)
    row = rows.only("window_ends").first()
    if row is None:
        if _create(client, user, now):
            return True
    elif row.window_ends <= now and rows.filter(window_ends__lte=now).update(
        failures=1, window_ends=_window_end(now)
    ):
        return True
    current = rows.filter(window_ends__gt=now)
    if limit is not None:
        current = current.filter(failures__lt=limit)
    return bool(current.update(failures=F("failures") + 1))


def _create(client: Any, user: Any, now: datetime) -> bool:
    """The first failure of a window in a new row (False if a concurrent request made it);
    the client's rows whose window has ended are purged on the way."""
    UserCodeFailures.objects.filter(client=client, window_ends__lte=now).delete()
    try:
        with transaction.atomic(using=router.db_for_write(UserCodeFailures)):
            UserCodeFailures.objects.create(
                client=client, user=user, failures=1, window_ends=_window_end(now)
            )
    except IntegrityError:
        return False
    return True


def _window_end(now: datetime) -> datetime:
    return now + timedelta(seconds=ciba_settings.USER_CODE_LOCKOUT_SECONDS)


def _dummy() -> str:
    if not _DUMMY:
        _DUMMY.append(make_password("ciba-no-user-code"))
    return _DUMMY[0]
